// The model simulator (design.md §9): the mesh's placement and cache policies on thousands of nodes, with no
// network — to plan beyond what one machine can run for real. Time is virtual (a discrete-event simulation,
// simulations/model-queue.ts) and every choice is drawn from a seeded generator, so a seed gives one run.
//
// What is the node's own code, and what is modelled:
// - ranking: each requester keeps its own PlacementIndex (node/placement.ts), fed by the adverts it hears
//   (periodic, on the node's DEFAULT_ADVERT_INTERVAL_MS, and at once when a release becomes available, a gossip
//   delay late), and places with the owner's choice and failure rule (node/owned.ts nextCandidate,
//   mayAskAnother, placementFailure: peers ranked again after each refusal, until too many refused or failed,
//   then refused with each reason); a reservation, or a refusal, counts in its view until the host's next advert
//   (PlacementIndex.reserved, refused), as in the node;
// - admission mirrors HostedInstances.reserve (node/hosting.ts): a partition free or a refusal, atomically,
//   held for RESERVE_LEASE_MS until confirmed;
// - supply follows Releases.supply (node/releases.ts): held here, else a trusted builder's artifact from the
//   providers ranked by rankProviders (node/cache/remote.ts), else a build;
// - not modelled: bandwidth shared between concurrent fetches, trust refusals (every requester is trusted),
//   nodes coming back after they die (churn kills for good).
// Requesters are a subset of the nodes (`requesters`), each with a full view of the mesh: 10,000 views of
// 10,000 peers would not fit in memory, and a few hundred owners already spread requests as many would.
import { DEFAULT_ADVERT_INTERVAL_MS } from '../node/adverts.js';
import { RESERVE_LEASE_MS } from '../node/hosting.js';
import { HOSTING_LEASE_MS, HOST_CALL_TIMEOUT_MS, mayAskAnother, NO_PEER_KNOWN, nextCandidate, placementFailure, type PlacementTries } from '../node/owned.js';
import { GET_TIMEOUT_MS } from '../protocols/cache/constants.js';
import { judge } from './assertions.js';
import { ModelMesh, type ModelNode, type Requester } from './model-mesh.js';
import { EventQueue } from './model-queue.js';
import { modelAssertions, type ModelRecord, type RequestRecord } from './model-record.js';
import { downsample, histogram, percentile } from './distribution.js';
import { exponential, forkRandom, randomInt, sampleDistinct, seededRandom, zipf } from './random.js';
import type { Plot, SimulationOptions, SimulationResult } from './types.js';

export interface ModelOptions extends SimulationOptions {
  /** Partitions per node (default 50, as `node start --partitions`). */
  partitions?: number;
  /** Distinct software releases requested (default 20). */
  releases?: number;
  /** Zipf exponent of the releases' popularity (default 1: the first is requested twice as often as the second). */
  popularity?: number;
  /** Nodes that request instances, each with its own view of the mesh (default min(nodes, 50)). */
  requesters?: number;
  /** Requests per virtual second, arriving as a Poisson process (default nodes / 100). */
  requestsPerSecond?: number;
  /** Round trip of one call between two nodes (default 2 ms). */
  roundTripMs?: number;
  /** Time for an advert to reach every node through gossip (default 50 ms). */
  gossipDelayMs?: number;
  /** Default the node's DEFAULT_ADVERT_INTERVAL_MS. */
  advertIntervalMs?: number;
  /** Building a release (default 120 s). */
  buildSeconds?: number;
  /** Size of a built release's artifact (default 200 MiB) and the speed of one fetch (default 100 MiB/s). */
  artifactMiB?: number;
  bandwidthMiBps?: number;
  /**
   * Running an instance profile until its promises pass (default 1 s: bench:placement measures ≈ 0.1 s for
   * the hello instance; a real release takes longer), one per CPU at once (default 2 CPUs).
   */
  deploySeconds?: number;
  cpus?: number;
  /** Whether each release's builder holds it at the start (default true); if not, the first host to need it builds. */
  prebuilt?: boolean;
  /** Every node trusts every builder (`--trust-any-builder`; default false: only itself and the releases' builders). */
  trustAnyBuilder?: boolean;
  /** Share of the nodes (never requesters) that die during the run, for good (default 0). */
  churn?: number;
  /** `never` breaks the cache policy (hosts always build): for showing that the `cache-used` assertion fails. */
  cache?: 'mesh' | 'never';
}

/** Buckets of the latency histograms. */
const HISTOGRAM_BUCKETS = 40;
/** A dead peer leaves the tables after this many advert intervals of silence (node/node.ts: peerTtlMs default). */
const PEER_TTL_INTERVALS = 4;
/** Events between two looks at the abort signal and the progress line (the loop yields to the event loop then). */
const EVENTS_PER_SLICE = 200_000;

/** An instance as its owner sees it. */
interface Instance {
  record: RequestRecord;
  owner: Requester;
  release: number;
  requestedAt: number;
  host?: ModelNode;
  epoch: number;
  ready: boolean;
}

export async function runModel(options: ModelOptions): Promise<SimulationResult> {
  const started = performance.now();
  const nodes = options.nodes;
  if (!Number.isInteger(nodes) || nodes < 1) throw new RangeError(`the model needs at least one node, not ${nodes}`);
  const requests = options.requests ?? nodes * 10;
  const releases = options.releases ?? 20;
  const requestsPerSecond = options.requestsPerSecond ?? Math.max(1, nodes / 100);
  const roundTripMs = options.roundTripMs ?? 2;
  const oneWayMs = roundTripMs / 2;
  const advertIntervalMs = options.advertIntervalMs ?? DEFAULT_ADVERT_INTERVAL_MS;
  const deployMs = (options.deploySeconds ?? 1) * 1000;
  const churn = options.churn ?? 0;
  const random = seededRandom(options.seed ?? 1);
  const queue = new EventQueue();

  const mesh = new ModelMesh({
    queue, random: forkRandom(random), nodes, releases,
    partitions: options.partitions ?? 50,
    requesters: Math.max(1, Math.min(nodes, options.requesters ?? 50)),
    cpus: options.cpus ?? 2,
    advertIntervalMs, gossipDelayMs: options.gossipDelayMs ?? 50, roundTripMs,
    providerTimeoutMs: GET_TIMEOUT_MS,
    fetchMs: ((options.artifactMiB ?? 200) / (options.bandwidthMiBps ?? 100)) * 1000,
    buildMs: (options.buildSeconds ?? 120) * 1000,
    trustAnyBuilder: options.trustAnyBuilder ?? false,
    cache: options.cache ?? 'mesh',
  });
  const pickRandom = forkRandom(random);
  const builders = sampleDistinct(pickRandom, nodes, releases);
  for (let r = 0; r < releases; r++) mesh.designateBuilder(r, mesh.nodes[builders[r % builders.length]!]!, options.prebuilt ?? true);
  mesh.publishAll();

  const instances = new Map<string, Instance>();
  const records: RequestRecord[] = [];
  const accepted: number[] = [];
  const ready: number[] = [];
  const counts = { placed: 0, refusedNoPeer: 0, refusedAll: 0, triesFull: 0, triesUnreachable: 0, triesExpired: 0, moved: 0, movesFailed: 0 };

  // ---- placing: owned.ts `place`, one call at a time, each a message there and back ----

  /** Walks the candidates; `done` gets whether a host took it. */
  function place(instance: Instance, previousHost: ModelNode | undefined, done: (placed: boolean, why?: string) => void): void {
    const { owner } = instance;
    // The requester may host too: it ranks itself from what it knows of itself now (instances.ts indexSelf).
    if (owner.node.alive) {
      mesh.take(owner, mesh.capacityOf(owner.node));
      owner.seen[owner.node.number] = -1;
    }
    const release = mesh.releaseIds[instance.release]!;
    const reasons: string[] = [];
    const asked = new Set(previousHost ? [previousHost.id] : []);
    const tries: PlacementTries = { refused: 0, failed: 0 };
    const next = (): void => {
      const id = mayAskAnother(tries) ? nextCandidate(owner.view, release, asked) : undefined;
      if (id === undefined) return done(false, placementFailure(reasons));
      asked.add(id);
      const host = mesh.byId.get(id)!;
      // Its own host side is a function call; another node is a message each way.
      const hop = host === owner.node ? 0 : oneWayMs;
      const tryNext = (reason: string, how: keyof PlacementTries) => {
        reasons.push(`${id}: ${reason}`);
        tries[how]++;
        next();
      };
      const unreachable = () => {
        owner.view.unanswered(id);
        counts.triesUnreachable++;
        queue.after(HOST_CALL_TIMEOUT_MS, () => tryNext('cannot be reached', 'failed'));
      };
      owner.view.asking(id);
      if (!host.alive) return unreachable();
      queue.after(hop, () => {
        if (!host.alive) return unreachable();
        const refusal = reserve(host, instance.record.reference);
        const free = host.capacity - host.used; // told in the answer, as a node's reserve does
        queue.after(hop, () => {
          if (refusal) {
            counts.triesFull++;
            owner.view.refused(id);
            return tryNext(refusal, 'refused');
          }
          owner.view.reserved(id, free);
          const epoch = instance.epoch + 1;
          queue.after(hop, () => {
            const confirmed = host.alive ? confirm(host, instance, epoch) : 'cannot be reached';
            queue.after(host.alive ? hop : HOST_CALL_TIMEOUT_MS, () => {
              if (confirmed) {
                counts.triesExpired++;
                return tryNext(confirmed, 'failed');
              }
              instance.epoch = epoch;
              instance.host = host;
              done(true);
            });
          });
        });
      });
    };
    next();
  }

  /** Mirrors HostedInstances.reserve (node/hosting.ts): a free partition is taken at once, or a refusal. */
  function reserve(host: ModelNode, reference: string): string | undefined {
    if (host.used >= host.capacity) return `no free partition (all ${host.capacity} in use)`;
    mesh.claim(host);
    host.reservations.add(reference);
    queue.after(RESERVE_LEASE_MS, () => {
      // Not confirmed in time: the reservation expires and frees its partition.
      if (host.reservations.delete(reference) && host.alive) mesh.free(host);
    });
    return undefined;
  }

  /** Mirrors HostedInstances.confirm: the reservation becomes an instance, deployed at once. */
  function confirm(host: ModelNode, instance: Instance, epoch: number): string | undefined {
    const { reference } = instance.record;
    if (!host.reservations.delete(reference)) return `no reservation of ${reference} (it may have expired)`;
    host.hosted.add(reference);
    mesh.supply(host, instance.release, () => mesh.deploy(host, deployMs, () => {
      // The host reports `ready` to the owner; a copy superseded meanwhile is not the instance.
      queue.after(host === instance.owner.node ? 0 : oneWayMs, () => {
        if (instance.host !== host || instance.epoch !== epoch || instance.ready) return;
        instance.ready = true;
        if (epoch === 1) ready.push(queue.now - instance.requestedAt);
      });
    }));
    return undefined;
  }

  function request(k: number): void {
    const owner = mesh.requesters[randomInt(pickRandom, mesh.requesters.length)]!;
    const record: RequestRecord = { reference: `instance-${k}` };
    records.push(record);
    const instance: Instance = { record, owner, release: popularity(), requestedAt: queue.now, epoch: 0, ready: false };
    instances.set(record.reference, instance);
    place(instance, undefined, (placed, why) => {
      if (placed) {
        record.outcome = 'placed';
        counts.placed++;
        accepted.push(queue.now - instance.requestedAt);
        return;
      }
      record.outcome = 'refused';
      record.reason = why ?? 'refused';
      if (why === NO_PEER_KNOWN) counts.refusedNoPeer++;
      else counts.refusedAll++;
    });
  }
  const popularity = zipf(forkRandom(random), releases, options.popularity ?? 1);

  // Poisson arrivals, one event ahead at a time.
  const arrivals = forkRandom(random);
  let issued = 0;
  const arrive = (): void => {
    request(issued++);
    if (issued % Math.max(1, Math.floor(requests / 10)) === 0) options.progress?.(`model: ${issued}/${requests} requests, ${(queue.now / 1000).toFixed(0)} s of virtual time`);
    if (issued < requests) queue.after(exponential(arrivals, requestsPerSecond) * 1000, arrive);
  };
  if (requests > 0) queue.after(exponential(arrivals, requestsPerSecond) * 1000, arrive);

  // ---- churn: nodes die for good; owners move their instances once the hosting lease has run out ----

  const expectedMs = (requests / requestsPerSecond) * 1000;
  const churnRandom = forkRandom(random);
  const mortal = mesh.nodes.slice(mesh.requesters.length);
  const victims = sampleDistinct(churnRandom, mortal.length, Math.round(churn * nodes)).map((i) => mortal[i]!);
  for (const victim of victims) {
    queue.after(churnRandom() * expectedMs, () => {
      mesh.die(victim);
      // Owners renew every third of the lease: the one after it ran out finds the host gone.
      for (const reference of victim.hosted) {
        const instance = instances.get(reference)!;
        queue.after(HOSTING_LEASE_MS + churnRandom() * (HOSTING_LEASE_MS / 3), () => relocate(instance, victim));
      }
      queue.after(PEER_TTL_INTERVALS * advertIntervalMs + churnRandom() * advertIntervalMs, () => mesh.forget(victim));
    });
  }

  function relocate(instance: Instance, from: ModelNode): void {
    if (instance.host !== from) return;
    instance.ready = false;
    place(instance, from, (placed) => {
      if (placed) counts.moved++;
      else {
        // Nowhere to go: it stays recorded on the dead host (owned.ts `relocate`); the model stops trying.
        instance.host = from;
        counts.movesFailed++;
      }
    });
  }

  // ---- sampling for the plots ----

  const sampleEveryMs = Math.max(1000, Math.ceil(expectedMs / 400));
  const samples: { at: number; usedShare: number; alive: number; converged: number }[] = [];
  const sample = (): void => {
    let used = 0;
    let capacity = 0;
    let alive = 0;
    for (const node of mesh.nodes) {
      if (!node.alive) continue;
      alive++;
      used += node.used;
      capacity += node.capacity;
    }
    let pairs = 0;
    let known = 0;
    for (let r = 0; r < releases; r++) {
      if (mesh.holdersAlive[r]! <= 0) continue;
      for (const requester of mesh.requesters) {
        pairs++;
        if (requester.holdersKnown[r]! > 0) known++;
      }
    }
    samples.push({ at: queue.now, usedShare: capacity > 0 ? used / capacity : 0, alive, converged: pairs > 0 ? known / pairs : 1 });
    // Sampling stops once nothing else is left to happen.
    if (queue.size > 0) queue.after(sampleEveryMs, sample);
  };
  sample();

  // ---- the run ----

  while (queue.step()) {
    if (queue.fired % EVENTS_PER_SLICE === 0) {
      await new Promise((resolve) => setImmediate(resolve));
      options.signal?.throwIfAborted();
    }
  }
  const simulatedMs = queue.now;

  const record: ModelRecord = {
    nodes: mesh.nodes.map((node) => ({ id: node.id, capacity: node.capacity, peakUsed: node.peakUsed, alive: node.alive, hosted: [...node.hosted] })),
    requests: records,
    builds: mesh.builds,
    holdings: mesh.holdings,
    trust: { anyBuilder: options.trustAnyBuilder ?? false, builders: mesh.builders },
  };
  const assertions = judge(modelAssertions, record);
  const wallSeconds = (performance.now() - started) / 1000;

  // No request placed (or ready): 0 rather than NaN, which JSON cannot carry.
  const quantile = (values: number[], p: number) => (values.length ? percentile(values, p) : 0);
  const builds = mesh.builds.length;
  const live = new Map<string, number>();
  for (const node of mesh.nodes) if (node.alive) for (const reference of node.hosted) live.set(reference, (live.get(reference) ?? 0) + 1);
  const metrics = {
    requests, requesters: mesh.requesters.length, releases,
    placed: counts.placed,
    refused: counts.refusedNoPeer + counts.refusedAll,
    refusedNoPeerKnown: counts.refusedNoPeer,
    refusedByEveryCandidate: counts.refusedAll,
    triesRefusedNoFreePartition: counts.triesFull,
    triesUnreachable: counts.triesUnreachable,
    triesNotConfirmed: counts.triesExpired,
    acceptedP50Ms: round(quantile(accepted, 50)),
    acceptedP99Ms: round(quantile(accepted, 99)),
    readyP50Ms: round(quantile(ready, 50)),
    readyP99Ms: round(quantile(ready, 99)),
    cacheHits: mesh.cacheHits,
    builds,
    cacheHitRatio: round(mesh.cacheHits + builds > 0 ? mesh.cacheHits / (mesh.cacheHits + builds) : 0, 4),
    maxPartitionsUsedShare: round(Math.max(0, ...mesh.nodes.map((node) => node.peakUsed / node.capacity)), 4),
    nodesOverCapacity: mesh.nodes.filter((node) => node.peakUsed > node.capacity).length,
    placedTwice: [...live.values()].filter((copies) => copies > 1).length,
    nodesFailed: victims.length,
    moved: counts.moved,
    movesFailed: counts.movesFailed,
    notReady: [...instances.values()].filter((instance) => instance.host && !instance.ready).length,
    virtualSeconds: round(simulatedMs / 1000, 1),
    events: queue.fired,
    wallSeconds: round(wallSeconds, 2),
    eventsPerSecond: Math.round(queue.fired / Math.max(wallSeconds, 1e-6)),
  };

  return {
    scenario: 'model', nodes, seconds: round(wallSeconds, 2), ok: assertions.every((assertion) => assertion.ok), assertions, metrics,
    plots: plots(accepted, ready, mesh.cacheSeries, samples),
  };
}

function plots(
  accepted: readonly number[], ready: readonly number[], cache: readonly { at: number; hits: number; builds: number }[],
  samples: readonly { at: number; usedShare: number; alive: number; converged: number }[],
): Plot[] {
  const seconds = (ms: number) => round(ms / 1000, 3);
  const line = (pick: (s: (typeof samples)[number]) => number) => downsample(samples.map((s) => [seconds(s.at), pick(s)]));
  return [
    {
      id: 'accepted-latency', title: 'Time from request to confirmed placement', kind: 'bars',
      x: { label: 'accepted after', unit: 'ms' }, y: { label: 'requests' },
      series: [{ name: 'accepted', points: histogram(accepted, HISTOGRAM_BUCKETS, undefined, 99.9) }],
    },
    {
      id: 'ready-latency', title: 'Time from request to a ready instance', kind: 'bars',
      x: { label: 'ready after', unit: 's' }, y: { label: 'instances' },
      series: [{ name: 'ready', points: histogram(ready.map((ms) => ms / 1000), HISTOGRAM_BUCKETS, undefined, 99.9) }],
    },
    {
      id: 'cache-over-time', title: 'Releases supplied from a peer\'s artifact vs built', kind: 'step',
      x: { label: 'time', unit: 's' }, y: { label: 'supplies (cumulative)' },
      series: [
        { name: 'cache hits', points: downsample([[0, 0], ...cache.map((c): [number, number] => [seconds(c.at), c.hits])]) },
        { name: 'builds', points: downsample([[0, 0], ...cache.map((c): [number, number] => [seconds(c.at), c.builds])]) },
      ],
    },
    {
      id: 'partitions-used', title: 'Share of the live nodes\' partitions in use', kind: 'line',
      x: { label: 'time', unit: 's' }, y: { label: 'used', unit: 'share' },
      series: [{ name: 'partitions used', points: line((s) => round(s.usedShare, 4)) }],
    },
    {
      id: 'nodes-alive', title: 'Nodes alive', kind: 'step',
      x: { label: 'time', unit: 's' }, y: { label: 'nodes' },
      series: [{ name: 'alive', points: line((s) => s.alive) }],
    },
    {
      id: 'convergence', title: 'Requesters whose view knows a holder of each held release', kind: 'line',
      x: { label: 'time', unit: 's' }, y: { label: 'requester × release pairs', unit: 'share' },
      series: [{ name: 'converged', points: line((s) => round(s.converged, 4)) }],
    },
  ];
}

function round(value: number, digits = 1): number {
  const scale = Math.pow(10, digits);
  return Math.round(value * scale) / scale;
}
