// `slapmesh simulate placement` on a few real nodes, and the rules it is judged by, each shown failing on a
// record made by hand.
import { strict as assert } from 'node:assert';
import { judge } from '../../simulations/assertions.js';
import {
  capacityExceeded, lostOnRestart, referencesPlacedTwice, unansweredRequests, type InstancesRecord, type RequestRecord,
} from '../../simulations/instance-assertions.js';
import { PLACEMENT_ASSERTIONS, placementScenario } from '../../simulations/scenarios/placement.js';

const A = '12D3KooWA';
const B = '12D3KooWB';
const OWNER = '12D3KooWO';

function placed(reference: string, host: string, extra: Partial<RequestRecord> = {}): RequestRecord {
  return { reference, requester: 'n0', owner: OWNER, firedMs: 0, acceptedMs: 10, host, epoch: 1, status: 'ready', readyMs: 100, ...extra };
}

function record(requests: RequestRecord[], hosted: Record<string, [string, number, string?][]>, extra: Partial<InstancesRecord> = {}): InstancesRecord {
  return {
    partitions: 2, requests, peaks: [], kills: [],
    finalHosted: Object.entries(hosted).map(([peerId, entries]) => ({
      node: peerId === A ? 'nA' : 'nB', peerId,
      instances: entries.map(([reference, epoch, status]) => ({ owner: OWNER, reference, epoch, status: status ?? 'ready' })),
    })),
    ...extra,
  };
}

describe('simulations: placement', function () {
  this.timeout(120_000);

  it('three nodes of two partitions take five requests: each placed and ready or refused with a reason, none twice, none over capacity', async () => {
    const scenario = placementScenario({ partitions: 2, requestRate: 10, settleTimeoutMs: 60_000 });
    const result = await scenario.run({ nodes: 3, requests: 5 });
    assert.equal(result.ok, true, JSON.stringify(result.assertions));
    assert.deepEqual(result.assertions.map((a) => a.id), ['every-request-answered', 'no-reference-placed-twice', 'capacity-respected']);
    const metrics = result.metrics as Record<string, number>;
    assert.equal(metrics['requests'], 5);
    assert.equal(metrics['accepted']! + metrics['refused']!, 5);
    assert.ok(metrics['ready']! >= 1 && metrics['ready']! <= metrics['accepted']!);
    assert.ok(metrics['hostedPeak']! <= 2);
    assert.ok(metrics['readyP50Ms']! >= metrics['acceptedP50Ms']!);
    assert.deepEqual(result.plots.map((plot) => plot.id), ['latency', 'instances']);
  });

  it('no-reference-placed-twice fails when two nodes list one reference, or a node lists what its owner placed elsewhere', () => {
    assert.deepEqual(referencesPlacedTwice(record([placed('r1', A)], { [A]: [['r1', 1]] })), []);
    const twice = referencesPlacedTwice(record([placed('r1', A)], { [A]: [['r1', 1]], [B]: [['r1', 2]] }));
    assert.ok(twice.includes(`${OWNER}/r1 is listed by nA (epoch 1) and nB (epoch 2)`), twice.join('\n'));
    assert.ok(twice.some((line) => line.startsWith('r1 is live on nB (epoch 2) though its owner has it on nA')));
    const [judged] = judge(PLACEMENT_ASSERTIONS.filter((a) => a.id === 'no-reference-placed-twice'), record([placed('r1', A)], { [A]: [['r1', 1]], [B]: [['r1', 1]] }));
    assert.equal(judged!.ok, false);
  });

  it('capacity-respected fails when a node listed more instances than its partitions', () => {
    assert.deepEqual(capacityExceeded(record([], {}, { peaks: [{ node: 'nA', count: 2, atMs: 1000 }] })), []);
    assert.deepEqual(capacityExceeded(record([], {}, { peaks: [{ node: 'nA', count: 3, atMs: 1500 }] })), ['nA hosted 3 instances at 1.5 s, with 2 partitions']);
  });

  it('every-request-answered fails for a request never answered, or placed and not ready at the end', () => {
    const requests = [
      placed('ok', A),
      { reference: 'refused', requester: 'n0', owner: OWNER, firedMs: 0, refused: 'no peer accepted refused: …' },
      { reference: 'lost', requester: 'n0', owner: OWNER, firedMs: 0, error: 'no answer in 120 s' },
      placed('stuck', B, { status: 'deploying' }),
      placed('broken', B, { status: 'failed', message: 'make: error' }),
    ];
    assert.deepEqual(unansweredRequests(record(requests, {})), [
      'lost (from n0) was neither placed nor refused with a reason: no answer in 120 s',
      'stuck was placed on 12D3KooWB but is deploying at the end',
    ]);
  });

  it('nothing-lost-on-restart fails for an instance neither back on its restarted host nor moved', () => {
    const kill = { node: 'nA', peerId: A, killedMs: 1000, restartedMs: 5000, hosted: [
      { owner: OWNER, reference: 'back', epoch: 1, status: 'ready' },
      { owner: OWNER, reference: 'moved', epoch: 1, status: 'ready' },
      { owner: OWNER, reference: 'gone', epoch: 1, status: 'deploying' },
      { owner: OWNER, reference: 'stale', epoch: 1, status: 'ready' },
    ] };
    const requests = [placed('back', A), placed('moved', B, { epoch: 2 }), placed('gone', A), placed('stale', B, { epoch: 2 })];
    const violations = lostOnRestart(record(requests, { [A]: [['back', 1], ['stale', 1]], [B]: [['moved', 2], ['stale', 2]] }, { kills: [kill] }));
    assert.deepEqual(violations, [
      'gone is not listed by nA after its restart, though its owner still has it there',
      'stale moved to nB but its old copy is still on nA',
    ]);
    assert.deepEqual(lostOnRestart(record([], {}, { kills: [{ ...kill, restartedMs: undefined, hosted: [] }] })), ['nA was killed at 1.0 s and never started again']);
  });
});
