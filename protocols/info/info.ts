// The info protocol's handler and client (index.ts has the contract).
import { setMaxListeners } from 'node:events';
import type { AbortOptions, PeerId, Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import type { Multiaddr } from '@multiformats/multiaddr';
import { AdvertError, verifyAdvert, type Advert } from '../../node/advert.js';
import {
  INFO_HANDLER_TIMEOUT_MS, INFO_PROTOCOL, INFO_TIMEOUT_MS, MAX_INBOUND_STREAMS, MAX_INFO_RESPONSE_BYTES, MAX_OUTBOUND_STREAMS,
} from './constants.js';
import { InfoTimeoutError, InvalidInfoResponseError } from './errors.js';
import type { InfoComponents, InfoInit, InfoLogger, InfoProtocol, SignedAdvert } from './index.js';

/** lpStream's errors for an answer that is not one well-formed message (a reset stream is not one of them). */
const FRAMING_ERRORS = new Set(['InvalidDataLengthError', 'InvalidDataLengthLengthError', 'InvalidMessageLengthError', 'UnexpectedEOFError', 'StreamBufferError']);

export class Info implements InfoProtocol {
  private readonly libp2p: InfoComponents['libp2p'];
  private readonly log: InfoLogger;
  private readonly getAdvert: InfoInit['getAdvert'];
  private readonly timeoutMs: number;
  private readonly handlerTimeoutMs: number;
  private started = false;

  constructor(components: InfoComponents, init: InfoInit) {
    this.libp2p = components.libp2p;
    this.log = components.logger;
    this.getAdvert = init.getAdvert;
    this.timeoutMs = init.timeoutMs ?? INFO_TIMEOUT_MS;
    this.handlerTimeoutMs = init.handlerTimeoutMs ?? INFO_HANDLER_TIMEOUT_MS;
  }

  async start(): Promise<void> {
    if (this.started) return;
    await this.libp2p.handle(INFO_PROTOCOL, (stream) => this.answer(stream), {
      maxInboundStreams: MAX_INBOUND_STREAMS,
      maxOutboundStreams: MAX_OUTBOUND_STREAMS,
    });
    this.started = true;
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.libp2p.unhandle(INFO_PROTOCOL);
  }

  async fetch(peer: PeerId | Multiaddr, options: AbortOptions = {}): Promise<Advert> {
    return (await this.fetchSigned(peer, options)).advert;
  }

  async fetchSigned(peer: PeerId | Multiaddr, options: AbortOptions = {}): Promise<SignedAdvert> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    setMaxListeners(Infinity, signal);
    let stream: Stream | undefined;
    try {
      const connection = await this.libp2p.dial(peer, { signal });
      // The advert must be of the peer Noise authenticated, whatever address we dialled.
      const expectedPeer = connection.remotePeer.toString();
      stream = await connection.newStream(INFO_PROTOCOL, { signal, maxOutboundStreams: MAX_OUTBOUND_STREAMS });
      const lp = lpStream(stream, { maxDataLength: MAX_INFO_RESPONSE_BYTES, maxBufferSize: MAX_INFO_RESPONSE_BYTES + 16 });
      let wire: Uint8Array;
      try {
        wire = Uint8Array.from((await lp.read({ signal })).subarray());
      } catch (error) {
        if (signal.aborted || !FRAMING_ERRORS.has((error as Error).name)) throw error;
        throw new InvalidInfoResponseError(`bad answer from ${expectedPeer}: ${(error as Error).message}`, { cause: error });
      }
      await stream.close({ signal });
      try {
        return { advert: await verifyAdvert(wire, { expectedPeer }), wire };
      } catch (error) {
        if (!(error instanceof AdvertError)) throw error;
        throw new InvalidInfoResponseError(`bad answer from ${expectedPeer}: ${error.message}`, { cause: error });
      }
    } catch (error) {
      stream?.abort(error as Error);
      if (timeout.aborted && !options.signal?.aborted) {
        throw new InfoTimeoutError(`no answer from ${peer.toString()} within ${this.timeoutMs} ms`, { cause: error });
      }
      throw error;
    }
  }

  /** Writes our advert (with backpressure) and closes our side; aborts the stream on any failure. */
  private async answer(stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(this.handlerTimeoutMs);
    try {
      const advert = await abortable(Promise.resolve().then(this.getAdvert), signal);
      if (advert.byteLength > MAX_INFO_RESPONSE_BYTES) throw new Error(`own advert is ${advert.byteLength} bytes, too large to send`);
      await lpStream(stream).write(advert, { signal });
      await stream.close({ signal });
    } catch (error) {
      this.log.debug(`info answer on stream ${stream.id} failed: ${(error as Error).message}`);
      stream.abort(error as Error);
    }
  }
}

/** `promise`, or the signal's reason if it aborts first. */
async function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        onAbort = () => reject(signal.reason as Error);
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}
