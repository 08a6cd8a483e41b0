// The blob store on real files in a temporary folder.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobStore } from '../../../node/cache/blob-store.js';
import { ChunkWriterThread } from '../../../node/cache/chunk-writer.js';
import { CHUNK_SIZE, cidOfBytes, hashFile } from '../../../node/cache/cid.js';
import { removeTree } from '../../helpers/files.js';

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

/** Sets a blob's last use to `secondsAgo` seconds ago. */
function usedAgo(store: BlobStore, cid: string, secondsAgo: number): void {
  const time = new Date(Date.now() - secondsAgo * 1000);
  utimesSync(join(store.root, 'blobs', cid), time, time);
}

describe('node/cache/blob-store', () => {
  let root: string;
  let store: BlobStore;

  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'slapmesh-blobs-'));
    store = new BlobStore(join(root, 'cache'));
    await store.init();
  });

  afterEach(() => removeTree(root));

  it('puts a copy of a file under its CID, read-only, and reads it back from any offset', async () => {
    const bytes = randomBytes(CHUNK_SIZE + 1000);
    const file = join(root, 'input');
    writeFileSync(file, bytes);
    const put = await store.put(file);
    assert.deepEqual(put, await hashFile(file));
    assert.equal(put.cid, cidOfBytes(bytes));
    assert.ok(existsSync(file), 'a copy leaves the file');
    const path = await store.path(put.cid);
    assert.equal(path, join(root, 'cache', 'blobs', put.cid));
    assert.equal(statSync(path).mode & 0o777, 0o444);
    assert.equal(await store.has(put.cid), true);
    assert.equal(await store.size(put.cid), bytes.byteLength);
    const whole = await store.open(put.cid);
    assert.equal(whole?.size, bytes.byteLength);
    assert.deepEqual(await readAll(whole!.stream()), bytes);
    const tail = await store.open(put.cid, 700_000);
    assert.deepEqual(await readAll(tail!.stream()), bytes.subarray(700_000));
    const end = await store.open(put.cid, bytes.byteLength);
    assert.equal((await readAll(end!.stream())).byteLength, 0);
    await assert.rejects(store.open(put.cid, bytes.byteLength + 1), RangeError);
    assert.deepEqual(readdirSync(join(root, 'cache', 'tmp')), []);
  });

  it('moves a file in, takes bytes, and knows nothing of absent blobs', async () => {
    const file = join(root, 'moved');
    writeFileSync(file, 'bundle');
    const moved = await store.put(file, { move: true });
    assert.equal(existsSync(file), false);
    assert.equal(moved.cid, cidOfBytes(Buffer.from('bundle')));
    const bytes = await store.putBytes(new TextEncoder().encode('bytes'));
    assert.equal(readFileSync((await store.path(bytes.cid))!, 'utf8'), 'bytes');
    const absent = cidOfBytes(Buffer.from('absent'));
    assert.equal(await store.has(absent), false);
    assert.equal(await store.path(absent), undefined);
    assert.equal(await store.size(absent), undefined);
    assert.equal(await store.open(absent), undefined);
    assert.equal(await store.remove(absent), false);
    assert.equal(await store.remove(bytes.cid), true);
    assert.deepEqual((await store.list()).map((blob) => blob.cid), [moved.cid]);
    await assert.rejects(store.has('../../etc/passwd'), { name: 'InvalidCidError' });
  });

  it('opening a blob counts as a use; gc evicts the least recently used first, never those kept', async () => {
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((name) => store.putBytes(Buffer.alloc(1000, name))));
    usedAgo(store, a!.cid, 300);
    usedAgo(store, b!.cid, 200);
    usedAgo(store, c!.cid, 100);
    const reader = await store.open(a!.cid); // a is now the most recently used
    await reader!.handle.close();
    assert.ok((await store.list()).find((blob) => blob.cid === a!.cid)!.lastUsed > Date.now() - 60_000);
    assert.deepEqual(await store.gc(3000), []);
    assert.deepEqual((await store.gc(2000)).map((blob) => blob.cid), [b!.cid]);
    assert.deepEqual((await store.gc(1000, new Set([c!.cid]))).map((blob) => blob.cid), [a!.cid]);
    assert.deepEqual((await store.list()).map((blob) => blob.cid), [c!.cid]);
    assert.deepEqual(await store.stats(), { blobs: 1, bytes: 1000, partials: 0, partialBytes: 0 });
  });

  it('verify() removes the blobs whose bytes no longer match their CID', async () => {
    const good = await store.putBytes(randomBytes(5000));
    const bad = await store.putBytes(randomBytes(5000));
    const path = (await store.path(bad.cid))!;
    chmodSync(path, 0o644);
    const handle = await open(path, 'r+');
    await handle.write(Buffer.from([0xff ^ readFileSync(path)[4000]!]), 0, 1, 4000);
    await handle.close();
    assert.deepEqual(await store.verify(), [bad.cid]);
    assert.equal(await store.has(bad.cid), false);
    assert.equal(await store.has(good.cid), true);
  });

  it('init() empties tmp/; files that are not blobs are not listed', async () => {
    writeFileSync(join(root, 'cache', 'tmp', 'left-over'), 'x');
    writeFileSync(join(root, 'cache', 'blobs', 'stranger'), 'x');
    await store.init();
    assert.deepEqual(readdirSync(join(root, 'cache', 'tmp')), []);
    assert.deepEqual(await store.list(), []);
  });

  describe('partial downloads', () => {
    const bytes = randomBytes(3 * CHUNK_SIZE + CHUNK_SIZE / 2);
    let cid: string;
    let chunks: string[];
    const chunk = (i: number) => bytes.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE);

    before(async () => {
      const dir = mkdtempSync(join(tmpdir(), 'slapmesh-blob-'));
      writeFileSync(join(dir, 'blob'), bytes);
      ({ cid, chunks } = await hashFile(join(dir, 'blob')));
      removeTree(dir);
    });

    it('resumes at the verified prefix: a torn chunk is cut off, a corrupted one and all after it too', async () => {
      const partialFile = join(root, 'cache', 'partial', cid);
      const first = await store.partial(cid, { chunks });
      assert.equal(first.offset, 0);
      await first.append(chunk(0));
      await first.append([chunk(1).subarray(0, 1000), chunk(1).subarray(1000)]);
      await first.append(chunk(2).subarray(0, 12345)); // a crash in the middle of chunk 2
      await first.close();
      assert.equal(statSync(partialFile).size, 2 * CHUNK_SIZE + 12345);

      const second = await store.partial(cid, { chunks });
      assert.equal(second.offset, 2 * CHUNK_SIZE);
      assert.equal(statSync(partialFile).size, 2 * CHUNK_SIZE);
      await second.close();

      // Flip a byte of chunk 1: only chunk 0 remains.
      const handle = await open(partialFile, 'r+');
      await handle.write(Buffer.from([chunk(1)[77]! ^ 1]), 0, 1, CHUNK_SIZE + 77);
      await handle.close();
      const third = await store.partial(cid, { chunks });
      assert.equal(third.offset, CHUNK_SIZE);
      await third.append([chunk(1), chunk(2)]);
      await third.append(chunk(3)); // the short last chunk
      assert.equal(await store.has(cid), false, 'a partial download is not a blob');
      const path = await third.complete();
      assert.equal(path, await store.path(cid));
      assert.deepEqual(readFileSync(path), bytes);
      assert.equal(statSync(path).mode & 0o777, 0o444);
      assert.equal(existsSync(partialFile), false);
    });

    /** The bytes as a stream of pieces of `size` bytes (not aligned with chunks). */
    function* pieces(from: Uint8Array, size: number): Generator<Uint8Array> {
      for (let at = 0; at < from.byteLength; at += size) yield from.subarray(at, at + size);
    }

    it('appendStream checks each chunk as it streams: a bad one stops it there, keeping only the chunks before it', async () => {
      const corrupted = Buffer.from(bytes);
      corrupted.writeUInt8(corrupted.readUInt8(2 * CHUNK_SIZE + 5) ^ 1, 2 * CHUNK_SIZE + 5);
      const partialFile = join(root, 'cache', 'partial', cid);
      const partial = await store.partial(cid, { chunks });
      await assert.rejects(partial.appendStream(pieces(corrupted, 100_000)), { name: 'ChunkMismatchError', message: 'chunk 2 does not match its hash' });
      assert.equal(partial.offset, 2 * CHUNK_SIZE);
      assert.equal(statSync(partialFile).size, 2 * CHUNK_SIZE, 'neither chunk 2 nor any after it was written');
      await partial.appendStream(pieces(bytes.subarray(partial.offset), 77_777));
      assert.deepEqual(readFileSync(await partial.complete()), bytes);
    });

    it('appendStream through a writer thread of two slots, after a resume between chunk boundaries, stores the blob whole', async () => {
      const small = new BlobStore(join(root, 'cache'), { writers: new ChunkWriterThread(2) });
      const first = await small.partial(cid);
      await first.append(bytes.subarray(0, 12345));
      await first.close();
      const second = await small.partial(cid);
      assert.equal(second.offset, 12345);
      await second.appendStream(pieces(bytes.subarray(12345), 300_000));
      assert.deepEqual(readFileSync(await second.complete()), bytes);
      const again = await small.partial(cidOfBytes(bytes.subarray(0, 3 * CHUNK_SIZE)), { chunks: chunks.slice(0, 3) });
      await again.appendStream([bytes.subarray(0, 3 * CHUNK_SIZE)]);
      assert.equal(again.offset, 3 * CHUNK_SIZE);
      await again.complete();
    });

    it('keeps a whole partial file whose last short chunk is complete, and everything without chunk hashes', async () => {
      const whole = await store.partial(cid);
      await whole.append(bytes.subarray(0, 2 * CHUNK_SIZE + 999));
      await whole.close();
      const unchecked = await store.partial(cid);
      assert.equal(unchecked.offset, 2 * CHUNK_SIZE + 999);
      await unchecked.append(bytes.subarray(2 * CHUNK_SIZE + 999));
      await unchecked.close();
      const checked = await store.partial(cid, { chunks });
      assert.equal(checked.offset, bytes.byteLength);
      await checked.complete();
      assert.equal(await store.has(cid), true);
    });

    it('complete() refuses bytes that do not match the CID and removes the partial file', async () => {
      const partial = await store.partial(cid);
      await partial.append(randomBytes(1000));
      await assert.rejects(partial.complete(), { name: 'BlobMismatchError' });
      assert.equal(await store.has(cid), false);
      assert.deepEqual(readdirSync(join(root, 'cache', 'partial')), []);
      const again = await store.partial(cid);
      assert.equal(again.offset, 0);
      await again.discard();
    });

    it('one writer per blob at a time', async () => {
      const partial = await store.partial(cid);
      await assert.rejects(store.partial(cid), { name: 'PartialBusyError' });
      await partial.close();
      await (await store.partial(cid)).discard();
      assert.deepEqual(readdirSync(join(root, 'cache', 'partial')), []);
    });

    it('stats() counts partial downloads apart', async () => {
      const partial = await store.partial(cid);
      await partial.append(chunk(0));
      await partial.close();
      assert.deepEqual(await store.stats(), { blobs: 0, bytes: 0, partials: 1, partialBytes: CHUNK_SIZE });
    });
  });
});
