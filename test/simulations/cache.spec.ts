// The `cache` scenario (simulations/scenarios/cache.ts): a small run through the real nodes with its
// assertions holding and its figures present, then each assertion shown to break on a record made by hand.
import { strict as assert } from 'node:assert';
import { judge } from '../../simulations/assertions.js';
import {
  artifactVerified, builtOnce, cacheAssertions, cacheMetrics, cacheScenario, doublingWaves, wavesOf, type CacheRun,
} from '../../simulations/scenarios/cache.js';
import { everyNodeSupplied, type NodeRecord } from '../../simulations/supplies.js';

const BUILDER = '12D3KooWBuilderBuilderBuilderBuilderBuilderBuilder0000';
const ARTIFACT = 'bafkreiartifact';

/** A run where everything went right: n0 built, n1 fetched from n0, n2 from n1. */
function goodRun(): CacheRun {
  const node = (i: number, extra: Partial<NodeRecord>): NodeRecord => ({
    name: `n${i}`, peerId: i === 0 ? BUILDER : `peer-${i}`, wave: i === 0 ? 0 : 1, startedAtS: i, finishedAtS: i + 1, cid: 'bafkreirelease',
    source: 'peer', seconds: 1, artifactCid: ARTIFACT, artifactBytes: 1000, artifactHash: ARTIFACT, bundleBytes: 100,
    blobs: ['bafkreirelease', ARTIFACT], entries: [{ builder: BUILDER, cid: ARTIFACT }], built: false, ...extra,
  });
  return {
    release: 'bafkreirelease', builder: BUILDER, artifact: { cid: ARTIFACT, size: 1000, key: 'release/bafkreirelease/linux' },
    nodes: [node(0, { source: 'built', built: true, seconds: 3 }), node(1, { peer: BUILDER }), node(2, { peer: 'peer-1' })],
    waves: [2], joinSeconds: 1, suppliesSeconds: 2, logErrors: 0,
  };
}

describe('simulations: the cache scenario', function () {
  this.timeout(120_000);

  it('runs 3 real nodes: n0 builds, the others fetch its artifact; every assertion holds and the figures are there', async () => {
    const progress: string[] = [];
    const result = await cacheScenario.run({ nodes: 3, progress: (line) => progress.push(line) });
    assert.deepEqual(result.assertions.filter((a) => !a.ok), []);
    assert.equal(result.ok, true);
    assert.deepEqual(result.assertions.map((a) => a.id), ['every-node-supplied', 'built-once', 'artifact-verified']);
    assert.equal(result.scenario, 'cache');
    assert.equal(result.nodes, 3);
    const { metrics } = result;
    assert.equal(metrics['builds'], 1);
    assert.equal(metrics['cacheHits'], 2);
    assert.equal(metrics['cacheHitRatio'], 0.667);
    for (const name of ['buildSeconds', 'supplyP50Ms', 'supplyP99Ms', 'artifactBytes', 'bytesFetched', 'maxProviderShare']) {
      assert.ok(typeof metrics[name] === 'number' && Number.isFinite(metrics[name]) && (metrics[name] as number) > 0, `${name}: ${metrics[name]}`);
    }
    assert.deepEqual(result.plots.map((plot) => plot.id), ['holders', 'supply-times', 'hits-vs-builds', 'fetches-per-provider']);
    assert.deepEqual(result.plots[0]!.series[0]!.points.map(([, y]) => y), [0, 1, 2, 3], 'the holders step up to every node');
    assert.ok(progress.some((line) => line.includes('wave 1')));
  });

  it('holds on a record where all went right', () => {
    assert.deepEqual(judge(cacheAssertions, goodRun()).filter((a) => !a.ok), []);
  });

  it('every-node-supplied breaks on a node whose supply failed', () => {
    const run = goodRun();
    run.nodes[2] = { ...run.nodes[2]!, source: undefined, error: 'no provider answered' } as NodeRecord;
    assert.deepEqual(everyNodeSupplied.violations(run), ['n2 (peer-2): no provider answered']);
  });

  it('built-once breaks on a second build, on build traces, and on a builder that did not build', () => {
    const run = goodRun();
    run.nodes[1] = { ...run.nodes[1]!, source: 'built' };
    run.nodes[2] = { ...run.nodes[2]!, built: true };
    assert.deepEqual(builtOnce.violations(run), ['n1: its source is built, not peer', 'n2: a build ran there (its build log or build folder exists)']);
    const lazy = goodRun();
    lazy.nodes[0] = { ...lazy.nodes[0]!, source: 'peer' };
    assert.deepEqual(builtOnce.violations(lazy), ['n0 (the builder): its source is peer, not built']);
  });

  it('artifact-verified breaks on another artifact, bytes that do not hash to it, a missing entry, or no artifact at all', () => {
    const run = goodRun();
    run.nodes[1] = { ...run.nodes[1]!, artifactHash: 'bafkreisomethingelse' };
    run.nodes[2] = { ...run.nodes[2]!, artifactCid: 'bafkreiother', artifactHash: 'bafkreiother', entries: [] };
    assert.deepEqual(artifactVerified.violations(run), [
      `n1: its artifact's bytes hash to bafkreisomethingelse, not ${ARTIFACT}`,
      `n2: holds artifact bafkreiother, not ${ARTIFACT}`,
      `n2: its artifact's bytes hash to bafkreiother, not ${ARTIFACT}`,
      `n2: node.db keeps no entry of node 0 for ${ARTIFACT}`,
    ]);
    assert.deepEqual(artifactVerified.violations({ ...goodRun(), artifact: undefined }), ['node 0 has no signed entry for the release']);
  });

  it('measures hits, builds and how the fetches spread over the providers', () => {
    const metrics = cacheMetrics(goodRun());
    assert.equal(metrics['builds'], 1);
    assert.equal(metrics['cacheHits'], 2);
    assert.equal(metrics['providers'], 2);
    assert.equal(metrics['maxProviderShare'], 0.5);
    assert.equal(metrics['fetchesFromBuilder'], 1);
    assert.equal(metrics['bytesFetched'], 2200);
  });

  it('plans waves: of a fixed size, or doubling with the nodes holding the release', () => {
    assert.deepEqual(wavesOf(10)(49), [10, 10, 10, 10, 9]);
    assert.deepEqual(wavesOf(10)(2), [2]);
    assert.deepEqual(doublingWaves(49), [1, 2, 4, 8, 16, 18]);
    assert.deepEqual(doublingWaves(1), [1]);
  });
});
