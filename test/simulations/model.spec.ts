import { strict as assert } from 'node:assert';
import { judge } from '../../simulations/assertions.js';
import { runModel, type ModelOptions } from '../../simulations/model.js';
import { modelAssertions, type ModelRecord } from '../../simulations/model-record.js';
import { EventQueue } from '../../simulations/model-queue.js';
import { seededRandom, zipf } from '../../simulations/random.js';
import type { SimulationResult } from '../../simulations/types.js';

const failing = (result: SimulationResult) => result.assertions.filter((a) => !a.ok).map((a) => `${a.id}: ${a.violations.slice(0, 3).join('; ')}`);
const small: ModelOptions = { nodes: 200, requests: 2000, requesters: 20, seed: 7 };

describe('simulations/model: placement and cache policies on a model mesh', () => {
  it('places 2,000 requests on 200 nodes with every assertion holding, and reports metrics and small plots', async () => {
    const result = await runModel(small);
    assert.deepEqual(failing(result), []);
    assert.equal(result.ok, true);
    assert.equal(result.scenario, 'model');
    const m = result.metrics;
    assert.equal(m['requests'], 2000);
    assert.equal(Number(m['placed']) + Number(m['refused']), 2000);
    assert.ok(Number(m['placed']) > 1900, `placed ${m['placed']}`);
    assert.equal(m['nodesOverCapacity'], 0);
    assert.equal(m['placedTwice'], 0);
    // Two calls (reserve, confirm) of 2 ms round trip each at best.
    assert.ok(Number(m['acceptedP50Ms']) >= 0 && Number(m['acceptedP99Ms']) >= Number(m['acceptedP50Ms']));
    assert.ok(Number(m['readyP50Ms']) >= 1_000, 'ready no sooner than the deployment takes (1 s by default)');
    for (const id of ['capacity-respected', 'no-reference-placed-twice', 'every-request-answered', 'cache-used']) {
      assert.ok(result.assertions.some((a) => a.id === id), id);
    }
    assert.ok(result.plots.length >= 3);
    for (const plot of result.plots) for (const series of plot.series) assert.ok(series.points.length <= 500, `${plot.id} has ${series.points.length} points`);
    const convergence = result.plots.find((p) => p.id === 'convergence')!.series[0]!.points;
    assert.equal(convergence[convergence.length - 1]![1], 1, 'every view ends up knowing a holder of every held release');
  });

  it('gives the same metrics for the same seed, and others for another', async () => {
    const options: ModelOptions = { nodes: 100, requests: 800, requesters: 10, seed: 42, churn: 0.05 };
    const strip = ({ wallSeconds: _w, eventsPerSecond: _e, ...rest }: Record<string, unknown>) => rest;
    const [a, b, c] = [await runModel(options), await runModel(options), await runModel({ ...options, seed: 43 })];
    assert.deepEqual(strip(a.metrics), strip(b.metrics));
    assert.deepEqual(a.plots, b.plots);
    assert.notDeepEqual(strip(a.metrics), strip(c.metrics));
  });

  it('never exceeds a node\'s capacity when requests exceed the whole mesh\'s: the rest are refused with a reason', async () => {
    const result = await runModel({ nodes: 20, partitions: 5, requests: 300, requesters: 5, seed: 3, requestsPerSecond: 5 });
    assert.deepEqual(failing(result), []);
    const m = result.metrics;
    assert.ok(Number(m['placed']) <= 100, `placed ${m['placed']} on 100 partitions`);
    assert.ok(Number(m['placed']) >= 90, `placed ${m['placed']}`);
    assert.equal(Number(m['refused']), 300 - Number(m['placed']));
    assert.ok(Number(m['triesRefusedNoFreePartition']) > 0 || Number(m['refusedNoPeerKnown']) > 0);
    assert.equal(m['maxPartitionsUsedShare'], 1);
    assert.equal(m['nodesOverCapacity'], 0);
  });

  it('supplies a popular release from peers\' artifacts far more often than it builds it', async () => {
    // Nobody holds it at first: the first hosts build, then everyone fetches what they advertise.
    const result = await runModel({ nodes: 200, partitions: 5, requests: 800, requesters: 20, releases: 1, prebuilt: false, trustAnyBuilder: true, buildSeconds: 5, seed: 5 });
    assert.deepEqual(failing(result), []);
    const { cacheHits, builds } = result.metrics as { cacheHits: number; builds: number };
    assert.ok(builds >= 1, 'someone had to build it');
    assert.ok(cacheHits > 5 * builds, `${cacheHits} hits, ${builds} builds`);
    // Prebuilt by a trusted builder: nobody builds at all.
    const prebuilt = await runModel({ ...small, requests: 500 });
    assert.equal(prebuilt.metrics['builds'], 0);
    assert.ok(Number(prebuilt.metrics['cacheHits']) > 0);
  });

  it('moves the instances of nodes that die, and still holds every assertion', async () => {
    const result = await runModel({ nodes: 100, requests: 1000, requesters: 10, churn: 0.2, seed: 11 });
    assert.deepEqual(failing(result), []);
    assert.equal(result.metrics['nodesFailed'], 20);
    assert.ok(Number(result.metrics['moved']) > 0, 'instances moved off dead hosts');
    const alive = result.plots.find((p) => p.id === 'nodes-alive')!.series[0]!.points;
    assert.equal(alive[0]![1], 100);
    assert.equal(alive[alive.length - 1]![1], 80);
  });

  it('fails cache-used when hosts build what a trusted peer holds (a broken cache policy)', async () => {
    const result = await runModel({ ...small, requests: 300, cache: 'never' });
    assert.equal(result.ok, false);
    const cacheUsed = result.assertions.find((a) => a.id === 'cache-used')!;
    assert.equal(cacheUsed.ok, false);
    assert.match(cacheUsed.violations[0]!, /built release-\d+ at .* while node-\d+ held/);
    assert.equal(result.metrics['cacheHits'], 0);
  });

  it('fails the other assertions on a record that breaks them', () => {
    const bad: ModelRecord = {
      nodes: [
        { id: 'a', capacity: 2, peakUsed: 3, alive: true, hosted: ['x', 'y'] },
        { id: 'b', capacity: 2, peakUsed: 1, alive: true, hosted: ['x'] },
        { id: 'c', capacity: 2, peakUsed: 1, alive: false, hosted: ['y'] },
      ],
      requests: [{ reference: 'x', outcome: 'placed' }, { reference: 'y', outcome: 'placed' }, { reference: 'z' }, { reference: 'w', outcome: 'refused' }],
      builds: [{ at: 5000, node: 'b', release: 'r' }, { at: 5000, node: 'c', release: 'r' }],
      holdings: [
        { node: 'a', release: 'r', signer: 'a', advertisedAt: 1000 },
        { node: 'c', release: 'r', signer: 'untrusted', advertisedAt: 1000 },
      ],
      trust: { anyBuilder: false, builders: ['a'] },
    };
    const results = Object.fromEntries(judge(modelAssertions, bad).map((a) => [a.id, a]));
    assert.deepEqual(results['capacity-respected']!.violations, ['a used 3 of 2 partitions']);
    // y is on a (alive) and c (dead): only x is live twice.
    assert.deepEqual(results['no-reference-placed-twice']!.violations, ['x is live on a, b']);
    assert.deepEqual(results['every-request-answered']!.violations, ['z got no answer', 'w was refused without a reason']);
    // b and c could both have used a's artifact (a is a trusted builder); c's own is not trusted by b.
    assert.equal(results['cache-used']!.violations.length, 2);
    const clean: ModelRecord = { ...bad, nodes: [], requests: [], builds: [{ at: 500, node: 'b', release: 'r' }] };
    assert.ok(judge(modelAssertions, clean).every((a) => a.ok), 'a build before any advert is no violation');
  });
});

describe('simulations/model: its clock and its random numbers', () => {
  it('runs events in time order, same-time events in the order they were scheduled', () => {
    const queue = new EventQueue();
    const order: string[] = [];
    const random = seededRandom(1);
    for (let i = 0; i < 200; i++) {
      const at = Math.floor(random() * 50);
      queue.after(at, () => order.push(`${String(at).padStart(3, '0')}:${String(i).padStart(3, '0')}`));
    }
    queue.after(10, () => queue.after(0, () => order.push('010:nested')));
    while (queue.step());
    const times = order.map((entry) => entry.slice(0, 3));
    assert.deepEqual(times, [...times].sort());
    for (let i = 1; i < order.length; i++) {
      if (times[i] === times[i - 1] && !order[i]!.endsWith('nested')) assert.ok(order[i - 1]! < order[i]! || order[i - 1]!.endsWith('nested'));
    }
    assert.equal(queue.fired, 202);
  });

  it('draws the same numbers from the same seed, and Zipf ranks with the first most often', () => {
    const a = seededRandom(9);
    const b = seededRandom(9);
    for (let i = 0; i < 100; i++) assert.equal(a(), b());
    const draw = zipf(seededRandom(2), 10, 1);
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < 20_000; i++) counts[draw()]!++;
    assert.ok(counts[0]! > 1.6 * counts[1]! && counts[1]! > counts[9]!, counts.join(' '));
  });
});
