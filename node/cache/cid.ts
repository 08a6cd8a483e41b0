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

/** Hashes a file as it streams: its CID, its size, and the sha256 (hex) of each CHUNK_SIZE chunk. */
export async function hashFile(path: string): Promise<{ cid: string; size: number; chunks: string[] }> {
  const whole = createHash('sha256');
  const chunks: string[] = [];
  let chunk = createHash('sha256');
  let inChunk = 0;
  let size = 0;
  for await (const data of createReadStream(path, { highWaterMark: CHUNK_SIZE }) as AsyncIterable<Buffer>) {
    whole.update(data);
    size += data.byteLength;
    let offset = 0;
    while (offset < data.byteLength) {
      const take = Math.min(CHUNK_SIZE - inChunk, data.byteLength - offset);
      chunk.update(data.subarray(offset, offset + take));
      inChunk += take;
      offset += take;
      if (inChunk === CHUNK_SIZE) {
        chunks.push(chunk.digest('hex'));
        chunk = createHash('sha256');
        inChunk = 0;
      }
    }
  }
  if (inChunk > 0 || size === 0) chunks.push(chunk.digest('hex'));
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

/** The sha256 digest a blob CID names, for comparing with the hash of bytes received. */
export function digestOfCid(cid: string): Uint8Array {
  return CID.parse(parseBlobCid(cid)).multihash.digest;
}
