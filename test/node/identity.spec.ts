import { strict as assert } from 'node:assert';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { IDENTITY_FILE, IdentityError, loadOrCreateIdentity } from '../../node/identity.js';
import { removeTree, writeTree } from '../helpers/files.js';

describe('node/identity', () => {
  let dir: string;
  let file: string;

  beforeEach(() => {
    dir = writeTree({});
    file = join(dir, IDENTITY_FILE);
  });

  afterEach(() => {
    removeTree(dir);
  });

  it('creates an Ed25519 key, private to its owner, and loads the same one afterwards', async () => {
    const created = await loadOrCreateIdentity(dir);
    assert.equal(created.type, 'Ed25519');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), [IDENTITY_FILE]);
    assert.deepEqual(new Uint8Array(readFileSync(file)), privateKeyToProtobuf(created));

    const loaded = await loadOrCreateIdentity(dir);
    const peerId = peerIdFromPrivateKey(created);
    assert.ok(peerId.equals(peerIdFromPrivateKey(loaded)));
    assert.match(peerId.toString(), /^12D3KooW/);
    assert.ok(created.equals(loaded));
  });

  it('refuses a key file readable by group or others, naming the chmod to run', async () => {
    await loadOrCreateIdentity(dir);
    const before = readFileSync(file);
    chmodSync(file, 0o644);
    await assert.rejects(loadOrCreateIdentity(dir), (error: unknown) => {
      assert.ok(error instanceof IdentityError);
      assert.equal(error.name, 'IdentityError');
      assert.equal(error.message,
        `identity key ${file} is accessible by group or others (mode 0644); it must be private to its owner: chmod 600 ${file}`);
      return true;
    });
    chmodSync(file, 0o640);
    await assert.rejects(loadOrCreateIdentity(dir), { name: 'IdentityError' });
    assert.deepEqual(readFileSync(file), before);
    chmodSync(file, 0o600);
    await loadOrCreateIdentity(dir);
  });

  for (const [what, bytes] of [
    ['garbage', Buffer.from('not a key\n')],
    ['an empty file', Buffer.alloc(0)],
  ] as const) {
    it(`refuses ${what} and leaves the file as it is`, async () => {
      writeFileSync(file, bytes, { mode: 0o600 });
      await assert.rejects(loadOrCreateIdentity(dir), (error: unknown) => {
        assert.equal((error as Error).name, 'IdentityError');
        assert.match((error as Error).message, new RegExp(`^identity key ${file} is corrupt`));
        return true;
      });
      assert.deepEqual(readFileSync(file), bytes);
      assert.deepEqual(readdirSync(dir), [IDENTITY_FILE]);
    });
  }

  it('refuses a key whose public half was damaged', async () => {
    await loadOrCreateIdentity(dir);
    const bytes = readFileSync(file);
    assert.equal(bytes.length, 68); // header, 32 bytes of seed, 32 of public key
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0x01;
    writeFileSync(file, bytes);
    await assert.rejects(loadOrCreateIdentity(dir), { name: 'IdentityError' });
    assert.deepEqual(readFileSync(file), bytes);
  });

  it('refuses a directory in place of the key', async () => {
    const nested = writeTree({ [`${IDENTITY_FILE}/x`]: '' });
    try {
      await assert.rejects(loadOrCreateIdentity(nested), { name: 'IdentityError', message: `identity key ${join(nested, IDENTITY_FILE)} is not a regular file` });
    } finally {
      removeTree(nested);
    }
  });
});
