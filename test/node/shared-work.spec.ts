import { strict as assert } from 'node:assert';
import { SharedWork } from '../../node/shared-work.js';

/** A task that runs until released, counting its runs and noting when it is aborted. */
function gatedTask() {
  let release!: (value: string) => void;
  const gate = new Promise<string>((resolve) => (release = resolve));
  const state = { runs: 0, aborted: false, release };
  const work = (signal: AbortSignal) => {
    state.runs++;
    signal.addEventListener('abort', () => (state.aborted = true));
    return gate;
  };
  return { state, work };
}

describe('node/shared-work', () => {
  it('runs a key once for every caller that comes while it runs, and again afterwards', async () => {
    const shared = new SharedWork<string, string>();
    const { state, work } = gatedTask();
    const first = shared.run('blob', AbortSignal.timeout(10_000), work);
    const second = shared.run('blob', AbortSignal.timeout(10_000), work);
    state.release('bytes');
    assert.deepEqual(await Promise.all([first, second]), ['bytes', 'bytes']);
    assert.equal(state.runs, 1);
    assert.equal(await shared.run('blob', AbortSignal.timeout(10_000), async () => 'again'), 'again');
  });

  it('gives every caller the failure of the run they share', async () => {
    const shared = new SharedWork<string, string>();
    const failing = async () => {
      throw new Error('no provider');
    };
    const results = await Promise.allSettled([shared.run('k', AbortSignal.timeout(10_000), failing), shared.run('k', AbortSignal.timeout(10_000), failing)]);
    assert.deepEqual(results.map((r) => r.status === 'rejected' && (r.reason as Error).message), ['no provider', 'no provider']);
  });

  it('lets a caller give up while the others keep the run going, and aborts it when the last one gives up', async () => {
    const shared = new SharedWork<string, string>();
    const { state, work } = gatedTask();
    const quitter = new AbortController();
    const stayer = new AbortController();
    const gaveUp = shared.run('k', quitter.signal, work);
    const stays = shared.run('k', stayer.signal, work);
    quitter.abort(new Error('the first caller stopped'));
    await assert.rejects(gaveUp, /the first caller stopped/);
    assert.equal(state.aborted, false);
    stayer.abort(new Error('the second caller stopped'));
    await assert.rejects(stays, /the second caller stopped/);
    assert.equal(state.aborted, true);
    // idle() waits for the aborted run to finish (a stopping node waits for its cleanup).
    let idle = false;
    const waiting = shared.idle().then(() => (idle = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(idle, false);
    state.release('finished after its abort');
    await waiting;
    // A newcomer does not join the aborted run: it starts its own.
    assert.equal(await shared.run('k', AbortSignal.timeout(10_000), async () => 'fresh'), 'fresh');
  });

  it('tells every caller waiting what the run emits, from when it joins until it leaves', async () => {
    const shared = new SharedWork<string, string, number>();
    let release!: () => void;
    let emitNow!: (event: number) => void;
    const started = new Promise<void>((ready) => {
      void shared.run('k', AbortSignal.timeout(10_000), (_signal, emit) => {
        emitNow = emit;
        ready();
        return new Promise<string>((resolve) => (release = () => resolve('done')));
      });
    });
    await started;
    const heard: Record<string, number[]> = { first: [], second: [], quitter: [] };
    const quitter = new AbortController();
    const first = shared.run('k', AbortSignal.timeout(10_000), async () => 'unused', (event) => heard.first!.push(event));
    const gaveUp = shared.run('k', quitter.signal, async () => 'unused', (event) => heard.quitter!.push(event));
    emitNow(1);
    quitter.abort(new Error('stopped waiting'));
    await assert.rejects(gaveUp, /stopped waiting/);
    const second = shared.run('k', AbortSignal.timeout(10_000), async () => 'unused', (event) => heard.second!.push(event));
    emitNow(2);
    release();
    assert.deepEqual(await Promise.all([first, second]), ['done', 'done']);
    emitNow(3); // after the run: nobody listens any more
    assert.deepEqual(heard, { first: [1, 2], second: [2], quitter: [1] });
  });

  it('refuses a caller whose signal has already aborted, without starting anything', async () => {
    const shared = new SharedWork<string, string>();
    const { state, work } = gatedTask();
    assert.throws(() => shared.run('k', AbortSignal.abort(new Error('too late')), work), /too late/);
    assert.equal(state.runs, 0);
  });
});
