// `slapmesh simulate join` on a few real nodes: the adverts converge and the record says so.
import { strict as assert } from 'node:assert';
import { JOIN_ASSERTIONS, join, type JoinRecord } from '../../simulations/scenarios/join.js';
import { judge } from '../../simulations/assertions.js';

describe('simulations: join', function () {
  this.timeout(90_000);

  it('four nodes converge: every node holds every other node\'s advert, and the metrics say when', async () => {
    const result = await join.run({ nodes: 4 });
    assert.equal(result.ok, true, JSON.stringify(result.assertions));
    assert.deepEqual(result.assertions.map((a) => [a.id, a.ok]), [['every-node-joined', true], ['converged', true]]);
    const { converged50Seconds, converged100Seconds, allStartedSeconds } = result.metrics as Record<string, number>;
    assert.ok(converged50Seconds! > 0 && converged50Seconds! <= converged100Seconds! && converged100Seconds! <= result.seconds);
    assert.ok(allStartedSeconds! > 0 && allStartedSeconds! < result.seconds);
    const convergence = result.plots.find((plot) => plot.id === 'convergence')!;
    assert.equal(convergence.series[0]!.points.at(-1)![1], 100);
    assert.ok(convergence.series[0]!.points.length <= 500);
  });

  it('a mesh that did not converge breaks `converged`, naming the adverts missing', () => {
    const record: JoinRecord = {
      deadlineMs: 1000,
      nodes: [
        { name: 'n0', running: true, connections: 1, missing: [] },
        { name: 'n1', running: true, connections: 1, missing: ['n2'] },
        { name: 'n2', running: false, connections: 0, missing: ['n0', 'n1'] },
      ],
    };
    const [joined, converged] = judge(JOIN_ASSERTIONS, record);
    assert.deepEqual(joined!.violations, ['n2 is not running']);
    assert.equal(converged!.ok, false);
    assert.ok(converged!.violations.includes('n1 lacks 1 advert: n2'));
  });
});
