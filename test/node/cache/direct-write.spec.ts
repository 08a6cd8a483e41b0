// Direct writes on a real file opened with O_DIRECT in the temporary folder (skipped where the system or the
// filesystem has no direct I/O): the kernel refuses a misaligned buffer, so a direct write that succeeds
// from an arbitrary buffer shows the staging buffer was aligned.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHUNK_SIZE } from '../../../node/cache/cid.js';
import { DIRECT_ALIGNMENT, DirectWriter } from '../../../node/cache/direct-write.js';
import { removeTree } from '../../helpers/files.js';

describe('node/cache/direct-write', () => {
  let dir: string;
  let file: string;
  let directFd: number | undefined;

  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'slapmesh-direct-'));
    file = join(dir, 'blob');
    if (constants.O_DIRECT === undefined) this.skip();
    try {
      directFd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT, 0o644);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EINVAL') this.skip();
      throw error;
    }
  });

  afterEach(() => {
    if (directFd !== undefined) closeSync(directFd);
    directFd = undefined;
    removeTree(dir);
  });

  it('writes whole blocks directly from a buffer at any address, and leaves the rest to the caller', () => {
    const writer = new DirectWriter();
    const bytes = randomBytes(2 * CHUNK_SIZE + 1000);
    // Views that start 3 and 5 bytes into their memory: misaligned for any disk.
    const first = new Uint8Array(CHUNK_SIZE + 3).subarray(3);
    first.set(bytes.subarray(0, CHUNK_SIZE));
    assert.equal(writer.write(directFd!, first, 0), CHUNK_SIZE);

    const second = new Uint8Array(CHUNK_SIZE + 1005).subarray(5);
    second.set(bytes.subarray(CHUNK_SIZE));
    const written = writer.write(directFd!, second, CHUNK_SIZE);
    assert.equal(written, CHUNK_SIZE, 'the whole blocks of a chunk and a bit');
    assert.equal(writer.write(directFd!, second.subarray(written), CHUNK_SIZE + written), 0, 'less than a block');

    const buffered = openSync(file, 'r+');
    try {
      writeSync(buffered, second, written, second.byteLength - written, CHUNK_SIZE + written);
    } finally {
      closeSync(buffered);
    }
    assert.deepEqual(readFileSync(file), bytes);
  });

  it('writes nothing at an offset that is not on a block boundary', () => {
    const writer = new DirectWriter();
    assert.equal(writer.write(directFd!, randomBytes(2 * DIRECT_ALIGNMENT), DIRECT_ALIGNMENT / 2), 0);
    assert.equal(readFileSync(file).byteLength, 0);
  });
});
