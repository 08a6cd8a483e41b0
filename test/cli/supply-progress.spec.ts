// What `slapmesh supply` shows on a terminal while the node works: build steps as lines, and a download as one
// line redrawn in place, ended once the download is whole.
import { strict as assert } from 'node:assert';
import type { CliIo } from '../../cli/io.js';
import { SupplyProgress } from '../../cli/supply/index.js';

const MiB = 2 ** 20;
const PEER = '12D3KooWExample';

describe('cli: slapmesh supply progress', () => {
  let written: string;
  let clock: number;
  let progress: SupplyProgress;

  beforeEach(() => {
    written = '';
    clock = 0;
    const io: CliIo = { stdout: () => undefined, stderr: (text) => (written += text), cwd: '/', env: {}, isTTY: true };
    progress = new SupplyProgress(io, () => clock);
  });

  const fetch = (bytes: number, at: number, what: 'bundle' | 'artifact' = 'artifact') => {
    clock = at;
    progress.show({ type: 'fetch', what, cid: `cid-of-${what}`, bytes, size: 4 * MiB, peer: PEER });
  };

  it('redraws a download\'s line with its share and speed, and ends it when whole', () => {
    fetch(0, 0);
    fetch(2 * MiB, 500);
    fetch(4 * MiB, 1000);
    assert.equal(written, [
      `\r\x1b[Kfetching the artifact from ${PEER}: 0 B of 4.0 MiB (0%)`,
      `\r\x1b[Kfetching the artifact from ${PEER}: 2.0 MiB of 4.0 MiB (50%, 4.0 MiB/s)`,
      `\r\x1b[Kfetched the artifact from ${PEER}: 4.0 MiB of 4.0 MiB (100%, 4.0 MiB/s)\n`,
    ].join(''));
  });

  it('fits the redrawn line in the terminal, shortening the PeerId first (a wrapped line is not erased)', () => {
    const peer = '12D3KooWQBLToADyzMmTbDHNAvBrBrB9eVk2Ae7MGhhqZSVjNTBw';
    const show = (columns: number, bytes = MiB) => {
      written = '';
      new SupplyProgress({ stdout: () => undefined, stderr: (text) => (written += text), cwd: '/', env: {}, isTTY: true, columns }, () => 0)
        .show({ type: 'fetch', what: 'artifact', cid: 'c', bytes, size: 4 * MiB, peer });
      return written.replace('\r\x1b[K', '');
    };
    assert.equal(show(200), `fetching the artifact from ${peer}: 1.0 MiB of 4.0 MiB (25%)`);
    assert.equal(show(80), 'fetching the artifact from 12D3KooW…NTBw: 1.0 MiB of 4.0 MiB (25%)');
    assert.equal(show(30), 'fetching the artifact from 1…'); // 29 characters: the cursor stays on the line
    // The last line is not redrawn: it is printed whole.
    assert.equal(show(30, 4 * MiB), `fetched the artifact from ${peer}: 4.0 MiB of 4.0 MiB (100%)\n`);
  });

  it('counts the speed from where a resumed download started', () => {
    fetch(3 * MiB, 0, 'bundle');
    fetch(4 * MiB, 250, 'bundle');
    assert.match(written, /fetched the bundle from \S+: 4\.0 MiB of 4\.0 MiB \(100%, 4\.0 MiB\/s\)\n$/);
  });

  it('prints build steps on lines of their own, clearing a download\'s unfinished line first', () => {
    progress.show({ type: 'install', part: 'hello' });
    fetch(MiB, 0);
    progress.show({ type: 'done', part: 'hello', seconds: 1.2 });
    progress.show({ type: 'failed', part: 'other', error: 'make failed' });
    assert.equal(written, [
      'install hello\n',
      `\r\x1b[Kfetching the artifact from ${PEER}: 1.0 MiB of 4.0 MiB (25%)`,
      '\r\x1b[Khello: done in 1.2 s\n',
      'other: failed: make failed\n',
    ].join(''));
  });

  it('clear() erases a download left unfinished (the supply failed), and nothing else', () => {
    progress.clear();
    assert.equal(written, '');
    fetch(MiB, 0);
    written = '';
    progress.clear();
    assert.equal(written, '\r\x1b[K');
  });
});
