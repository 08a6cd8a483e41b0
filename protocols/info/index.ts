/**
 * The info protocol (`/slapmesh/info/1.0.0`): ask a peer for its current signed advert, and optionally
 * for the adverts it holds of other peers (how a joining node learns the mesh in one round trip).
 *
 * All messages are length-prefixed. The dialer writes one request, the JSON `{"others": N}` (N from 0
 * to MAX_OTHER_ADVERTS). The listener answers with its signed advert (at most MAX_INFO_RESPONSE_BYTES),
 * then a message holding the JSON number k ≤ N of other adverts that follow, then those k adverts as
 * received from their peers (together at most MAX_OTHER_ADVERTS_BYTES), and closes its side. The dialer
 * verifies the first advert against the PeerId it authenticated the connection with; the others come
 * back unverified, for the caller to verify those it wants (each is signed by its own peer).
 *
 * @example
 * ```ts
 * const info = infoProtocol({ getAdvert: () => adverts.signed() })({ libp2p: node, logger: log })
 * await info.start()
 * const advert = await info.fetch(peerId, { signal: AbortSignal.timeout(2_000) })
 * ```
 */
import type { AbortOptions, Libp2p, PeerId } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { Advert } from '../../node/advert.js';
import { Info } from './info.js';

export * from './constants.js';
export * from './errors.js';

export interface InfoInit {
  /** The signed advert to answer with (its wire form). */
  getAdvert: () => Uint8Array | Promise<Uint8Array>;
  /** Up to `max` adverts of other peers, as received (default: none). */
  getOthers?: (max: number) => Uint8Array[];
  /** Default bound of fetch(), with or without the caller's signal (default INFO_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Bound of one answer (default INFO_HANDLER_TIMEOUT_MS). */
  handlerTimeoutMs?: number;
}

/** The node's log for this component (node/log.ts's Logger fits). */
export interface InfoLogger {
  (message: string): void;
  error(message: string): void;
  debug(message: string): void;
}

export interface InfoComponents {
  /** The libp2p node: registers the handler, dials peers. */
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dial'>;
  logger: InfoLogger;
}

/** A verified advert and the bytes it came in. */
export interface SignedAdvert {
  advert: Advert;
  wire: Uint8Array;
}

/** fetchSigned()'s answer: the peer's advert, and the unverified adverts of others it sent. */
export interface InfoAnswer extends SignedAdvert {
  others: Uint8Array[];
}

export interface FetchOptions extends AbortOptions {
  /** How many adverts of other peers to ask for (default 0, at most MAX_OTHER_ADVERTS). */
  others?: number;
}

export interface InfoProtocol {
  /** Registers the handler. */
  start(): Promise<void>;
  /** Unregisters it. */
  stop(): Promise<void>;
  /**
   * Asks a peer for its advert. Rejects with InfoTimeoutError past the timeout, InvalidInfoResponseError
   * on a bad answer, and libp2p's own errors when the peer cannot be dialled or lacks the protocol.
   */
  fetch(peer: PeerId | Multiaddr, options?: AbortOptions): Promise<Advert>;
  /** fetch(), with the wire bytes too (for the peer table), and the adverts of others asked for. */
  fetchSigned(peer: PeerId | Multiaddr, options?: FetchOptions): Promise<InfoAnswer>;
}

export function infoProtocol(init: InfoInit): (components: InfoComponents) => InfoProtocol {
  return (components) => new Info(components, init);
}
