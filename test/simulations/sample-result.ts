// A realistic SimulationResult — a churn run of 12 nodes — for tests of whatever reads results (the table,
// the report, the CLI's --json). Deterministic: computed from formulas, no randomness.
import type { AssertionResult, Plot, SimulationResult } from '../../simulations/types.js';

const NODES = 12;

/** Fraction of live nodes that know every advert: an S-curve after the start and a dip at each kill. */
function convergence(): Plot {
  const points: [number, number][] = [];
  for (let t = 0; t <= 60; t += 1) {
    const start = 1 / (1 + Math.exp(-(t - 5) * 1.1));
    const dip = t >= 30 && t < 38 ? 0.25 * Math.exp(-(t - 30) / 2) : 0;
    points.push([t, Math.round((start - dip) * 1000) / 1000]);
  }
  return {
    id: 'convergence',
    title: 'Advert convergence over time',
    kind: 'line',
    x: { label: 'time since start', unit: 's' },
    y: { label: 'nodes knowing every advert', unit: 'fraction' },
    series: [{ name: 'all adverts known', points }],
  };
}

/** How long requests waited until a host accepted them: a skewed histogram in 25 ms buckets. */
function latency(): Plot {
  const counts = [0, 3, 9, 14, 11, 7, 4, 3, 2, 1, 1, 0, 1, 0, 0, 1];
  return {
    id: 'latency',
    title: 'Request latency until accepted',
    kind: 'bars',
    x: { label: 'latency', unit: 'ms' },
    y: { label: 'requests' },
    series: [{ name: 'accepted', points: counts.map((count, i): [number, number] => [i * 25, count]) }],
  };
}

/** Cumulative cache outcomes: one node builds each release, the others mostly supply it from a peer. */
function cacheHits(): Plot {
  const fromPeer: [number, number][] = [[0, 0], [8, 2], [11, 5], [14, 9], [19, 11], [31, 11], [40, 14], [47, 17], [55, 20]];
  const built: [number, number][] = [[0, 0], [6, 1], [12, 2], [33, 3], [58, 4]];
  return {
    id: 'cache-hits',
    title: 'Cache: releases supplied by a peer vs built',
    kind: 'step',
    x: { label: 'time since start', unit: 's' },
    y: { label: 'releases supplied (cumulative)' },
    series: [{ name: 'from a peer', points: fromPeer }, { name: 'built locally', points: built }],
  };
}

/** Nodes alive: three killed with SIGKILL at 30 s, restarted one by one. */
function nodesAlive(): Plot {
  return {
    id: 'nodes-alive',
    title: 'Nodes alive',
    kind: 'step',
    x: { label: 'time since start', unit: 's' },
    y: { label: 'nodes alive' },
    series: [{ name: 'alive', points: [[0, 0], [1, 4], [2, 9], [3, NODES], [30, 9], [36, 10], [41, 11], [45, NODES], [60, NODES]] }],
  };
}

const ASSERTIONS: AssertionResult[] = [
  { id: 'adverts-converge', description: 'Every live node knows every other live node\'s advert within 15 s of it joining.', ok: true, violations: [] },
  { id: 'no-reference-placed-twice', description: 'No instance reference is hosted by two nodes at once.', ok: true, violations: [] },
  { id: 'capacity-respected', description: 'No node hosts more partitions than it declared.', ok: true, violations: [] },
  { id: 'killed-nodes-rejoin', description: 'Each killed node is back in every live peer table within 10 s of its restart.', ok: true, violations: [] },
  { id: 'release-built-once', description: 'Each software release is built by at most one node; the others supply it from the cache.', ok: true, violations: [] },
];

export function sampleResult(): SimulationResult {
  return {
    scenario: 'churn',
    nodes: NODES,
    seconds: 63.48,
    ok: true,
    assertions: ASSERTIONS.map((a) => ({ ...a, violations: [...a.violations] })),
    metrics: {
      convergenceSeconds: 6.35,
      acceptedP50Ms: 87.4,
      acceptedP95Ms: 231.77,
      cacheHitRatio: 0.8333333,
      requestsPlaced: 58,
      nodesKilled: 3,
      rejoinP95Ms: 4120.6,
      bytesFromPeers: 73400320,
      allAdvertsKnown: true,
      slowestPeer: 'node-07',
    },
    plots: [convergence(), latency(), cacheHits(), nodesAlive()],
  };
}

/** The sample with one assertion broken 7 times, in words that need escaping. */
export function failingResult(): SimulationResult {
  const result = sampleResult();
  result.ok = false;
  const broken = result.assertions[2]!;
  broken.ok = false;
  broken.violations = [
    'node-03 hosts 5 partitions, declared 4 <script>alert("x")</script>',
    "node-05 hosts 3 partitions, declared 2 & said 'fine'",
    ...[6, 7, 8, 9, 11].map((i) => `node-${String(i).padStart(2, '0')} hosts 2 partitions, declared 1`),
  ];
  return result;
}
