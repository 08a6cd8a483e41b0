// Content identifiers of blobs (release bundles, built artifacts): CIDv1, raw codec, sha256, printed in
// base32 ("bafkrei…"), so the same bytes have the same name on every node (design.md §6).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { create as createDigest } from 'multiformats/hashes/digest';
import { sha256 } from 'multiformats/hashes/sha2';

/** Artifacts are verified and fetched in chunks of this size (the last one may be shorter). */
export const CHUNK_SIZE = 1024 * 1024;

export class InvalidCidError extends Error {
  override name = 'InvalidCidError';
}

/** The CID of a sha256 digest (32 bytes). */
export function cidOfDigest(digest: Uint8Array): string {
  return CID.createV1(raw.code, createDigest(sha256.code, digest)).toString();
}

export function cidOfBytes(bytes: Uint8Array): string {
  return cidOfDigest(createHash('sha256').update(bytes).digest());
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

/** Hashes a file as it streams: its CID, its size, and the sha256 (hex) of each CHUNK_SIZE chunk. */
export async function hashFile(path: string): Promise<{ cid: string; size: number; chunks: string[] }> {
  const whole = createHash('sha256');
  const chunks: string[] = [];
  let size = 0;
  for await (const pieces of chunked(createReadStream(path, { highWaterMark: CHUNK_SIZE }))) {
    for (const piece of pieces) {
      whole.update(piece);
      size += piece.byteLength;
    }
    chunks.push(chunkHash(pieces));
  }
  // An empty blob is one empty chunk.
  if (size === 0) chunks.push(chunkHash([]));
  return { cid: cidOfDigest(whole.digest()), size, chunks };
}

/** Parses a blob CID given by a person or a peer: a CIDv1, raw codec, sha256. Returns its canonical form. */
export function parseBlobCid(text: string): string {
  let cid: CID;
  try {
    cid = CID.parse(text);
  } catch (error) {
    throw new InvalidCidError(`invalid CID ${JSON.stringify(text.slice(0, 100))}: ${(error as Error).message}`);
  }
  if (cid.version !== 1 || cid.code !== raw.code || cid.multihash.code !== sha256.code) {
    throw new InvalidCidError(`CID ${text} is not a sha256 blob CID (CIDv1, raw codec)`);
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

/** The sha256 digest a blob CID names, for comparing with the hash of bytes received. */
export function digestOfCid(cid: string): Uint8Array {
  return CID.parse(parseBlobCid(cid)).multihash.digest;
}
