// Cache index entries (design.md §6): "the artifact for this key is the blob with this CID", signed by
// the node that built it. A key is what was built and for which platform: a release (by its bundle's
// CID) or a shared part (by its signature), on an OS/architecture/libc (hardware.ts's `os`). An entry
// also carries the prefix the artifact was built under (rewritten on extraction) and the sha256 of each
// CHUNK_SIZE chunk, so a fetch verifies every chunk as it arrives; they must hash to the CID (cid.ts), so an
// entry that contradicts itself is refused before anything is fetched. A node uses an entry only if it
// trusts its builder; the signature makes that decision hold whoever relayed the entry.
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { Fields, open, seal, signedBy, type Fail } from '../signed.js';
import { blobCid, CHUNK_SIZE } from './cid.js';

/** Largest entry on the wire: about 15,000 chunk hashes, a 15 GiB artifact. */
export const MAX_ENTRY_BYTES = 1024 * 1024;
export const MAX_KEY_LENGTH = 256;
export const MAX_PREFIX_LENGTH = 1024;

export type ArtifactKind = 'release' | 'part';

export interface CacheKey {
  kind: ArtifactKind;
  /** A release's bundle CID, or a shared part's signature. */
  id: string;
  /** OS, architecture and libc, as hardware.ts's `os` (e.g. linux-x64-glibc2.36). */
  platform: string;
}

export interface CacheEntry {
  /** formatKey() of what was built. */
  key: string;
  /** The artifact: a tar.zst blob. */
  cid: string;
  size: number;
  /** The absolute path it was built under. */
  prefix: string;
  /** Whether it may be extracted under another prefix (false: only under the same one). */
  relocatable: boolean;
  /** sha256 (hex) of each CHUNK_SIZE chunk. */
  chunks: string[];
  /** PeerId of the node that built and signed it. */
  builder: string;
  /** When it was signed, ms since the epoch. */
  time: number;
}

export type EntryRejection = 'too-large' | 'malformed' | 'schema' | 'bad-signature' | 'wrong-key';

export class CacheEntryError extends Error {
  override name = 'CacheEntryError';
  constructor(readonly reason: EntryRejection, message: string) {
    super(message);
  }
}

const fail: Fail<EntryRejection> = (reason, message) => {
  throw new CacheEntryError(reason, message);
};
const fields: Fields<EntryRejection> = new Fields('cache entry', fail);

// eslint-disable-next-line no-control-regex
const KEY_PART = /^[^\s/\u0000-\u001f\u007f]+$/;

/** `release/<id>/<platform>` or `part/<id>/<platform>`: what the DHT and the cache protocol look up. */
export function formatKey(key: CacheKey): string {
  if (!KEY_PART.test(key.id) || !KEY_PART.test(key.platform)) fields.schema(`key parts may not be empty or hold spaces or slashes: ${JSON.stringify(key)}`);
  const text = `${key.kind}/${key.id}/${key.platform}`;
  if (text.length > MAX_KEY_LENGTH) fields.schema(`key is ${text.length} characters long, more than ${MAX_KEY_LENGTH}`);
  return text;
}

export function parseKey(text: unknown): CacheKey {
  const [kind, id, platform, ...rest] = fields.string(text, 'key', MAX_KEY_LENGTH).split('/');
  if ((kind !== 'release' && kind !== 'part') || id === undefined || platform === undefined || rest.length) {
    fields.schema(`key must be release/<id>/<platform> or part/<id>/<platform>: ${JSON.stringify(text)}`);
  }
  return { kind, id, platform };
}

/** Checks an entry's fields and returns a clean copy (keys in a fixed order, nothing else). */
export function validateEntry(value: unknown): CacheEntry {
  const e = fields.object(value, 'entry', ['key', 'cid', 'size', 'prefix', 'relocatable', 'chunks', 'builder', 'time']);
  const key = formatKey(parseKey(e.key));
  const cid = fields.cid(e.cid, 'cid', 128);
  const size = fields.integer(e.size, 'size', 0, Number.MAX_SAFE_INTEGER);
  const prefix = fields.string(e.prefix, 'prefix', MAX_PREFIX_LENGTH);
  if (!prefix.startsWith('/')) fields.schema(`prefix must be an absolute path: ${JSON.stringify(prefix)}`);
  const relocatable = fields.boolean(e.relocatable, 'relocatable');
  const expected = Math.max(1, Math.ceil(size / CHUNK_SIZE));
  const chunks = fields.array(e.chunks, 'chunks', expected).map((chunk, i) => {
    const hash = fields.string(chunk, `chunks[${i}]`, 64);
    if (!/^[0-9a-f]{64}$/.test(hash)) fields.schema(`chunks[${i}] must be a sha256 in lowercase hex`);
    return hash;
  });
  if (chunks.length !== expected) fields.schema(`a ${size}-byte artifact has ${expected} chunks, not ${chunks.length}`);
  if (blobCid(size, chunks) !== cid) fields.schema(`its size and chunk hashes are not those of blob ${cid}`);
  const builder = fields.peerId(e.builder, 'builder');
  const time = fields.integer(e.time, 'time', 0, Number.MAX_SAFE_INTEGER);
  return { key, cid, size, prefix, relocatable, chunks, builder, time };
}

/** Signs an entry with the builder's key; the result is its wire form. */
export async function signEntry(entry: CacheEntry, key: PrivateKey): Promise<Uint8Array> {
  const clean = validateEntry(entry);
  const signer = peerIdFromPrivateKey(key).toString();
  if (signer !== clean.builder) fail('wrong-key', `an entry of builder ${clean.builder} cannot be signed by ${signer}`);
  const wire = await seal(clean, key);
  if (wire.byteLength > MAX_ENTRY_BYTES) fail('too-large', `cache entry is ${wire.byteLength} bytes, more than ${MAX_ENTRY_BYTES}`);
  return wire;
}

/** Checks an entry received from anyone; throws CacheEntryError saying why it is refused. */
export async function verifyEntry(wire: Uint8Array): Promise<CacheEntry> {
  const { document, payload, signature } = open(wire, MAX_ENTRY_BYTES, 'cache entry', fail, validateEntry);
  if (!(await signedBy(document.builder, payload, signature))) fail('bad-signature', `cache entry of ${document.builder} has a bad signature`);
  return document;
}
