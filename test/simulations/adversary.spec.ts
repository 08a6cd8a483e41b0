// The `adversary` scenario (simulations/scenarios/adversary.ts, simulations/adversary-peer.ts): a small run
// through the real nodes — the adversary tried first, caught, its data and entries never used — then each
// assertion shown to break on a record made by hand.
import { strict as assert } from 'node:assert';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { rankProviders } from '../../node/cache/remote.js';
import { keyRankedFirst } from '../../simulations/adversary-peer.js';
import { judge } from '../../simulations/assertions.js';
import { NodeLog } from '../../simulations/in-process-nodes.js';
import { refusalsIn, sentIn } from '../../simulations/cache-log.js';
import {
  adversaryAssertions, adversaryDataNeverUsed, adversaryScenario, corruptionDetected, forgedEntriesIgnored, forgeriesRefused, timeLostMs,
  type AdversaryRun, type HonestNode,
} from '../../simulations/scenarios/adversary.js';
import { startClock } from '../../simulations/supplies.js';

const BUILDER = 'builder-id';
const ADVERSARY = 'adversary-id';
const ARTIFACT = 'bafkreihonest';
const FORGED = 'bafkreiforged';

/** A run where everything went right: n1 supplied before the adversary, n2 with it, caught it and went on with n0. */
function goodRun(): AdversaryRun {
  const node = (i: number, extra: Partial<HonestNode>): HonestNode => ({
    name: `n${i}`, peerId: `peer-${i}`, wave: i, startedAtS: i, finishedAtS: i + 1, cid: 'bafkreirelease', source: 'peer', peer: BUILDER, seconds: 1,
    artifactCid: ARTIFACT, artifactBytes: 1000, artifactHash: ARTIFACT, bundleBytes: 100, blobs: ['bafkreirelease', ARTIFACT],
    entries: [{ builder: BUILDER, cid: ARTIFACT }], built: false, role: 'baseline',
    refusals: { badProviders: [], droppedEntries: [], ignoredEntries: [] }, installed: { marker: false, differs: [] }, ...extra,
  });
  return {
    release: 'bafkreirelease', builder: BUILDER, adversary: ADVERSARY, artifact: { cid: ARTIFACT, size: 1000, key: 'release/bafkreirelease/linux' },
    forgery: {
      corrupted: ARTIFACT, forgedArtifact: FORGED,
      entries: [{ kind: 'own-key', builder: ADVERSARY, cid: FORGED }, { kind: 'impersonation', builder: BUILDER, cid: FORGED }],
    },
    nodes: [
      node(0, { peerId: BUILDER, role: 'builder', source: 'built', built: true }),
      node(1, {}),
      node(2, {
        role: 'attacked',
        refusals: {
          badProviders: [{ peer: ADVERSARY, cid: ARTIFACT, atS: 2.5 }],
          droppedEntries: [{ from: ADVERSARY, reason: `cache entry of ${BUILDER} has a bad signature`, atS: 2.2 }],
          ignoredEntries: [{ from: ADVERSARY, builder: ADVERSARY, atS: 2.2 }],
        },
      }),
    ],
    adversarySent: [{ to: 'peer-2', cid: ARTIFACT, offset: 0, atS: 2.4 }],
  };
}

function withNode(run: AdversaryRun, index: number, change: Partial<HonestNode>): AdversaryRun {
  run.nodes[index] = { ...run.nodes[index]!, ...change };
  return run;
}

describe('simulations: the adversary scenario', function () {
  this.timeout(120_000);

  it('runs 4 real nodes: the adversary is tried first, rejected, and nothing of it is used', async () => {
    const result = await adversaryScenario.run({ nodes: 4 });
    assert.deepEqual(result.assertions.filter((a) => !a.ok), []);
    assert.equal(result.ok, true);
    assert.deepEqual(result.assertions.map((a) => a.id),
      ['every-node-supplied', 'adversary-data-never-used', 'forged-entries-ignored', 'corruption-detected', 'forgeries-refused']);
    const { metrics } = result;
    assert.deepEqual([metrics['honestNodes'], metrics['baselineNodes'], metrics['attackedNodes'], metrics['supplied']], [3, 1, 1, 3]);
    assert.equal(metrics['rejectedChunks'], 1, 'the attacked node tried the adversary first, once');
    assert.equal(metrics['adversarySends'], 1, 'the adversary sent its corrupted copy once');
    assert.equal(metrics['rejectedProviders'], 1);
    assert.equal(metrics['honestProvidersRejected'], 0);
    assert.ok((metrics['forgedEntriesDropped'] as number) >= 1);
    assert.ok((metrics['untrustedEntriesIgnored'] as number) >= 1);
    for (const name of ['baselineSupplyP50Ms', 'attackedSupplyP50Ms', 'timeLostP50Ms', 'detectionP50Ms']) assert.equal(typeof metrics[name], 'number', name);
    assert.deepEqual(result.plots.map((plot) => plot.id), ['supply-times', 'refusals']);
  });

  it('holds on a record where all went right', () => {
    assert.deepEqual(judge(adversaryAssertions, goodRun()).filter((a) => !a.ok), []);
  });

  it('adversary-data-never-used breaks on bad bytes, the adversary\'s artifact or files, or an artifact taken from the adversary', () => {
    const run = withNode(withNode(goodRun(), 1, { artifactHash: 'bafkreicorrupt', blobs: [ARTIFACT, FORGED] }), 2, {
      peer: ADVERSARY, installed: { marker: true, differs: ['ADVERSARY'] },
    });
    assert.deepEqual(adversaryDataNeverUsed.violations(run), [
      `n1: its artifact's bytes hash to bafkreicorrupt, not ${ARTIFACT}`,
      `n1: holds the adversary's artifact ${FORGED}`,
      'n2: its installed release holds the adversary\'s ADVERSARY file',
      'n2: its installed files differ from node 0\'s: ADVERSARY',
      'n2: its artifact came from the adversary',
    ]);
    assert.deepEqual(adversaryDataNeverUsed.violations(withNode(goodRun(), 2, { artifactCid: FORGED, artifactHash: FORGED })),
      [`n2: holds artifact ${FORGED}, not node 0's ${ARTIFACT}`, `n2: its artifact's bytes hash to ${FORGED}, not ${ARTIFACT}`]);
  });

  it('forged-entries-ignored breaks on a forged entry kept, and when nothing was forged', () => {
    const run = withNode(goodRun(), 2, { entries: [{ builder: BUILDER, cid: ARTIFACT }, { builder: BUILDER, cid: FORGED }, { builder: ADVERSARY, cid: FORGED }] });
    assert.deepEqual(forgedEntriesIgnored.violations(run), [`n2: node.db keeps an entry of ${BUILDER} for ${FORGED}`, `n2: node.db keeps an entry of ${ADVERSARY} for ${FORGED}`]);
    assert.deepEqual(forgedEntriesIgnored.violations({ ...goodRun(), forgery: undefined }), ['the adversary forged nothing: the run tested nothing']);
  });

  it('corruption-detected breaks when no honest node rejected the adversary\'s copy', () => {
    const run = withNode(goodRun(), 2, { refusals: { ...goodRun().nodes[2]!.refusals, badProviders: [{ peer: 'peer-1', cid: ARTIFACT, atS: 2 }] } });
    assert.deepEqual(corruptionDetected.violations(run), [`no honest node rejected the adversary's copy of ${ARTIFACT}`]);
  });

  it('forgeries-refused breaks when the forged entries never reached an honest node', () => {
    const run = withNode(goodRun(), 2, { refusals: { ...goodRun().nodes[2]!.refusals, droppedEntries: [], ignoredEntries: [] } });
    assert.deepEqual(forgeriesRefused.violations(run), [
      'no honest node dropped the adversary\'s impersonating entry for its bad signature',
      'no honest node ignored the entry the adversary signed itself',
    ]);
  });

  it('counts the time each rejection cost: from the adversary beginning to send to the node dropping it', () => {
    assert.deepEqual(timeLostMs(goodRun()).map(Math.round), [100]);
  });

  it('reads the refusals a node logged, as node/log.ts writes them', () => {
    const clock = startClock();
    const log = new NodeLog(() => true);
    const line = (level: string, component: string, message: string) => log.write(`${new Date().toISOString()} ${level} ${component}: ${message}\n`);
    line('error', 'cache', `provider ${ADVERSARY} sent bad data for ${ARTIFACT}: chunk 0 does not match its hash`);
    line('error', 'releases', `dropped a cache entry for release/x/linux from ${ADVERSARY}: cache entry of ${BUILDER} has a bad signature`);
    line('debug', 'releases', `ignored an entry for release/x/linux from ${ADVERSARY}: its builder ${ADVERSARY} is not trusted`);
    line('debug', 'cache', `sending ${ARTIFACT} from byte 0 of 1000 to ${BUILDER}`);
    line('info', 'releases', 'release hello installed');
    const refusals = refusalsIn(log, clock);
    assert.deepEqual(refusals.badProviders.map(({ peer, cid }) => [peer, cid]), [[ADVERSARY, ARTIFACT]]);
    assert.deepEqual(refusals.droppedEntries.map(({ from, reason }) => [from, reason]), [[ADVERSARY, `cache entry of ${BUILDER} has a bad signature`]]);
    assert.deepEqual(refusals.ignoredEntries.map(({ from, builder }) => [from, builder]), [[ADVERSARY, ADVERSARY]]);
    assert.deepEqual(sentIn(log, clock).map(({ to, cid, offset }) => [to, cid, offset]), [[BUILDER, ARTIFACT, 0]]);
  });

  it('draws a key that the given fetchers rank first among the providers of a CID', async () => {
    const peers = await Promise.all(Array.from({ length: 5 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()));
    const fetchers = peers.slice(0, 2);
    const key = await keyRankedFirst(peers, ARTIFACT, fetchers);
    const id = peerIdFromPrivateKey(key).toString();
    for (const fetcher of fetchers) assert.equal(rankProviders([...peers.slice(2), id, ...peers.slice(0, 2)], ARTIFACT, fetcher, new Map(), 0)[0], id);
  });
});
