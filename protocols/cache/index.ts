/**
 * The cache protocol (`/slapmesh/cache/1.1.0`): look up signed cache index entries by key, and stream a
 * blob by CID from a byte offset (for resume).
 *
 * The dialer writes one length-prefixed JSON request (at most MAX_CACHE_REQUEST_BYTES):
 * - `{"get": "<cid>", "offset": n}`: the listener answers a length-prefixed header, `{"size": total}` then
 *   the raw bytes of the blob from `offset` to its end (not framed: the rest of the stream), or
 *   `{"error": "not-found"}`; then closes its side.
 * - `{"lookup": "<key>"}` (an opaque key of 1 to MAX_LOOKUP_KEY_LENGTH characters): the listener answers
 *   `{"entries": k}` (k ≤ MAX_LOOKUP_ENTRIES) then k length-prefixed messages, each an opaque signed entry
 *   of at most MAX_ENTRY_BYTES, for the caller to verify; then closes its side.
 * A malformed request is refused: logged, and the stream reset. The handler's timeout bounds reading the
 * request and writing the header; a body is bounded by an idle timeout instead (no progress for a while),
 * so a large blob on a slow link is not cut off.
 *
 * @example
 * ```ts
 * const cache = cacheProtocol({ blobs: store, lookup: (key) => entries.get(key) })({ libp2p: node, logger: log })
 * await cache.start()
 * const { size, body } = await cache.get(peerId, cid, { offset: 0, signal })
 * for await (const bytes of body) await partial.append(bytes)
 * ```
 */
import type { AbortOptions, Libp2p, PeerId } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { BlobStore } from '../../node/cache/blob-store.js';
import { Cache } from './cache.js';

export * from './constants.js';
export * from './errors.js';

/** Where the listener reads the blobs it serves (a BlobStore fits). */
export type BlobSource = Pick<BlobStore, 'open'>;

export interface CacheInit {
  blobs: BlobSource;
  /** The signed entries held for a key, as received or made (default: none). */
  lookup?: (key: string) => Uint8Array[] | Promise<Uint8Array[]>;
  /** Default bound of lookup() (default LOOKUP_TIMEOUT_MS). */
  lookupTimeoutMs?: number;
  /** Default bound of get() up to the header (default GET_TIMEOUT_MS). */
  getTimeoutMs?: number;
  /** Default idle bound of a body, sent or received (default BODY_IDLE_TIMEOUT_MS). */
  idleTimeoutMs?: number;
  /** Bound of the handler's request and header (default CACHE_HANDLER_TIMEOUT_MS). */
  handlerTimeoutMs?: number;
  /** Buffers a body is sent from to a client that acknowledges (default SEND_BUFFERS). */
  sendBuffers?: number;
}

/** The node's log for this component (node/log.ts's Logger fits). */
export interface CacheLogger {
  (message: string): void;
  error(message: string): void;
  debug(message: string): void;
}

export interface CacheComponents {
  /** The libp2p node: registers the handler, dials peers. */
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dial'>;
  logger: CacheLogger;
}

export interface GetOptions extends AbortOptions {
  /** The first byte wanted (default 0). */
  offset?: number;
  /** The body fails with CacheStallError after this long without a byte (default: the init's idleTimeoutMs). */
  idleTimeoutMs?: number;
}

/** A blob being received: its whole size, and its bytes from the offset asked for. */
export interface BlobResponse {
  size: number;
  /**
   * Exactly `size - offset` bytes, then the end; throws CacheStallError, InvalidCacheResponseError (too few
   * bytes), the caller's abort reason, or the stream's error. Read it to the end or break out of it: until
   * then the stream stays open. The pieces are the received buffers themselves (no copies).
   */
  body: AsyncIterable<Uint8Array>;
}

export interface CacheProtocol {
  /** Registers the handler. */
  start(): Promise<void>;
  /** Unregisters it. */
  stop(): Promise<void>;
  /**
   * The signed entries a peer holds for `key`, unverified. Rejects with CacheTimeoutError past the timeout,
   * InvalidCacheResponseError on a bad answer, and libp2p's errors when the peer cannot be reached.
   */
  lookup(peer: PeerId | Multiaddr, key: string, options?: AbortOptions): Promise<Uint8Array[]>;
  /**
   * Asks a peer for a blob from `offset`. Rejects with BlobNotFoundError if it has none, CacheTimeoutError
   * when no header came in time, InvalidCacheResponseError on a bad header, InvalidCidError on a bad CID.
   */
  get(peer: PeerId | Multiaddr, cid: string, options?: GetOptions): Promise<BlobResponse>;
}

export function cacheProtocol(init: CacheInit): (components: CacheComponents) => CacheProtocol {
  return (components) => new Cache(components, init);
}
