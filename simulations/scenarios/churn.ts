// `slapmesh simulate churn`: the placement scenario while 30% of the nodes are killed with SIGKILL and started
// again on their data directories, in waves, as requests flow. A victim stays down for a while drawn between a
// second and two and a half hosting leases: back soon, it brings its instances back itself; gone longer, their
// owners move them, and on its return it destroys the superseded copies. Nothing may be lost either way.
import { judge } from '../assertions.js';
import { downsample, percentile, round } from '../distribution.js';
import {
  CAPACITY_RESPECTED, EVERY_REQUEST_ANSWERED, lostOnRestart, NO_REFERENCE_PLACED_TWICE, NOTHING_LOST_ON_RESTART, type KillRecord,
} from '../instance-assertions.js';
import { InstanceTraffic, startWithHello } from '../instance-traffic.js';
import { Mesh, type MeshNode } from '../mesh.js';
import { sleep } from '../polling.js';
import { forkRandom, sampleDistinct, seededRandom, type Random } from '../random.js';
import { SCENARIO_ADVERT_INTERVAL_MS, type Scenario } from '../scenario.js';
import type { InstanceJson } from '../../node/instances.js';
import type { SimulationOptions, SimulationResult } from '../types.js';

/** Share of the nodes killed and restarted. */
export const CHURN_SHARE = 0.3;

/** What a run of the scenario is made of; tests use smaller, quicker ones. */
export interface ChurnSettings {
  /** Partitions per node: room for the instances of the victims to move. */
  partitions: number;
  requestRate: number;
  /** Owners move an instance whose host has been silent this long (people's nodes: 60 s). */
  hostingLeaseMs: number;
  /** The victims are killed in this many waves, spread over the requests. */
  waves: number;
  /** Each victim stays down for a time drawn between these (ms). */
  downMs: [min: number, max: number];
  /** After the last request and the last restart, instances must settle within this long (moves take a lease or two). */
  settleTimeoutMs: number;
}

export const CHURN_DEFAULTS: ChurnSettings = {
  partitions: 4, requestRate: 1, hostingLeaseMs: 15_000, waves: 3, downMs: [1_000, 37_500], settleTimeoutMs: 180_000,
};
const DEFAULT_SEED = 1;

export const CHURN_ASSERTIONS = [NOTHING_LOST_ON_RESTART, NO_REFERENCE_PLACED_TWICE, CAPACITY_RESPECTED, EVERY_REQUEST_ANSWERED];

/** Requesters: one per ten nodes, 1 to 5. They and the two seeds are never killed (they are the clients and the way in). */
const requestersFor = (nodes: number) => Math.max(1, Math.min(5, Math.floor(nodes / 10)));

export const churn = churnScenario(CHURN_DEFAULTS);

export function churnScenario(settings: ChurnSettings): Scenario {
  const { partitions, requestRate, hostingLeaseMs } = settings;
  return {
    name: 'churn',
    description: `requests flow while ${CHURN_SHARE * 100}% of the nodes are killed (SIGKILL) and restarted: nothing lost, nothing twice`,
    defaultNodes: 10,
    async run(options: SimulationOptions): Promise<SimulationResult> {
      const begun = Date.now();
      const progress = options.progress ?? (() => undefined);
      const signal = options.signal;
      const random = seededRandom(options.seed ?? DEFAULT_SEED);
      const requestCount = options.requests ?? 2 * options.nodes;
      const requesterCount = Math.min(requestersFor(options.nodes), options.nodes);
      const mesh = await Mesh.create({
        nodes: options.nodes, hostingLeaseMs, advertIntervalMs: SCENARIO_ADVERT_INTERVAL_MS, progress,
        ...(signal ? { signal } : {}),
        spec: (_, ids) => ({ partitions: partitions, trust: ids.slice(0, requesterCount) }),
      });
      try {
        const { supplied, requesters, informed } = await startWithHello(mesh, requesterCount, progress, signal);

        const protectedCount = Math.max(requesterCount, mesh.seeds.length);
        const candidates = mesh.nodes.slice(protectedCount);
        const victims = sampleDistinct(forkRandom(random), candidates.length, Math.min(candidates.length, Math.ceil(CHURN_SHARE * options.nodes)))
          .map((i) => candidates[i]!);
        progress(`victims: ${victims.map((node) => node.name).join(' ') || 'none (too few nodes)'}`);

        const traffic = new InstanceTraffic(mesh, requesters, supplied.cid, { ...(signal ? { signal } : {}), progress });
        const kills: KillRecord[] = [];
        const firstRequestMs = mesh.now();
        const windowMs = (requestCount * 1000) / requestRate;
        traffic.startWatching();
        let chaos: Promise<void> = Promise.resolve();
        try {
          chaos = killInWaves(mesh, victims, windowMs, settings, forkRandom(random), kills, progress, signal);
          // Both run to their end even if one fails: nodes are never left down because requesting failed.
          const [fired, churned] = await Promise.allSettled([traffic.fire(requestCount, requestRate), chaos]);
          for (const outcome of [fired, churned]) if (outcome.status === 'rejected') throw outcome.reason;
        } finally {
          await chaos.catch(() => undefined);
          await traffic.stopWatching();
        }
        const answeredMs = mesh.now();
        progress('every request answered and every victim back; waiting for the instances to settle');
        const { settled, listings } = await traffic.settle(settings.settleTimeoutMs, (now) => lostOnRestart(traffic.record(now, partitions, kills)).length === 0);
        const record = traffic.record(listings, partitions, kills);
        const assertions = judge(CHURN_ASSERTIONS, record);

        const restartMs = victims.flatMap((node) => node.startMs.slice(1));
        const onVictimsBefore = kills.reduce((sum, kill) => sum + kill.hosted.length, 0);
        const victimIds = new Set(victims.map((node) => node.peerId));
        return {
          scenario: 'churn', nodes: options.nodes, seconds: round((Date.now() - begun) / 1000),
          ok: assertions.every((a) => a.ok), assertions,
          metrics: {
            nodes: options.nodes, partitionsPerNode: partitions, requesters: requesterCount, requestRate,
            hostingLeaseMs, seed: options.seed ?? DEFAULT_SEED,
            buildSeconds: round(supplied.seconds), requestersInformed: informed,
            victims: victims.length, kills: kills.length, restarts: kills.filter((kill) => kill.restartedMs !== undefined).length,
            downP50Seconds: round(percentile(kills.flatMap((k) => (k.restartedMs !== undefined ? [(k.restartedMs - k.killedMs) / 1000] : [])), 50)),
            restartP50Ms: Math.round(percentile(restartMs, 50)),
            instancesOnVictimsAtKill: onVictimsBefore,
            instancesMoved: traffic.requests.filter((r) => (r.epoch ?? 0) > 1).length,
            instancesOnVictimsAtEnd: listings.filter((listing) => victimIds.has(listing.peerId)).reduce((sum, listing) => sum + listing.instances.length, 0),
            ...traffic.metrics(),
            requestingSeconds: round((answeredMs - firstRequestMs) / 1000),
            settled, settleSeconds: round((mesh.now() - answeredMs) / 1000),
          },
          plots: [
            {
              id: 'nodes-alive', title: 'Nodes running', kind: 'step',
              x: { label: 'time', unit: 's' }, y: { label: 'nodes' },
              series: [{ name: 'running', points: downsample(mesh.alive.map(([ms, count]) => [round(ms / 1000), count])) }],
            },
            ...traffic.plots(),
          ],
        };
      } finally {
        progress('stopping the nodes');
        await mesh.stop();
      }
    },
  };
}

/**
 * Kills the victims in `settings.waves` waves spread over the first part of the request window; each victim, after
 * what it hosted is noted, is killed with SIGKILL, stays down for its drawn time, and is started again on its
 * data directory. Resolves once every victim is back.
 */
async function killInWaves(mesh: Mesh, victims: readonly MeshNode[], windowMs: number, settings: ChurnSettings, random: Random, kills: KillRecord[], progress: (line: string) => void, signal?: AbortSignal): Promise<void> {
  const start = mesh.now();
  const waves = Array.from({ length: settings.waves }, (_, wave) => victims.filter((_, i) => i % settings.waves === wave));
  const [minDown, maxDown] = settings.downMs;
  const downtimes = victims.map(() => minDown + random() * (maxDown - minDown));
  const cycles: Promise<void>[] = [];
  for (const [wave, members] of waves.entries()) {
    if (members.length === 0) continue;
    const due = start + ((wave + 1) * windowMs) / (settings.waves + 2);
    if (due > mesh.now()) await sleep(due - mesh.now(), signal);
    progress(`wave ${wave + 1}: killing ${members.map((node) => node.name).join(' ')}`);
    cycles.push(...members.map((node) => killAndRestart(mesh, node, downtimes[victims.indexOf(node)]!, kills, progress, signal)));
  }
  await Promise.all(cycles);
}

async function killAndRestart(mesh: Mesh, node: MeshNode, downMs: number, kills: KillRecord[], progress: (line: string) => void, signal?: AbortSignal): Promise<void> {
  let hosted: InstanceJson[] = [];
  try {
    hosted = await node.call<InstanceJson[]>('instance.list', { hosted: true });
  } catch (error) {
    progress(`${node.name}: could not list what it hosts before the kill (${(error as Error).message})`);
  }
  await mesh.kill(node);
  const kill: KillRecord = {
    node: node.name, peerId: node.peerId, killedMs: mesh.now(),
    hosted: hosted.map(({ owner, reference, status, epoch }) => ({ owner, reference, status, epoch })),
  };
  kills.push(kill);
  // Aborted meanwhile, it stays down: the harness stops the services it left running.
  await sleep(downMs, signal);
  await mesh.startNode(node);
  kill.restartedMs = mesh.now();
  progress(`${node.name} back after ${((kill.restartedMs - kill.killedMs) / 1000).toFixed(1)} s (it hosted ${kill.hosted.length} instances)`);
}
