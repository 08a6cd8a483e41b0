// Blob CIDs: a CID of the blob's manifest (its size and chunk hashes), so one sha256 pass names a blob.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base58btc } from 'multiformats/bases/base58';
import { CID } from 'multiformats/cid';
import { blobCid, CHUNK_SIZE, chunkHashes, cidOfBytes, cidOfText, hashFile, isBlobCid, parseBlobCid } from '../../../node/cache/cid.js';

const sha256hex = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

describe('node/cache/cid', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'slapmesh-cid-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('names a blob by the sha256 of its manifest: CIDv1, json codec, the manifest as docs/cache.md gives it', () => {
    const bytes = randomBytes(CHUNK_SIZE + 5);
    const chunks = [sha256hex(bytes.subarray(0, CHUNK_SIZE)), sha256hex(bytes.subarray(CHUNK_SIZE))];
    const manifest = `{"chunkSize":1048576,"size":${CHUNK_SIZE + 5},"chunks":["${chunks[0]}","${chunks[1]}"]}`;
    const cid = CID.parse(cidOfBytes(bytes));
    assert.equal(cid.version, 1);
    assert.equal(cid.code, 0x0200, 'json');
    assert.equal(cid.multihash.code, 0x12, 'sha2-256');
    assert.equal(Buffer.from(cid.multihash.digest).toString('hex'), sha256hex(manifest));
    assert.deepEqual(chunkHashes(bytes), chunks);
    assert.equal(blobCid(bytes.byteLength, chunks), cid.toString());
    assert.match(cid.toString(), /^bagaaiera/);
  });

  it('hashFile gives the same CID and chunks as the bytes, on and around chunk boundaries (an empty blob is one empty chunk)', async () => {
    for (const size of [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE]) {
      const bytes = randomBytes(size);
      const file = join(dir, `blob-${size}`);
      writeFileSync(file, bytes);
      assert.deepEqual(await hashFile(file), { cid: cidOfBytes(bytes), size, chunks: chunkHashes(bytes) }, `${size} bytes`);
      assert.equal(chunkHashes(bytes).length, Math.max(1, Math.ceil(size / CHUNK_SIZE)));
    }
    assert.deepEqual(chunkHashes(new Uint8Array(0)), [sha256hex('')]);
  });

  it('takes only blob CIDs in canonical form as blob names; other keys are raw CIDs', () => {
    const cid = cidOfBytes(Buffer.from('a bundle'));
    assert.equal(parseBlobCid(cid), cid);
    assert.equal(isBlobCid(cid), true);
    const raw = cidOfText('release/x/linux');
    assert.equal(CID.parse(raw).code, 0x55);
    assert.throws(() => parseBlobCid(raw), { name: 'InvalidCidError' });
    assert.equal(isBlobCid(raw), false);
    const base58 = CID.parse(cid).toString(base58btc);
    assert.equal(parseBlobCid(base58), cid, 'canonical form: base32');
    assert.equal(isBlobCid(base58), false);
    assert.throws(() => parseBlobCid('not a cid'), { name: 'InvalidCidError' });
  });
});
