// The info protocol's handler and client (index.ts has the contract).
import type { AbortOptions, PeerId, Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import type { Multiaddr } from '@multiformats/multiaddr';
import { AdvertError, verifyAdvert, type Advert } from '../../node/advert.js';
import {
  INFO_HANDLER_TIMEOUT_MS, INFO_PROTOCOL, INFO_TIMEOUT_MS, MAX_INBOUND_STREAMS, MAX_INFO_REQUEST_BYTES, MAX_INFO_RESPONSE_BYTES,
  MAX_OTHER_ADVERTS, MAX_OTHER_ADVERTS_BYTES, MAX_OUTBOUND_STREAMS,
} from './constants.js';
import { abortable, bounded, isFramingError } from '../streams.js';
import { InfoTimeoutError, InvalidInfoResponseError } from './errors.js';
import type { FetchOptions, InfoAnswer, InfoComponents, InfoInit, InfoLogger, InfoProtocol } from './index.js';


export class Info implements InfoProtocol {
  private readonly libp2p: InfoComponents['libp2p'];
  private readonly log: InfoLogger;
  private readonly getAdvert: InfoInit['getAdvert'];
  private readonly getOthers: NonNullable<InfoInit['getOthers']>;
  private readonly timeoutMs: number;
  private readonly handlerTimeoutMs: number;
  private started = false;

  constructor(components: InfoComponents, init: InfoInit) {
    this.libp2p = components.libp2p;
    this.log = components.logger;
    this.getAdvert = init.getAdvert;
    this.getOthers = init.getOthers ?? (() => []);
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

  async fetchSigned(peer: PeerId | Multiaddr, options: FetchOptions = {}): Promise<InfoAnswer> {
    const wanted = options.others ?? 0;
    if (!Number.isSafeInteger(wanted) || wanted < 0 || wanted > MAX_OTHER_ADVERTS) {
      throw new RangeError(`others must be an integer from 0 to ${MAX_OTHER_ADVERTS}, not ${wanted}`);
    }
    const { signal, timeout } = bounded(options.signal, this.timeoutMs);
    let stream: Stream | undefined;
    try {
      const connection = await this.libp2p.dial(peer, { signal });
      // The advert must be of the peer Noise authenticated, whatever address we dialled.
      const expectedPeer = connection.remotePeer.toString();
      stream = await connection.newStream(INFO_PROTOCOL, { signal, maxOutboundStreams: MAX_OUTBOUND_STREAMS });
      const lp = lpStream(stream, { maxDataLength: MAX_INFO_RESPONSE_BYTES, maxBufferSize: MAX_INFO_RESPONSE_BYTES + 16 });
      await lp.write(encoder.encode(JSON.stringify({ others: wanted })), { signal });
      const bad = (why: string, cause?: unknown) => new InvalidInfoResponseError(`bad answer from ${expectedPeer}: ${why}`, { cause });
      const read = async (): Promise<Uint8Array> => {
        try {
          return Uint8Array.from((await lp.read({ signal })).subarray());
        } catch (error) {
          if (signal.aborted || !isFramingError(error)) throw error;
          throw bad((error as Error).message, error);
        }
      };
      const wire = await read();
      let advert: Advert;
      try {
        advert = await verifyAdvert(wire, { expectedPeer });
      } catch (error) {
        if (!(error instanceof AdvertError)) throw error;
        throw bad(error.message, error);
      }
      const count = parseCount(decoder.decode(await read()));
      if (count === undefined || count > wanted) throw bad(`it announced ${count ?? 'an unreadable number of'} other adverts for ${wanted} asked`);
      const others: Uint8Array[] = [];
      let bytes = 0;
      for (let i = 0; i < count; i++) {
        const other = await read();
        bytes += other.byteLength;
        if (bytes > MAX_OTHER_ADVERTS_BYTES) throw bad(`its other adverts are more than ${MAX_OTHER_ADVERTS_BYTES} bytes`);
        others.push(other);
      }
      await stream.close({ signal });
      return { advert, wire, others };
    } catch (error) {
      stream?.abort(error as Error);
      if (timeout.aborted && !options.signal?.aborted) {
        throw new InfoTimeoutError(`no answer from ${peer.toString()} within ${this.timeoutMs} ms`, { cause: error });
      }
      throw error;
    }
  }

  /** Reads the request, writes our advert and the others asked for (with backpressure), closes our side; aborts the stream on any failure. */
  private async answer(stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(this.handlerTimeoutMs);
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_INFO_REQUEST_BYTES });
      const request = parseRequest(decoder.decode((await lp.read({ signal })).subarray()));
      if (request === undefined) throw new Error('malformed request');
      const advert = await abortable(Promise.resolve().then(this.getAdvert), signal);
      if (advert.byteLength > MAX_INFO_RESPONSE_BYTES) throw new Error(`own advert is ${advert.byteLength} bytes, too large to send`);
      const others: Uint8Array[] = [];
      let bytes = 0;
      for (const other of request.others > 0 ? this.getOthers(request.others) : []) {
        if (others.length === request.others || bytes + other.byteLength > MAX_OTHER_ADVERTS_BYTES) break;
        if (other.byteLength > MAX_INFO_RESPONSE_BYTES) continue;
        bytes += other.byteLength;
        others.push(other);
      }
      await lp.writeV([advert, encoder.encode(String(others.length)), ...others], { signal });
      await stream.close({ signal });
    } catch (error) {
      this.log.debug(`info answer on stream ${stream.id} failed: ${(error as Error).message}`);
      stream.abort(error as Error);
    }
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The request `{"others": N}`, or undefined when it is anything else. */
function parseRequest(text: string): { others: number } | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null || Object.keys(value).join() !== 'others') return undefined;
    const { others } = value as { others: unknown };
    return Number.isSafeInteger(others) && (others as number) >= 0 && (others as number) <= MAX_OTHER_ADVERTS ? { others: others as number } : undefined;
  } catch {
    return undefined;
  }
}

/** A count written as a JSON number: an integer from 0 up, or undefined. */
function parseCount(text: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,6})$/.test(text)) return undefined;
  return Number(text);
}

