// The `cache` scenario (design.md §6, §9): cache propagation. Node 0 builds examples/hello; every other
// node trusts node 0's artifacts and supplies the release by its CID, in waves of WAVE_SIZE nodes, so that
// the later waves can fetch from the nodes that fetched before them. The run records, per node, where its artifact came from and how long the supply took, and
// what it holds afterwards; the assertions check that every node has the release, that only node 0 built
// it and that every node holds the very artifact node 0 signed.
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { formatKey } from '../../node/cache/entry.js';
import { platform } from '../../node/hardware.js';
import { assertion, judge } from '../assertions.js';
import { histogram, percentile, round, runningCount } from '../distribution.js';
import { InProcessNodes, seesRelease, startInBatches, untilAborted, type InProcessNode, type LogLine } from '../in-process-nodes.js';
import type { Scenario } from '../scenario.js';
import { everyNodeSupplied, inspectEach, startClock, supplyOn, type Clock, type NodeRecord, type NodeSupply } from '../supplies.js';
import type { Metrics, Plot, SimulationOptions, SimulationResult } from '../types.js';

const RELEASE = fileURLToPath(new URL('../../../examples/hello/software.cfg', import.meta.url));
/** The whole run, nodes started to nodes stopped, gives up after this. */
export const CACHE_RUN_TIMEOUT_MS = 10 * 60_000;
/** Nodes started at once. */
const JOIN_BATCH = 10;

/** What a run of the scenario recorded; the assertions judge it. */
export interface CacheRun {
  /** The release's CID (its bundle's), once node 0 had bundled it. */
  release?: string;
  /** Node 0's PeerId. */
  builder: string;
  /** The artifact node 0 built and signed an entry for. */
  artifact?: { cid: string; size: number; key: string };
  /** Every node, node 0 first. */
  nodes: NodeRecord[];
  /** How many nodes supplied in each wave after node 0's build. */
  waves: number[];
  /** Starting the other nodes until each held node 0's advert listing the release (they join once it built). */
  joinSeconds: number;
  suppliesSeconds: number;
  /** Error lines the nodes logged. */
  logErrors: number;
}

/** How many of the `others` nodes supply the release in each wave, one wave after the other. */
export type WavePlan = (others: number) => number[];

/** Waves of `size` nodes (the last one smaller). */
export function wavesOf(size: number): WavePlan {
  return (others) => Array.from({ length: Math.ceil(others / size) }, (_, i) => Math.min(size, others - i * size));
}

/** Each wave as large as the number of nodes holding the release before it (node 0 holds it first): 1, 2, 4, 8, … */
export const doublingWaves: WavePlan = (others) => {
  const waves: number[] = [];
  for (let holders = 1, left = others; left > 0; holders += waves.at(-1)!, left -= waves.at(-1)!) waves.push(Math.min(holders, left));
  return waves;
};

export const builtOnce = assertion<CacheRun>(
  'built-once', 'Only node 0 built the release: every other node installed a peer\'s artifact, and no compiler ran there.',
  ({ builder, nodes }) => nodes.flatMap((node) => {
    if (node.peerId === builder) return node.source && node.source !== 'built' ? [`${node.name} (the builder): its source is ${node.source}, not built`] : [];
    const wrong = node.source === 'built' || node.source === 'local' ? [`${node.name}: its source is ${node.source}, not peer`] : [];
    return node.built ? [...wrong, `${node.name}: a build ran there (its build log or build folder exists)`] : wrong;
  }),
);

export const artifactVerified = assertion<CacheRun>(
  'artifact-verified', 'Every node holds the artifact node 0 signed: the same CID, its bytes hashing to it, and node 0\'s entry kept.',
  ({ artifact, builder, nodes }) => {
    if (!artifact) return ['node 0 has no signed entry for the release'];
    return nodes.filter((node) => node.source !== undefined).flatMap((node) => [
      ...(node.artifactCid !== artifact.cid ? [`${node.name}: holds artifact ${node.artifactCid ?? 'none'}, not ${artifact.cid}`] : []),
      ...(node.artifactHash !== artifact.cid ? [`${node.name}: its artifact's bytes hash to ${node.artifactHash ?? 'nothing'}, not ${artifact.cid}`] : []),
      ...(!node.entries.some((entry) => entry.builder === builder && entry.cid === artifact.cid) ? [`${node.name}: node.db keeps no entry of node 0 for ${artifact.cid}`] : []),
    ]);
  },
);

export const cacheAssertions = [everyNodeSupplied, builtOnce, artifactVerified] as const;

/** The scenario with its waves planned by `plan`. */
export function cacheScenarioWith(plan: WavePlan, description: string): Scenario {
  return { name: 'cache', description, defaultNodes: 10, run: (options) => runCache(options, plan) };
}

/**
 * Nodes supplying at once. Each supply asks the DHT three times (bundle, entries, artifact), and each query
 * dials tens of peers: 49 at once on 2 cores made lookups time out, and the nodes that found no entry in
 * time built the release themselves (as they should).
 */
export const WAVE_SIZE = 10;

export const cacheScenario = cacheScenarioWith(wavesOf(WAVE_SIZE),
  `node 0 builds examples/hello; the others, trusting it, supply it ${WAVE_SIZE} at a time from node 0 and the nodes before them`);

async function runCache(options: SimulationOptions, plan: WavePlan): Promise<SimulationResult> {
  if (!(options.nodes >= 2)) throw new RangeError('the cache scenario needs at least 2 nodes: one builds, the others fetch');
  const started = performance.now();
  const mesh = InProcessNodes.create('simulate-cache');
  let run: CacheRun;
  try {
    run = await recordRun(mesh, options, plan);
  } finally {
    await mesh.stopAll();
  }
  options.signal?.throwIfAborted();
  const assertions = judge(cacheAssertions, run);
  return {
    scenario: 'cache', nodes: options.nodes, seconds: round((performance.now() - started) / 1000), ok: assertions.every((a) => a.ok),
    assertions, metrics: cacheMetrics(run), plots: cachePlots(run),
  };
}

async function recordRun(mesh: InProcessNodes, options: SimulationOptions, plan: WavePlan): Promise<CacheRun> {
  const progress = options.progress ?? (() => undefined);
  const signal = AbortSignal.any([...(options.signal ? [options.signal] : []), AbortSignal.timeout(CACHE_RUN_TIMEOUT_MS)]);
  const keep = (line: LogLine) => line.level === 'error';

  // Node 0 builds before the others join: the build's time is its own, not shared with their handshakes.
  const builder = await mesh.start('n0', { keep });
  const clock = startClock();
  const built = await untilAborted(supplyOn(builder, RELEASE, 0, clock), signal);
  progress(built.source ? `cache: n0 built the release in ${(built.seconds ?? 0).toFixed(1)} s` : `cache: n0 could not build the release: ${built.error}`);
  const joinStart = clock();
  // Each joins through node 0 and a node of an earlier batch (a mesh, not a star), the batches paced by node 0's advert reaching them.
  const bootstrapOf = (i: number) => {
    const earlier = mesh.nodes[i + 1 - JOIN_BATCH];
    return [builder, ...(earlier && earlier !== builder ? [earlier] : [])].map((peer) => peer.node.addresses()[0]!);
  };
  const others = await startInBatches(options.nodes - 1, JOIN_BATCH, (i) => mesh.start(`n${i + 1}`, { keep, trust: [builder.node.peerId], bootstrap: bootstrapOf(i) }),
    (node) => (built.cid ? seesRelease(node.node, builder.node.peerId, built.cid, signal) : Promise.resolve()));
  const joinSeconds = clock() - joinStart;
  progress(`cache: ${options.nodes - 1} more nodes joined in ${joinSeconds.toFixed(1)} s`);

  const run: CacheRun = {
    builder: builder.node.peerId, nodes: [], waves: plan(others.length), joinSeconds, suppliesSeconds: 0, logErrors: 0,
  };
  const supplies: NodeSupply[] = [built];
  if (built.source && built.cid) {
    const release = (run.release = built.cid);
    const suppliesStart = clock();
    supplies.push(...await supplyInWaves(others, release, run.waves, clock, signal, progress));
    run.suppliesSeconds = clock() - suppliesStart;
  } else {
    supplies.push(...others.map((other) => ({ name: other.name, peerId: other.node.peerId, wave: 1, startedAtS: clock(), error: 'n0 built nothing to fetch' })));
  }
  if (run.release) {
    const key = formatKey({ kind: 'release', id: run.release, platform: platform() });
    run.nodes = await inspectEach(supplies.map((supply, i) => ({ local: [builder, ...others][i]!, supply })), run.release, key);
    const ours = run.nodes[0]?.entries.find((entry) => entry.builder === run.builder);
    if (ours) run.artifact = { cid: ours.cid, size: run.nodes[0]?.artifactBytes ?? 0, key };
  } else {
    run.nodes = supplies.map((supply) => ({ ...supply, blobs: [], entries: [], built: false }));
  }
  const errors = mesh.nodes.flatMap(({ name, log }) => log.lines.map((line) => `${name} ${line.component}: ${line.message}`));
  run.logErrors = errors.length;
  if (errors.length) progress(`cache: the nodes logged ${errors.length} errors, the first: ${errors[0]}`);
  return run;
}

/** Supplies `release` on `nodes`, wave after wave; a wave the run's signal cut short is recorded as failed. */
async function supplyInWaves(nodes: readonly InProcessNode[], release: string, waves: readonly number[], clock: Clock, signal: AbortSignal,
  progress: (line: string) => void): Promise<NodeSupply[]> {
  const records: NodeSupply[] = [];
  let next = 0;
  for (const [i, size] of waves.entries()) {
    const members = nodes.slice(next, next + size);
    next += size;
    const start = clock();
    if (signal.aborted) {
      records.push(...members.map((member) => failed(member, i + 1, clock, signal)));
      continue;
    }
    const pending = members.map((member) => supplyOn(member, release, i + 1, clock));
    try {
      records.push(...await untilAborted(Promise.all(pending), signal));
    } catch {
      records.push(...members.map((member) => failed(member, i + 1, clock, signal)));
      continue;
    }
    const fetched = records.slice(-size).filter((r) => r.source).length;
    const holders = 1 + records.filter((r) => r.source).length;
    progress(`cache: wave ${i + 1}: ${fetched}/${size} nodes supplied in ${(clock() - start).toFixed(1)} s; ${holders} nodes hold the release`);
  }
  return records;
}

function failed(node: InProcessNode, wave: number, clock: Clock, signal: AbortSignal): NodeSupply {
  const now = clock();
  return { name: node.name, peerId: node.node.peerId, wave, startedAtS: now, error: `not supplied when the run stopped: ${(signal.reason as Error).message}` };
}

function fetchesByProvider(run: CacheRun): Map<string, number> {
  const served = new Map<string, number>();
  for (const node of run.nodes) if (node.source === 'peer' && node.peer) served.set(node.peer, (served.get(node.peer) ?? 0) + 1);
  return served;
}

export function cacheMetrics(run: CacheRun): Metrics {
  const others = run.nodes.filter((node) => node.peerId !== run.builder);
  const builder = run.nodes.find((node) => node.peerId === run.builder);
  const supplyMs = others.flatMap((node) => (node.source && node.seconds !== undefined ? [node.seconds * 1000] : []));
  const builds = run.nodes.filter((node) => node.source === 'built').length;
  const cacheHits = run.nodes.filter((node) => node.source === 'peer').length;
  const served = [...fetchesByProvider(run).entries()];
  const most = Math.max(0, ...served.map(([, count]) => count));
  const fetched = run.nodes.filter((node) => node.source === 'peer');
  return {
    buildSeconds: round(builder?.seconds ?? Number.NaN),
    joinSeconds: round(run.joinSeconds),
    suppliesSeconds: round(run.suppliesSeconds),
    waves: run.waves.length,
    supplied: run.nodes.filter((node) => node.source).length,
    supplyP50Ms: round(percentile(supplyMs, 50)),
    supplyP90Ms: round(percentile(supplyMs, 90)),
    supplyP99Ms: round(percentile(supplyMs, 99)),
    supplyMaxMs: round(percentile(supplyMs, 100)),
    builds,
    cacheHits,
    cacheHitRatio: round(cacheHits / Math.max(1, cacheHits + builds)),
    artifactBytes: run.artifact?.size ?? 0,
    bytesFetched: fetched.reduce((sum, node) => sum + (node.artifactBytes ?? 0) + (node.bundleBytes ?? 0), 0),
    providers: served.length,
    fetchesFromBuilder: served.find(([peer]) => peer === run.builder)?.[1] ?? 0,
    maxFetchesServedByOneProvider: most,
    maxProviderShare: round(most / Math.max(1, fetched.length)),
    maxProviderBytes: most * (run.artifact?.size ?? 0),
    logErrors: run.logErrors,
  };
}

export function cachePlots(run: CacheRun): Plot[] {
  const finished = (source?: NodeSupply['source']) => run.nodes
    .filter((node) => node.source !== undefined && (source === undefined || node.source === source) && node.finishedAtS !== undefined)
    .map((node) => node.finishedAtS!);
  const supplyMs = run.nodes.filter((node) => node.peerId !== run.builder && node.source && node.seconds !== undefined).map((node) => node.seconds! * 1000);
  const served = [...fetchesByProvider(run).values()].sort((a, b) => b - a);
  return [
    {
      id: 'holders', title: 'Nodes holding the release', kind: 'step',
      x: { label: 'time since node 0 started building', unit: 's' }, y: { label: 'nodes' },
      series: [{ name: 'holding the release', points: runningCount(finished()) }],
    },
    {
      id: 'supply-times', title: 'Supply time of the nodes that fetched', kind: 'bars',
      x: { label: 'supply time', unit: 'ms' }, y: { label: 'nodes' },
      series: [{ name: 'supplies', points: histogram(supplyMs) }],
    },
    {
      id: 'hits-vs-builds', title: 'Cache hits and builds', kind: 'step',
      x: { label: 'time since node 0 started building', unit: 's' }, y: { label: 'supplies' },
      series: [{ name: 'builds', points: runningCount(finished('built')) }, { name: 'cache hits', points: runningCount(finished('peer')) }],
    },
    {
      id: 'fetches-per-provider', title: 'Artifact fetches each provider served', kind: 'bars',
      x: { label: 'provider, busiest first' }, y: { label: 'fetches' },
      series: [{ name: 'fetches served', points: served.map((count, i): [number, number] => [i + 1, count]) }],
    },
  ];
}
