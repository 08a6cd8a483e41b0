import { strict as assert } from 'node:assert';
import { Limiter } from '../../node/limiter.js';

describe('node/limiter', () => {
  it('runs at most N tasks at once, in the order they came, and goes on after a failure', async () => {
    const limiter = new Limiter(2);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const gates = Array.from({ length: 5 }, () => {
      let resolve!: () => void;
      const promise = new Promise<void>((done) => (resolve = done));
      return { promise, resolve };
    });
    const tasks = gates.map((gate, i) => limiter.run(async () => {
      running++;
      most = Math.max(most, running);
      order.push(i);
      await gate.promise;
      running--;
      if (i === 1) throw new Error('task 1 fails');
      return i;
    }));
    for (const gate of gates) {
      await Promise.resolve();
      gate.resolve();
    }
    const results = await Promise.allSettled(tasks);
    assert.equal(most, 2);
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
  });
});
