// Fetching a blob from the peers that provide it, into the blob store (design.md §6): resume from what the
// partial file holds, verify each chunk as it arrives (when the chunk hashes are known), drop a provider at
// its first bad chunk or stall and go on from that chunk with the next, check the whole against the CID.
import type { PeerId } from '@libp2p/interface';
import { InvalidCacheResponseError, type CacheProtocol } from '../../protocols/cache/index.js';
import { BlobMismatchError, ChunkMismatchError, type BlobStore, type PartialBlob } from './blob-store.js';
import { CHUNK_SIZE } from './cid.js';

export interface FetchBlobOptions {
  store: BlobStore;
  client: Pick<CacheProtocol, 'get'>;
  cid: string;
  /** The blob's size, when known (a cache entry has it): a provider announcing another is bad. */
  size?: number;
  /** The sha256 (hex) of each CHUNK_SIZE chunk, when known (cache entries have them; bundles do not). */
  chunks?: readonly string[];
  /** Tried in this order, each from where the download stands. */
  providers: readonly PeerId[];
  /** Told of a provider that sent bad bytes or broke the protocol (to penalise it). */
  onBadProvider?: (peer: PeerId, reason: string) => void;
  /** A provider that sends nothing for this long is left for the next (default: the client's idle timeout). */
  stallTimeoutMs?: number;
  /** Told where the download stands when a provider starts sending, then after each chunk written. */
  onProgress?: (progress: FetchProgress) => void;
  signal?: AbortSignal;
}

/** `bytes` of the blob's `size` are in the partial file (verified, where chunk hashes are known), coming from `peer`. */
export interface FetchProgress {
  bytes: number;
  size: number;
  peer: string;
}

export interface ProviderFailure {
  peer: PeerId;
  error: Error;
}

/** Every provider failed; `failures` says how, in the order they were tried. */
export class BlobFetchError extends Error {
  override name = 'BlobFetchError';
  readonly failures: ProviderFailure[];

  constructor(cid: string, failures: ProviderFailure[]) {
    const how = failures.length === 0 ? 'no providers' : failures.map(({ peer, error }) => `${peer.toString()}: ${error.message}`).join('; ');
    super(`could not fetch ${cid}: ${how}`);
    this.failures = failures;
  }
}

/** A provider sent bytes that contradict what is known of the blob (a chunk's hash, its size, its CID). */
export class BadProviderError extends Error {
  override name = 'BadProviderError';
}

/**
 * Fetches a blob into the store and returns its path (at once if it is already there). Throws BlobFetchError
 * when every provider failed (the verified part stays in partial/ for a later call), the signal's reason
 * when aborted, PartialBusyError when this blob is already being fetched.
 */
export async function fetchBlob(options: FetchBlobOptions): Promise<string> {
  const { store, cid, chunks, signal } = options;
  const existing = await store.path(cid);
  if (existing !== undefined) {
    await store.touch(cid);
    return existing;
  }
  const failures: ProviderFailure[] = [];
  let partial = await store.partial(cid, chunks ? { chunks } : {});
  try {
    for (const peer of options.providers) {
      signal?.throwIfAborted();
      const start = partial.offset;
      try {
        await receive(peer, partial, options);
        return await partial.complete();
      } catch (error) {
        if (signal?.aborted) throw error;
        failures.push({ peer, error: error as Error });
        if (error instanceof BadProviderError || error instanceof InvalidCacheResponseError) options.onBadProvider?.(peer, error.message);
        if (error instanceof BlobMismatchError) {
          // Chunks verified or not, the bytes are wrong; they were all this provider's if it started from 0.
          if (!chunks && start === 0) options.onBadProvider?.(peer, error.message);
          partial = await store.partial(cid, chunks ? { chunks } : {});
        }
      }
    }
    throw new BlobFetchError(cid, failures);
  } finally {
    await partial.close();
  }
}

/** Appends the provider's bytes to the partial file, each chunk verified first when chunks are known. */
async function receive(peer: PeerId, partial: PartialBlob, options: FetchBlobOptions): Promise<void> {
  const { chunks } = options;
  const { size, body } = await options.client.get(peer, options.cid, {
    offset: partial.offset,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.stallTimeoutMs !== undefined ? { idleTimeoutMs: options.stallTimeoutMs } : {}),
  });
  if (options.size !== undefined && size !== options.size) throw new BadProviderError(`it announced ${size} bytes for a blob of ${options.size}`);
  if (chunks && chunks.length !== Math.max(1, Math.ceil(size / CHUNK_SIZE))) throw new BadProviderError(`it announced ${size} bytes for a blob of ${chunks.length} chunks`);
  const report = options.onProgress && ((bytes: number) => options.onProgress!({ bytes, size, peer: peer.toString() }));
  report?.(partial.offset);
  try {
    // Hashing and writing happen off the event loop, overlapping what arrives next; once this settles,
    // the partial file ends after the last good chunk, where the next provider resumes.
    await partial.appendStream(body, report ? { onAppended: report } : {});
  } catch (error) {
    if (error instanceof ChunkMismatchError) throw new BadProviderError(error.message);
    throw error;
  }
}
