// Signed cache entries: what a builder publishes, checked by whoever uses it.
import { strict as assert } from 'node:assert';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { blobCid, CHUNK_SIZE, cidOfBytes } from '../../../node/cache/cid.js';
import { CacheEntryError, formatKey, parseKey, signEntry, verifyEntry, type CacheEntry } from '../../../node/cache/entry.js';

async function rejects(promise: Promise<unknown>, reason: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => error instanceof CacheEntryError && error.name === 'CacheEntryError' && error.reason === reason);
}

describe('node/cache/entry', () => {
  const release = cidOfBytes(new TextEncoder().encode('a bundle'));
  let entry: CacheEntry;
  let key: Awaited<ReturnType<typeof generateKeyPair>>;

  before(async () => {
    key = await generateKeyPair('Ed25519');
    entry = {
      key: formatKey({ kind: 'release', id: release, platform: 'linux-x64-glibc2.36' }),
      cid: blobCid(CHUNK_SIZE + 1, ['a'.repeat(64), 'b'.repeat(64)]), size: CHUNK_SIZE + 1, prefix: '/srv/slapmesh/build/x', relocatable: true,
      chunks: ['a'.repeat(64), 'b'.repeat(64)], builder: peerIdFromPrivateKey(key).toString(), time: 1_700_000_000_000,
    };
  });

  it('signs an entry that verifies anywhere, and names keys as release|part/id/platform', async () => {
    const wire = await signEntry(entry, key);
    assert.deepEqual(await verifyEntry(wire), entry);
    assert.deepEqual(parseKey(entry.key), { kind: 'release', id: release, platform: 'linux-x64-glibc2.36' });
    assert.equal(formatKey({ kind: 'part', id: 'abc', platform: 'p' }), 'part/abc/p');
  });

  it('refuses a tampered entry, one signed by another key, and bad fields', async () => {
    const wire = new TextDecoder().decode(await signEntry(entry, key));
    await rejects(verifyEntry(new TextEncoder().encode(wire.replace('/srv/slapmesh', '/srv/elsewhere'))), 'bad-signature');
    await rejects(signEntry(entry, await generateKeyPair('Ed25519')), 'wrong-key');
    await rejects(signEntry({ ...entry, chunks: ['a'.repeat(64)] }, key), 'schema');
    await rejects(signEntry({ ...entry, prefix: 'relative/path' }, key), 'schema');
    await rejects(signEntry({ ...entry, key: 'binary/x/y' }, key), 'schema');
    await rejects(signEntry({ ...entry, chunks: ['A'.repeat(64), 'b'.repeat(64)] }, key), 'schema');
    // Chunk hashes or a size that are not those of the CID: refused before anything is fetched.
    await rejects(signEntry({ ...entry, chunks: ['c'.repeat(64), 'b'.repeat(64)] }, key), 'schema');
    await rejects(signEntry({ ...entry, size: CHUNK_SIZE + 2 }, key), 'schema');
    await rejects(signEntry({ ...entry, cid: cidOfBytes(new Uint8Array(3)) }, key), 'schema');
    await rejects(verifyEntry(new TextEncoder().encode('{"payload": 1}')), 'malformed');
    await rejects(verifyEntry(new Uint8Array(2 * 1024 * 1024)), 'too-large');
    assert.throws(() => formatKey({ kind: 'release', id: 'a b', platform: 'p' }), CacheEntryError);
  });
});
