// `slapmesh simulate join`: N nodes, each its own process, join through two seeds; the scenario watches the
// adverts spread — the share of (node, peer) pairs where the node holds the peer's advert, over time — until
// every node knows every other one. Nodes advertise at people's pace (every 15 s): what spreads the adverts of
// a joining mesh is each node asking its new peers for theirs, and the first advert each one publishes.
import { DEFAULT_ADVERT_INTERVAL_MS } from '../../node/adverts.js';
import { assertion, judge } from '../assertions.js';
import { downsample, percentile, round } from '../distribution.js';
import { Mesh, type MeshNode } from '../mesh.js';
import { pollUntil, settled } from '../polling.js';
import type { Scenario } from '../scenario.js';
import type { Plot, SimulationOptions, SimulationResult } from '../types.js';

/** After the last node started, the mesh must converge within this long. */
export const CONVERGE_DEADLINE_MS = 120_000;

/** What the assertions judge. */
export interface JoinRecord {
  /** Each node at the end: whether it ran, its connections, and the peers whose advert it lacks. */
  nodes: { name: string; running: boolean; connections: number; missing: string[] }[];
  /** ms from the first start until every node held every advert; undefined if that never happened. */
  convergedAtMs?: number;
  deadlineMs: number;
}

export const JOIN_ASSERTIONS = [
  assertion<JoinRecord>('every-node-joined', 'every node started, is connected to a peer and holds at least one advert', (record) =>
    record.nodes.length < 2 ? [] : record.nodes.flatMap((node) => {
      if (!node.running) return [`${node.name} is not running`];
      if (node.connections === 0) return [`${node.name} has no connection`];
      if (node.missing.length === record.nodes.length - 1) return [`${node.name} holds no advert`];
      return [];
    })),
  assertion<JoinRecord>('converged', 'every node holds every other node\'s advert, within the deadline after the last node started', (record) =>
    record.convergedAtMs !== undefined ? [] : [
      `not converged within ${record.deadlineMs / 1000} s of the last start`,
      ...record.nodes.filter((node) => node.missing.length > 0).map((node) =>
        `${node.name} lacks ${node.missing.length} advert${node.missing.length > 1 ? 's' : ''}: ${node.missing.slice(0, 5).join(' ')}${node.missing.length > 5 ? ' …' : ''}`),
    ]),
];

/** Poll every node's peers this often: more often on small meshes, whose convergence takes a second or two. */
const pollInterval = (nodes: number) => (nodes <= 10 ? 250 : nodes <= 25 ? 500 : 1_000);

export const join: Scenario = {
  name: 'join',
  description: 'nodes join through two seeds; time until every node holds every other node\'s advert',
  defaultNodes: 10,
  async run(options: SimulationOptions): Promise<SimulationResult> {
    const begun = Date.now();
    const progress = options.progress ?? (() => undefined);
    const mesh = await Mesh.create({
      nodes: options.nodes, progress,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    try {
      const ids = new Map(mesh.nodes.map((node) => [node.peerId, node.name]));
      const pairs = options.nodes * (options.nodes - 1);
      const share: [number, number][] = [];
      const knownBy = new Map<MeshNode, Set<string>>();
      let allStartedMs: number | undefined;
      let startFailure: Error | undefined;

      /** One sample: every running node's peers, counted against the whole mesh. */
      const sample = async (): Promise<number> => {
        await Promise.all(mesh.aliveNodes().map(async (node) => {
          const peers = await settled(node.call<{ peerId: string }[]>('peers'));
          if (peers) knownBy.set(node, new Set(peers.map((p) => p.peerId).filter((id) => id !== node.peerId && ids.has(id))));
        }));
        const known = [...knownBy.values()].reduce((sum, set) => sum + set.size, 0);
        const value = pairs === 0 ? 1 : known / pairs;
        share.push([mesh.now(), value]);
        return value;
      };

      progress(`starting ${options.nodes} nodes (one process each)`);
      const starting = mesh.start().then(() => {
        allStartedMs = mesh.now();
        progress(`all ${options.nodes} nodes started after ${(allStartedMs / 1000).toFixed(1)} s`);
      }, (error: Error) => {
        startFailure = error;
      });
      const converged = await pollUntil(async () => {
        if (startFailure) throw startFailure;
        const value = await sample();
        if (allStartedMs !== undefined && mesh.now() - allStartedMs > CONVERGE_DEADLINE_MS) return true;
        return value >= 1 && allStartedMs !== undefined;
      }, { timeoutMs: Number.MAX_SAFE_INTEGER, intervalMs: pollInterval(options.nodes), ...(options.signal ? { signal: options.signal } : {}) });
      await starting;
      if (startFailure) throw startFailure;
      const last = share[share.length - 1]?.[1] ?? 0;
      const convergedAtMs = converged && last >= 1 ? share[share.length - 1]![0] : undefined;
      progress(convergedAtMs !== undefined ? `converged after ${(convergedAtMs / 1000).toFixed(1)} s` : `not converged: ${(last * 100).toFixed(1)}% of the adverts held`);

      const statuses = await Promise.all(mesh.nodes.map((node) => settled(node.call<{ connections: number }>('status'))));
      const record: JoinRecord = {
        deadlineMs: CONVERGE_DEADLINE_MS,
        nodes: mesh.nodes.map((node, i) => ({
          name: node.name, running: node.alive, connections: statuses[i]?.connections ?? 0,
          missing: mesh.nodes.filter((other) => other !== node && !knownBy.get(node)?.has(other.peerId)).map((other) => other.name),
        })),
        ...(convergedAtMs !== undefined ? { convergedAtMs } : {}),
      };
      const assertions = judge(JOIN_ASSERTIONS, record);
      const reached = (fraction: number) => share.find(([, value]) => value >= fraction)?.[0];
      const startMs = mesh.nodes.flatMap((node) => node.startMs);
      const metrics: SimulationResult['metrics'] = {
        nodes: options.nodes,
        allStartedSeconds: round((allStartedMs ?? 0) / 1000),
        nodeStartP50Ms: Math.round(percentile(startMs, 50)),
        nodeStartMaxMs: Math.round(Math.max(...startMs)),
        converged: convergedAtMs !== undefined,
        advertsHeldPercent: round(last * 100),
        connectionsMean: round(statuses.reduce((sum, s) => sum + (s?.connections ?? 0), 0) / options.nodes),
        advertIntervalMs: DEFAULT_ADVERT_INTERVAL_MS,
        samples: share.length,
      };
      for (const [fraction, name] of [[0.5, 'converged50Seconds'], [0.9, 'converged90Seconds'], [1, 'converged100Seconds']] as const) {
        const at = reached(fraction);
        if (at !== undefined) metrics[name] = round(at / 1000);
      }
      if (convergedAtMs !== undefined && allStartedMs !== undefined) metrics['convergedAfterLastStartSeconds'] = round(Math.max(0, convergedAtMs - allStartedMs) / 1000);
      const plots: Plot[] = [
        {
          id: 'convergence', title: 'Adverts held: share of (node, peer) pairs', kind: 'line',
          x: { label: 'time', unit: 's' }, y: { label: 'pairs with the advert', unit: '%' },
          series: [{ name: 'adverts held', points: downsample(share.map(([ms, value]) => [round(ms / 1000), round(value * 100)])) }],
        },
        {
          id: 'nodes-alive', title: 'Nodes running', kind: 'step',
          x: { label: 'time', unit: 's' }, y: { label: 'nodes' },
          series: [{ name: 'running', points: downsample(mesh.alive.map(([ms, count]) => [round(ms / 1000), count])) }],
        },
      ];
      return {
        scenario: 'join', nodes: options.nodes, seconds: round((Date.now() - begun) / 1000),
        ok: assertions.every((a) => a.ok), assertions, metrics, plots,
      };
    } finally {
      await mesh.stop();
    }
  },
};
