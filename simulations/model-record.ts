// What the model remembers of a run, and the assertions that judge it once the run is over. Pure: the
// record can be made by hand, so a test can show each assertion failing.
import { assertion, type Assertion } from './assertions.js';

export interface NodeRecord {
  id: string;
  capacity: number;
  /** The most partitions it had reserved or hosting at once. */
  peakUsed: number;
  alive: boolean;
  /** References of the confirmed instances it holds at the end (a dead node's copies are not live). */
  hosted: readonly string[];
}

export interface RequestRecord {
  reference: string;
  outcome?: 'placed' | 'refused';
  /** Why it was refused: each candidate's reason, or that no peer was known. */
  reason?: string;
}

export interface BuildRecord {
  /** When the host decided to build, ms of virtual time. */
  at: number;
  node: string;
  release: string;
}

/** A node holding a release, from when the mesh heard it advertised until the node died. */
export interface HoldingRecord {
  node: string;
  release: string;
  /** Builder whose signed entry the node's artifact carries. */
  signer: string;
  advertisedAt: number;
  diedAt?: number;
}

export interface ModelRecord {
  nodes: readonly NodeRecord[];
  requests: readonly RequestRecord[];
  builds: readonly BuildRecord[];
  holdings: readonly HoldingRecord[];
  /** Whom every node trusts as a builder, besides itself (design.md §6). */
  trust: { anyBuilder: boolean; builders: readonly string[] };
}

export const modelAssertions: readonly Assertion<ModelRecord>[] = [
  assertion('capacity-respected', 'No node ever had more partitions reserved or hosting than its capacity.', (record) =>
    record.nodes.filter((node) => node.peakUsed > node.capacity).map((node) => `${node.id} used ${node.peakUsed} of ${node.capacity} partitions`)),

  assertion('no-reference-placed-twice', 'At the end, no reference is live on two nodes.', (record) => {
    const hosts = new Map<string, string[]>();
    for (const node of record.nodes) {
      if (!node.alive) continue;
      for (const reference of node.hosted) {
        const on = hosts.get(reference);
        if (on) on.push(node.id);
        else hosts.set(reference, [node.id]);
      }
    }
    return [...hosts].filter(([, on]) => on.length > 1).map(([reference, on]) => `${reference} is live on ${on.join(', ')}`);
  }),

  assertion('every-request-answered', 'Every request was placed, or refused with a reason.', (record) =>
    record.requests.filter((request) => request.outcome === undefined || (request.outcome === 'refused' && !request.reason))
      .map((request) => `${request.reference} ${request.outcome === undefined ? 'got no answer' : 'was refused without a reason'}`)),

  assertion('cache-used', 'A node built a release only when no live peer it had heard advertise it held an artifact signed by a builder it trusts.', (record) => {
    const trusts = (node: string, signer: string) => record.trust.anyBuilder || signer === node || record.trust.builders.includes(signer);
    const byRelease = new Map<string, HoldingRecord[]>();
    for (const holding of record.holdings) {
      const list = byRelease.get(holding.release);
      if (list) list.push(holding);
      else byRelease.set(holding.release, [holding]);
    }
    const violations: string[] = [];
    for (const build of record.builds) {
      const usable = (byRelease.get(build.release) ?? []).find((holding) =>
        holding.node !== build.node && holding.advertisedAt < build.at && (holding.diedAt === undefined || holding.diedAt > build.at) && trusts(build.node, holding.signer));
      if (usable) violations.push(`${build.node} built ${build.release} at ${(build.at / 1000).toFixed(1)} s while ${usable.node} held ${usable.signer}'s artifact`);
    }
    return violations;
  }),
];
