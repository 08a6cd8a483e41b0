// `slapmesh simulate churn` on a few real nodes: hosts killed with SIGKILL while requests flow, started
// again on their data directories; nothing lost, nothing twice. Short leases and downtimes, so that one run
// shows both an instance revived where it was and one moved by its owner.
import { strict as assert } from 'node:assert';
import { churnScenario } from '../../simulations/scenarios/churn.js';

describe('simulations: churn', function () {
  this.timeout(150_000);

  it('five nodes, two killed and restarted while six requests flow: every assertion holds', async () => {
    const scenario = churnScenario({ partitions: 3, requestRate: 1, hostingLeaseMs: 3_000, waves: 1, downMs: [500, 7_000], settleTimeoutMs: 60_000 });
    const result = await scenario.run({ nodes: 5, requests: 6, seed: 7 });
    assert.deepEqual(result.assertions.map((a) => a.id), ['nothing-lost-on-restart', 'no-reference-placed-twice', 'capacity-respected', 'every-request-answered']);
    assert.equal(result.ok, true, JSON.stringify(result.assertions));
    const metrics = result.metrics as Record<string, number>;
    assert.equal(metrics['victims'], 2);
    assert.equal(metrics['kills'], 2);
    assert.equal(metrics['restarts'], 2);
    assert.equal(metrics['accepted']! + metrics['refused']!, 6);
    const alive = result.plots.find((plot) => plot.id === 'nodes-alive')!.series[0]!.points.map(([, count]) => count);
    assert.equal(Math.max(...alive), 5);
    assert.equal(Math.min(...alive.slice(alive.indexOf(5))), 3, 'two nodes were down at once');
  });
});
