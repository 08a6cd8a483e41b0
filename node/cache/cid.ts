// Content identifiers of blobs (release bundles, built artifacts), so the same bytes have the same name on
// every node (design.md §6). A blob is cut into CHUNK_SIZE chunks, and its CID names its manifest: the JSON
// `{"chunkSize":1048576,"size":N,"chunks":["<sha256 hex of chunk 0>",…]}`, written without spaces, keys in
// that order — CIDv1, json codec, sha256, in base32 ("bagaaiera…"). So one sha256 pass over the bytes gives
// both the chunk hashes (checked one by one as a download arrives) and the CID (the whole's check), where a
// CID of the raw bytes would need a second pass; and a cache entry's chunk hashes can be checked against its
// CID before anything is fetched. Other content keys (the DHT's names for cache keys) are raw sha256 CIDs.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { CID } from 'multiformats/cid';
import * as json from 'multiformats/codecs/json';
import * as raw from 'multiformats/codecs/raw';
import { create as createDigest } from 'multiformats/hashes/digest';
import { sha256 } from 'multiformats/hashes/sha2';

/** Artifacts are verified and fetched in chunks of this size (the last one may be shorter). */
export const CHUNK_SIZE = 1024 * 1024;

export class InvalidCidError extends Error {
  override name = 'InvalidCidError';
}

/** The CID of a blob of `size` bytes whose chunks hash to `chunks` (sha256 hex, in order). */
export function blobCid(size: number, chunks: readonly string[]): string {
  const manifest = `{"chunkSize":${CHUNK_SIZE},"size":${size},"chunks":[${chunks.map((chunk) => `"${chunk}"`).join(',')}]}`;
  return CID.createV1(json.code, createDigest(sha256.code, createHash('sha256').update(manifest).digest())).toString();
}

/** The sha256 (hex) of each CHUNK_SIZE chunk of `bytes` (an empty blob is one empty chunk). */
export function chunkHashes(bytes: Uint8Array): string[] {
  const chunks: string[] = [];
  for (let at = 0; at < bytes.byteLength || chunks.length === 0; at += CHUNK_SIZE) chunks.push(chunkHash([bytes.subarray(at, at + CHUNK_SIZE)]));
  return chunks;
}

export function cidOfBytes(bytes: Uint8Array): string {
  return blobCid(bytes.byteLength, chunkHashes(bytes));
}

/** The raw sha256 CID of a text: how the DHT names what is not a blob (a cache key). */
export function cidOfText(text: string): string {
  return CID.createV1(raw.code, createDigest(sha256.code, createHash('sha256').update(text).digest())).toString();
}

/**
 * Cuts a byte stream into CHUNK_SIZE chunks (the last may be shorter), each yielded as the pieces that
 * make it up (views of what the source gave, not copies).
 */
export async function* chunked(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array[]> {
  let pieces: Uint8Array[] = [];
  let gathered = 0;
  for await (let data of source) {
    while (data.byteLength > 0) {
      const take = Math.min(CHUNK_SIZE - gathered, data.byteLength);
      pieces.push(take === data.byteLength ? data : data.subarray(0, take));
      gathered += take;
      data = data.subarray(take);
      if (gathered === CHUNK_SIZE) {
        yield pieces;
        pieces = [];
        gathered = 0;
      }
    }
  }
  if (gathered > 0) yield pieces;
}

/** sha256 (hex) of a chunk given as its pieces. */
export function chunkHash(pieces: readonly Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const piece of pieces) hash.update(piece);
  return hash.digest('hex');
}

/** Hashes a file as it streams (one sha256 pass): its CID, its size, and the sha256 (hex) of each chunk. */
export async function hashFile(path: string): Promise<{ cid: string; size: number; chunks: string[] }> {
  const chunks: string[] = [];
  let size = 0;
  for await (const pieces of chunked(createReadStream(path, { highWaterMark: CHUNK_SIZE }))) {
    for (const piece of pieces) size += piece.byteLength;
    chunks.push(chunkHash(pieces));
  }
  // An empty blob is one empty chunk.
  if (size === 0) chunks.push(chunkHash([]));
  return { cid: blobCid(size, chunks), size, chunks };
}

/** Parses a blob CID given by a person or a peer: a CIDv1, json codec, sha256. Returns its canonical form. */
export function parseBlobCid(text: string): string {
  let cid: CID;
  try {
    cid = CID.parse(text);
  } catch (error) {
    throw new InvalidCidError(`invalid CID ${JSON.stringify(text.slice(0, 100))}: ${(error as Error).message}`);
  }
  if (cid.version !== 1 || cid.code !== json.code || cid.multihash.code !== sha256.code) {
    throw new InvalidCidError(`CID ${text} is not a blob CID (CIDv1, json codec, sha256)`);
  }
  return cid.toString();
}

/** Whether `text` is a blob CID in its canonical form (the one parseBlobCid returns). */
export function isBlobCid(text: string): boolean {
  try {
    return parseBlobCid(text) === text;
  } catch {
    return false;
  }
}
