/**
 * The info protocol (`/slapmesh/info/1.0.0`): ask a peer for its current signed advert.
 *
 * The dialer opens a stream and sends nothing; the listener writes its signed advert as one
 * length-prefixed message (at most MAX_INFO_RESPONSE_BYTES) and closes its side. The dialer
 * verifies the advert against the PeerId it authenticated the connection with.
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
  /** fetch(), with the wire bytes too (for the peer table). */
  fetchSigned(peer: PeerId | Multiaddr, options?: AbortOptions): Promise<SignedAdvert>;
}

export function infoProtocol(init: InfoInit): (components: InfoComponents) => InfoProtocol {
  return (components) => new Info(components, init);
}
