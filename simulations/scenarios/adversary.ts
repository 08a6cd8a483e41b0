// The `adversary` scenario (design.md §6, §9): a malicious peer among honest ones. Node 0 builds
// examples/hello; the honest nodes trust node 0. Half of them supply the release before the adversary
// joins (the baseline); then the adversary (simulations/adversary-peer.ts) joins, supplies the release
// like anyone, and turns bad: corrupted bytes under the artifact's CID, forged entries for the release's
// key. Its PeerId makes it the provider the first attacked node tries first (each fetcher has its own order
// of providers, node/cache/remote.ts; the others meet it where their order puts it). The other half then
// supplies the release. The assertions check that no honest node used anything of the adversary's, that the
// forged entries went nowhere, and that the adversary was actually tried and caught — else the run proved
// nothing.
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { formatKey } from '../../node/cache/entry.js';
import { platform } from '../../node/hardware.js';
import { ADVERSARY_MARKER, AdversaryPeer, keyRankedFirst, type Forgery } from '../adversary-peer.js';
import { assertion, judge } from '../assertions.js';
import { isRefusal, isSending, refusalsIn, sentIn, type Refusals, type Sent } from '../cache-log.js';
import { histogram, median, niceWidth, round } from '../distribution.js';
import { InProcessNodes, seesRelease, startInBatches, untilAborted, type InProcessNode, type LogLine } from '../in-process-nodes.js';
import type { Scenario } from '../scenario.js';
import {
  everyNodeSupplied, inspectCache, installedFiles, startClock, storedEntries, supplyOn, type NodeRecord, type NodeSupply,
} from '../supplies.js';
import type { Metrics, Plot, SimulationOptions, SimulationResult } from '../types.js';

const RELEASE = fileURLToPath(new URL('../../../examples/hello/software.cfg', import.meta.url));
export const ADVERSARY_RUN_TIMEOUT_MS = 10 * 60_000;
/** Honest nodes started at once. */
const JOIN_BATCH = 10;

export type HonestRole = 'builder' | 'baseline' | 'attacked';

/** An honest node: how its supply went, what it holds, what it refused. */
export interface HonestNode extends NodeRecord {
  role: HonestRole;
  refusals: Refusals;
  /** Its installed release against node 0's: the adversary's marker file, and paths only one of them has. */
  installed: { marker: boolean; differs: string[] };
}

/** What a run recorded; the assertions judge it. */
export interface AdversaryRun {
  release?: string;
  /** Node 0's PeerId. */
  builder: string;
  adversary?: string;
  /** The artifact node 0 built and signed an entry for. */
  artifact?: { cid: string; size: number; key: string };
  /** What the adversary did, once it turned bad. */
  forgery?: Forgery;
  /** The adversary's own (honest) supply, before it turned. */
  adversarySupply?: NodeSupply;
  /** What the adversary began sending, as its log says (its corrupted copy, once it turned). */
  adversarySent: Sent[];
  /** Node 0, then the baseline, then the attacked nodes. */
  nodes: HonestNode[];
}

const holdsRelease = (node: HonestNode) => node.source !== undefined;

export const adversaryDataNeverUsed = assertion<AdversaryRun>(
  'adversary-data-never-used', 'Every honest node holds and installed node 0\'s artifact, never bytes or files of the adversary\'s.',
  ({ artifact, adversary, forgery, nodes }) => {
    if (!artifact) return ['node 0 has no signed entry for the release'];
    return nodes.filter(holdsRelease).flatMap((node) => [
      ...(node.artifactCid !== artifact.cid ? [`${node.name}: holds artifact ${node.artifactCid ?? 'none'}, not node 0's ${artifact.cid}`] : []),
      ...(node.artifactHash !== artifact.cid ? [`${node.name}: its artifact's bytes hash to ${node.artifactHash ?? 'nothing'}, not ${artifact.cid}`] : []),
      ...(forgery && node.blobs.includes(forgery.forgedArtifact) ? [`${node.name}: holds the adversary's artifact ${forgery.forgedArtifact}`] : []),
      ...(node.installed.marker ? [`${node.name}: its installed release holds the adversary's ${ADVERSARY_MARKER} file`] : []),
      ...(node.installed.differs.length ? [`${node.name}: its installed files differ from node 0's: ${node.installed.differs.slice(0, 5).join(', ')}`] : []),
      ...(node.role === 'attacked' && adversary && node.peer === adversary ? [`${node.name}: its artifact came from the adversary`] : []),
    ]);
  },
);

export const forgedEntriesIgnored = assertion<AdversaryRun>(
  'forged-entries-ignored', 'No honest node kept or used a forged entry: none signed by the adversary, none naming its artifact.',
  ({ adversary, forgery, nodes }) => {
    if (!forgery) return ['the adversary forged nothing: the run tested nothing'];
    return nodes.flatMap((node) => node.entries
      .filter((entry) => entry.builder === adversary || entry.cid === forgery.forgedArtifact)
      .map((entry) => `${node.name}: node.db keeps an entry of ${entry.builder} for ${entry.cid}`));
  },
);

export const corruptionDetected = assertion<AdversaryRun>(
  'corruption-detected', 'The adversary\'s corrupted artifact was tried and rejected by at least one honest node (else the run proved nothing).',
  ({ adversary, artifact, nodes }) => {
    const caught = nodes.some((node) => node.refusals.badProviders.some((bad) => bad.peer === adversary && bad.cid === artifact?.cid));
    return caught ? [] : [`no honest node rejected the adversary's copy of ${artifact?.cid ?? 'the artifact'}`];
  },
);

export const forgeriesRefused = assertion<AdversaryRun>(
  'forgeries-refused', 'Honest nodes were offered both forged entries and refused them: the impersonation for its signature, the adversary\'s own for its untrusted builder.',
  ({ adversary, nodes }) => [
    ...(!nodes.some((node) => node.refusals.droppedEntries.some((entry) => entry.from === adversary && /signature/.test(entry.reason)))
      ? ['no honest node dropped the adversary\'s impersonating entry for its bad signature'] : []),
    ...(!nodes.some((node) => node.refusals.ignoredEntries.some((entry) => entry.from === adversary && entry.builder === adversary))
      ? ['no honest node ignored the entry the adversary signed itself'] : []),
  ],
);

export const adversaryAssertions = [everyNodeSupplied, adversaryDataNeverUsed, forgedEntriesIgnored, corruptionDetected, forgeriesRefused] as const;

export const adversaryScenario: Scenario = {
  name: 'adversary',
  description: 'a peer serving corrupted artifact bytes and forged cache entries, met by honest nodes supplying examples/hello',
  defaultNodes: 10,
  run: runAdversary,
};

async function runAdversary(options: SimulationOptions): Promise<SimulationResult> {
  if (!(options.nodes >= 3)) throw new RangeError('the adversary scenario needs at least 3 nodes: a builder, the adversary and an honest node');
  const started = performance.now();
  const mesh = InProcessNodes.create('simulate-adversary');
  let run: AdversaryRun;
  try {
    run = await recordRun(mesh, options);
  } finally {
    await mesh.stopAll();
  }
  options.signal?.throwIfAborted();
  const assertions = judge(adversaryAssertions, run);
  return {
    scenario: 'adversary', nodes: options.nodes, seconds: round((performance.now() - started) / 1000), ok: assertions.every((a) => a.ok),
    assertions, metrics: adversaryMetrics(run), plots: adversaryPlots(run),
  };
}

/** Honest nodes keep the lines saying what they refused (verbose: untrusted builders are reported at debug level) and errors. */
const keep = (line: LogLine) => line.level === 'error' || isRefusal(line);

async function recordRun(mesh: InProcessNodes, options: SimulationOptions): Promise<AdversaryRun> {
  const progress = options.progress ?? (() => undefined);
  const signal = AbortSignal.any([...(options.signal ? [options.signal] : []), AbortSignal.timeout(ADVERSARY_RUN_TIMEOUT_MS)]);
  const builder = await mesh.start('n0', { keep });
  const clock = startClock();
  const built = await untilAborted(supplyOn(builder, RELEASE, 0, clock), signal);
  const run: AdversaryRun = { builder: builder.node.peerId, nodes: [], adversarySent: [] };
  if (!built.source || !built.cid) {
    run.nodes = [honestWithoutEvidence(built, 'builder')];
    return run;
  }
  const release = (run.release = built.cid);
  const key = formatKey({ kind: 'release', id: release, platform: platform() });
  const artifact = storedEntries(builder.node.options.dataDir, key).find((entry) => entry.builder === run.builder)?.cid;
  progress(`adversary: n0 built the release in ${(built.seconds ?? 0).toFixed(1)} s; its artifact is ${artifact}`);

  const bootstrap = [builder.node.addresses()[0]!];
  const honestCount = options.nodes - 2;
  const honest = await startInBatches(honestCount, JOIN_BATCH, (i) => mesh.start(`n${i + 1}`, { keep, bootstrap, trust: [run.builder], verbose: true }),
    (node) => seesRelease(node.node, run.builder, release, signal));
  const baseline = honest.slice(0, Math.floor(honestCount / 2));
  const attacked = honest.slice(baseline.length);

  const baselineSupplies = await untilAborted(Promise.all(baseline.map((node) => supplyOn(node, release, 1, clock))), signal);
  progress(`adversary: ${baseline.length} nodes supplied the release without the adversary`);

  // The adversary: first in the order the first attacked node tries the artifact's providers, whoever else holds it.
  const targets = attacked.slice(0, 1).map((node) => node.node.peerId);
  const adversary = await AdversaryPeer.start(mesh, 'adversary', await keyRankedFirst([run.builder, ...honest.map((n) => n.node.peerId)], artifact ?? release, targets),
    { keep: (line) => keep(line) || isSending(line), verbose: true, bootstrap, trust: [run.builder] });
  run.adversary = adversary.peerId;
  await seesRelease(adversary.local.node, run.builder, release, signal);
  run.adversarySupply = await untilAborted(supplyOn(adversary.local, release, 1, clock), signal);
  if (run.adversarySupply.source) run.forgery = await adversary.turnBad(key);
  progress(`adversary: ${adversary.peerId} holds the release and turned bad`);

  await Promise.all(attacked.map((node) => seesRelease(node.node, adversary.peerId, release, signal)));
  const attackedSupplies = await untilAborted(Promise.all(attacked.map((node) => supplyOn(node, release, 2, clock))), signal);
  progress(`adversary: ${attacked.filter((_, i) => attackedSupplies[i]?.source).length}/${attacked.length} nodes supplied the release with the adversary among the providers`);

  run.adversarySent = sentIn(adversary.local.log, clock);
  const reference = installedFiles(builder.node.options.dataDir, release);
  const inspect = async (local: InProcessNode, supply: NodeSupply, role: HonestRole): Promise<HonestNode> => {
    const files = installedFiles(local.node.options.dataDir, release);
    return {
      ...supply, ...await inspectCache(local, release, key), role, refusals: refusalsIn(local.log, clock),
      installed: { marker: files.includes(ADVERSARY_MARKER), differs: symmetricDifference(files, reference) },
    };
  };
  type Inspected = [InProcessNode, NodeSupply, HonestRole];
  const roles: Inspected[] = [
    [builder, built, 'builder'],
    ...baseline.map((node, i): Inspected => [node, baselineSupplies[i]!, 'baseline']),
    ...attacked.map((node, i): Inspected => [node, attackedSupplies[i]!, 'attacked']),
  ];
  // One at a time: tens of nodes asked at once through their control sockets answer late on a loaded machine.
  for (const [node, supply, role] of roles) run.nodes.push(await inspect(node, supply, role));
  const ours = run.nodes[0]?.entries.find((entry) => entry.builder === run.builder);
  if (ours) run.artifact = { cid: ours.cid, size: run.nodes[0]?.artifactBytes ?? 0, key };
  return run;
}

function honestWithoutEvidence(supply: NodeSupply, role: HonestRole): HonestNode {
  return { ...supply, role, blobs: [], entries: [], built: false, refusals: { badProviders: [], droppedEntries: [], ignoredEntries: [] }, installed: { marker: false, differs: [] } };
}

/** Paths in only one of two sorted lists. */
function symmetricDifference(a: readonly string[], b: readonly string[]): string[] {
  const inA = new Set(a);
  const inB = new Set(b);
  return [...a.filter((path) => !inB.has(path)), ...b.filter((path) => !inA.has(path))];
}

/** Milliseconds from each attacked node's supply start to its first rejection of the adversary. */
function detectionMs(run: AdversaryRun): number[] {
  return run.nodes.filter((node) => node.role === 'attacked').flatMap((node) => {
    const first = node.refusals.badProviders.find((bad) => bad.peer === run.adversary);
    return first ? [(first.atS - node.startedAtS) * 1000] : [];
  });
}

/**
 * Milliseconds each rejection of the adversary cost its node: from the adversary beginning to send it the
 * corrupted artifact to the node dropping it (the fetch then resumed with the next provider).
 */
export function timeLostMs(run: AdversaryRun): number[] {
  return run.nodes.flatMap((node) => node.refusals.badProviders.filter((bad) => bad.peer === run.adversary).flatMap((bad) => {
    const sent = run.adversarySent.filter((s) => s.to === node.peerId && s.cid === bad.cid && s.atS <= bad.atS).at(-1);
    return sent ? [(bad.atS - sent.atS) * 1000] : [];
  }));
}

export function adversaryMetrics(run: AdversaryRun): Metrics {
  const role = (r: HonestRole) => run.nodes.filter((node) => node.role === r);
  const supplyMs = (nodes: HonestNode[]) => nodes.flatMap((node) => (node.source && node.seconds !== undefined ? [node.seconds * 1000] : []));
  const refusals = run.nodes.map((node) => node.refusals);
  const ofAdversary = refusals.flatMap((r) => r.badProviders.filter((bad) => bad.peer === run.adversary));
  const detection = detectionMs(run);
  const lost = timeLostMs(run);
  return {
    honestNodes: run.nodes.length,
    baselineNodes: role('baseline').length,
    attackedNodes: role('attacked').length,
    supplied: run.nodes.filter(holdsRelease).length,
    rejectedChunks: ofAdversary.length,
    nodesThatRejectedTheAdversary: run.nodes.filter((node) => node.refusals.badProviders.some((bad) => bad.peer === run.adversary)).length,
    rejectedProviders: new Set(refusals.flatMap((r) => r.badProviders.map((bad) => bad.peer))).size,
    honestProvidersRejected: refusals.flatMap((r) => r.badProviders.filter((bad) => bad.peer !== run.adversary)).length,
    retries: refusals.reduce((sum, r) => sum + r.badProviders.length, 0),
    forgedEntriesDropped: refusals.reduce((sum, r) => sum + r.droppedEntries.filter((entry) => entry.from === run.adversary).length, 0),
    untrustedEntriesIgnored: refusals.reduce((sum, r) => sum + r.ignoredEntries.filter((entry) => entry.from === run.adversary).length, 0),
    buildSeconds: round(role('builder')[0]?.seconds ?? Number.NaN),
    adversarySupplyMs: round((run.adversarySupply?.seconds ?? Number.NaN) * 1000),
    baselineSupplyP50Ms: round(median(supplyMs(role('baseline')))),
    attackedSupplyP50Ms: round(median(supplyMs(role('attacked')))),
    adversarySends: run.adversarySent.filter((sent) => sent.cid === run.forgery?.corrupted).length,
    ...(lost.length ? { timeLostP50Ms: round(median(lost)), timeLostMaxMs: round(Math.max(...lost)), timeLostTotalMs: round(lost.reduce((a, b) => a + b, 0)) } : {}),
    ...(detection.length ? { detectionP50Ms: round(median(detection)) } : {}),
  };
}

export function adversaryPlots(run: AdversaryRun): Plot[] {
  const supplyMs = (r: HonestRole) => run.nodes.filter((node) => node.role === r && node.source && node.seconds !== undefined).map((node) => node.seconds! * 1000);
  const width = niceWidth(Math.max(0, ...supplyMs('baseline'), ...supplyMs('attacked')) / 10);
  const attacked = run.nodes.filter((node) => node.role === 'attacked');
  return [
    {
      id: 'supply-times', title: 'Supply times without and with the adversary', kind: 'bars',
      x: { label: 'supply time', unit: 'ms' }, y: { label: 'nodes' },
      series: [
        { name: 'before the adversary joined', points: histogram(supplyMs('baseline'), 10, width) },
        { name: 'with the adversary among the providers', points: histogram(supplyMs('attacked'), 10, width) },
      ],
    },
    {
      id: 'refusals', title: 'What each attacked node refused of the adversary', kind: 'bars',
      x: { label: 'attacked node' }, y: { label: 'refusals' },
      series: [
        { name: 'corrupted fetches', points: attacked.map((node, i): [number, number] => [i + 1, node.refusals.badProviders.filter((bad) => bad.peer === run.adversary).length]) },
        { name: 'forged entries', points: attacked.map((node, i): [number, number] => [i + 1, [...node.refusals.droppedEntries, ...node.refusals.ignoredEntries].filter((entry) => entry.from === run.adversary).length]) },
      ],
    },
  ];
}
