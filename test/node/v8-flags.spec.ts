// V8's collector as newer V8 runs it (node/v8-flags.ts): which V8 needs the flag, and what it changes, in a
// child process that throws away buffers beside a heap it keeps, as a node moving bytes does.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { needsExternalMemoryFlag } from '../../node/v8-flags.js';

const MODULE = new URL('../../node/v8-flags.js', import.meta.url).href;

/** Major collections in a process that allocates 512 MiB in 256 KiB buffers it drops, beside 200,000 objects it keeps. */
function majorCollections(setFlag: boolean): number {
  const script = `
    import { PerformanceObserver, constants } from 'node:perf_hooks';
    import { countExternalMemoryAsHeld } from ${JSON.stringify(MODULE)};
    if (${setFlag} && !countExternalMemoryAsHeld()) throw new Error('the flag was not set');
    let major = 0;
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) if (entry.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++;
    });
    observer.observe({ entryTypes: ['gc'] });
    const kept = Array.from({ length: 200000 }, (_, i) => ({ i, text: String(i) }));
    for (let i = 0; i < 2048; i++) {
      Buffer.allocUnsafe(256 * 1024).fill(i);
      await new Promise(setImmediate); // the collector's tasks run between them, as between socket reads
    }
    // GC entries are delivered after the event that made them: one more turn.
    setTimeout(() => process.stdout.write(JSON.stringify({ major, kept: kept.length })), 20);
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  return (JSON.parse(out) as { major: number }).major;
}

describe('node/v8-flags', function () {
  this.timeout(60_000);

  it('asks for the flag on V8 13.x to 14.7 only (14.8 behaves so without it, and no longer knows it)', () => {
    assert.equal(needsExternalMemoryFlag('13.6.233.17-node.53'), true); // Node 24
    assert.equal(needsExternalMemoryFlag('14.6.202.9-node.12'), true);
    assert.equal(needsExternalMemoryFlag('14.7.1'), true);
    assert.equal(needsExternalMemoryFlag('14.8.0'), false);
    assert.equal(needsExternalMemoryFlag('15.1.2'), false);
    assert.equal(needsExternalMemoryFlag('12.4.254.21-node.33'), false); // Node 22: not known to have it
  });

  it('with it, buffers thrown away no longer start full collections of a heap that is kept', function () {
    if (!needsExternalMemoryFlag(process.versions.v8)) this.skip(); // this V8 behaves so by itself
    const without = majorCollections(false);
    const withFlag = majorCollections(true);
    assert.ok(without >= 4, `without the flag, ${without} full collections (expected one every 64 MB or so)`);
    assert.ok(withFlag * 4 <= without, `with the flag, ${withFlag} full collections against ${without} without`);
  });
});
