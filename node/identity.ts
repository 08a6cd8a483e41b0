// The node's identity: an Ed25519 key kept in the data directory, so that its PeerId survives restarts.
import { randomBytes } from 'node:crypto';
import { link, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';

export const IDENTITY_FILE = 'identity.key';

export class IdentityError extends Error {
  override name = 'IdentityError';
}

/**
 * The key in `<dataDir>/identity.key` (libp2p's protobuf encoding), created on first use. The file must be
 * private to its owner, as ssh requires; a file that does not hold a usable key is an error, never replaced:
 * replacing it would silently give the node a new PeerId. `dataDir` must exist (prepareDataDir).
 */
export async function loadOrCreateIdentity(dataDir: string): Promise<PrivateKey> {
  const path = join(dataDir, IDENTITY_FILE);
  const existing = await readKeyFile(path);
  if (existing !== undefined) return decodeKey(path, existing);
  const key = await generateKeyPair('Ed25519');
  if (await writeNewFileAtomically(path, privateKeyToProtobuf(key))) return key;
  // Another process created it meanwhile (the node lock should prevent that): theirs stands.
  return decodeKey(path, await readKeyFile(path) ?? new Uint8Array());
}

/** The file's bytes, or undefined if there is none. */
async function readKeyFile(path: string): Promise<Uint8Array | undefined> {
  let file;
  try {
    file = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const stat = await file.stat();
    if (!stat.isFile()) throw new IdentityError(`identity key ${path} is not a regular file`);
    // Windows has no such mode bits.
    if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
      throw new IdentityError(`identity key ${path} is accessible by group or others (mode ${mode}); ` +
        `it must be private to its owner: chmod 600 ${path}`);
    }
    return await file.readFile();
  } finally {
    await file.close();
  }
}

async function decodeKey(path: string, bytes: Uint8Array): Promise<PrivateKey> {
  let key: PrivateKey;
  try {
    key = privateKeyFromProtobuf(bytes);
  } catch (error) {
    throw new IdentityError(`identity key ${path} is corrupt (${(error as Error).message}); ` +
      'restore it from a backup, or remove it to give this node a new identity');
  }
  if (key.type !== 'Ed25519') throw new IdentityError(`identity key ${path} is a ${key.type} key; slapmesh nodes use Ed25519`);
  // The encoding holds the private and the public half; a damaged byte in either shows as a bad signature.
  const probe = new TextEncoder().encode('slapmesh identity check');
  if (!(await key.publicKey.verify(probe, await key.sign(probe)))) {
    throw new IdentityError(`identity key ${path} is corrupt (its public half does not match); ` +
      'restore it from a backup, or remove it to give this node a new identity');
  }
  return key;
}

/**
 * Writes `bytes` to a private temporary file, syncs it, then links it into place: the file appears whole or
 * not at all, and link() (unlike rename) never replaces a file that appeared meanwhile. False if one did.
 */
async function writeNewFileAtomically(path: string, bytes: Uint8Array): Promise<boolean> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const file = await open(temp, 'wx', 0o600);
    try {
      await file.writeFile(bytes);
      await file.sync();
    } finally {
      await file.close();
    }
    try {
      await link(temp, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
  } finally {
    await rm(temp, { force: true });
  }
  await syncDirectory(join(path, '..'));
  return true;
}

/** Makes the new directory entry durable too (Windows cannot open a directory to sync it). */
async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
