// `slapmesh simulate placement`: N nodes (in this process: in-process-mesh.ts says why) with a few partitions
// each; the first builds the hello release; a few requesters then place many instances, each with its own
// reference, at a steady rate.
// Hosts trust the requesters, so each supplies the release on demand (from the builder's artifact, or a peer
// that has it since). Judged: every request answered, no reference live twice, no node over capacity.
import { judge } from '../assertions.js';
import { percentile, round } from '../distribution.js';
import { CAPACITY_RESPECTED, EVERY_REQUEST_ANSWERED, NO_REFERENCE_PLACED_TWICE } from '../instance-assertions.js';
import { InstanceTraffic, startWithHello } from '../instance-traffic.js';
import { InProcessMesh } from '../in-process-mesh.js';
import type { Scenario } from '../scenario.js';
import type { SimulationOptions, SimulationResult } from '../types.js';

/** What a run of the scenario is made of; tests use smaller, quicker ones. */
export interface PlacementSettings {
  /** Partitions per node: few, so that nodes fill up and capacity is tested. */
  partitions: number;
  /** Requests per second: on 2 cores a deployment costs about a second of CPU, so a steady trickle. */
  requestRate: number;
  /** After the last request answered, instances must settle within this long. */
  settleTimeoutMs: number;
}

export const PLACEMENT_DEFAULTS: PlacementSettings = { partitions: 3, requestRate: 1, settleTimeoutMs: 180_000 };
/** Nodes making the requests (the first ones, the builder among them). */
export const MAX_REQUESTERS = 5;

export const PLACEMENT_ASSERTIONS = [EVERY_REQUEST_ANSWERED, NO_REFERENCE_PLACED_TWICE, CAPACITY_RESPECTED];

/** Two requests per node unless told: a third of the capacity stays free, and the first hosts fill up. */
export const defaultRequests = (nodes: number) => 2 * nodes;

export const placement = placementScenario(PLACEMENT_DEFAULTS);

export function placementScenario(settings: PlacementSettings): Scenario {
  const { partitions, requestRate } = settings;
  return {
    name: 'placement',
    description: `many instance requests over nodes of ${partitions} partitions each: all answered, none placed twice, capacity respected`,
    defaultNodes: 10,
    async run(options: SimulationOptions): Promise<SimulationResult> {
      const begun = Date.now();
      const progress = options.progress ?? (() => undefined);
      const signal = options.signal;
      const requestCount = options.requests ?? defaultRequests(options.nodes);
      const requesterCount = Math.min(MAX_REQUESTERS, options.nodes);
      // In this process: nothing is killed here, and on a small machine the nodes' own work is what is measured.
      const mesh = new InProcessMesh({ nodes: options.nodes, progress, spec: (_, ids) => ({ partitions, trust: ids.slice(0, requesterCount) }) });
      try {
        const { startedS, supplied, requesters, informed } = await startWithHello(mesh, requesterCount, progress, signal);

        const traffic = new InstanceTraffic(mesh, requesters, supplied.cid, { ...(signal ? { signal } : {}), progress });
        const firstRequestMs = mesh.now();
        traffic.startWatching();
        try {
          await traffic.fire(requestCount, requestRate);
        } finally {
          await traffic.stopWatching();
        }
        const answeredMs = mesh.now();
        progress('every request answered; waiting for the instances to settle');
        const { settled, listings } = await traffic.settle(settings.settleTimeoutMs);
        const record = traffic.record(listings, partitions);
        const assertions = judge(PLACEMENT_ASSERTIONS, record);
        const startMs = mesh.nodes.flatMap((node) => node.startMs);
        return {
          scenario: 'placement', nodes: options.nodes, seconds: round((Date.now() - begun) / 1000),
          ok: assertions.every((a) => a.ok), assertions,
          metrics: {
            nodes: options.nodes, partitionsPerNode: partitions, requesters: requesterCount, requestRate,
            allStartedSeconds: round(startedS), nodeStartP50Ms: Math.round(percentile(startMs, 50)),
            buildSeconds: round(supplied.seconds), requestersInformed: informed,
            ...traffic.metrics(),
            hostsUsed: listings.filter((listing) => listing.instances.length > 0).length,
            requestingSeconds: round((answeredMs - firstRequestMs) / 1000),
            settled, settleSeconds: round((mesh.now() - answeredMs) / 1000),
          },
          plots: traffic.plots(),
        };
      } finally {
        progress('stopping the nodes');
        await mesh.stop();
      }
    },
  };
}
