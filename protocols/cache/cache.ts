// The cache protocol's handler and client (index.ts has the contract).
import type { AbortOptions, Connection, PeerId, Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import * as lengthPrefixed from 'it-length-prefixed';
import type { Multiaddr } from '@multiformats/multiaddr';
import { parseBlobCid } from '../../node/cache/cid.js';
import {
  ACK_EVERY_BYTES, BODY_HIGH_WATER_BYTES, BODY_IDLE_TIMEOUT_MS, CACHE_HANDLER_TIMEOUT_MS, CACHE_PROTOCOL, GET_TIMEOUT_MS,
  LOOKUP_TIMEOUT_MS, MAX_ACK_BYTES, MAX_BODY_READ_BUFFER_BYTES, MAX_CACHE_HEADER_BYTES, MAX_CACHE_REQUEST_BYTES, MAX_ENTRY_BYTES,
  MAX_INBOUND_STREAMS, MAX_LOOKUP_ENTRIES, MAX_LOOKUP_KEY_LENGTH, MAX_OUTBOUND_STREAMS, SEND_BUFFERS, SEND_PIECE_BYTES,
} from './constants.js';
import { abortable, bounded, isFramingError } from '../streams.js';
import { BlobNotFoundError, CacheStallError, CacheTimeoutError, InvalidCacheResponseError } from './errors.js';
import type { BlobResponse, BlobSource, CacheComponents, CacheInit, CacheLogger, CacheProtocol, GetOptions } from './index.js';
import { BadAcknowledgementError, SendBuffers } from './send-buffers.js';

/** A lookup answer in full: its header and entries, each with its length prefix. */
const MAX_LOOKUP_ANSWER_BYTES = MAX_CACHE_HEADER_BYTES + MAX_LOOKUP_ENTRIES * (MAX_ENTRY_BYTES + 4);

type Request = { get: string; offset: number; acks: boolean } | { lookup: string };
type Header = { size: number } | { entries: number } | { error: string };
type LpStream = ReturnType<typeof lpStream>;

export class Cache implements CacheProtocol {
  private readonly libp2p: CacheComponents['libp2p'];
  private readonly log: CacheLogger;
  private readonly blobs: BlobSource;
  private readonly entriesFor: NonNullable<CacheInit['lookup']>;
  private readonly lookupTimeoutMs: number;
  private readonly getTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly handlerTimeoutMs: number;
  private readonly sendBuffers: number;
  private started = false;

  constructor(components: CacheComponents, init: CacheInit) {
    this.libp2p = components.libp2p;
    this.log = components.logger;
    this.blobs = init.blobs;
    this.entriesFor = init.lookup ?? (() => []);
    this.lookupTimeoutMs = init.lookupTimeoutMs ?? LOOKUP_TIMEOUT_MS;
    this.getTimeoutMs = init.getTimeoutMs ?? GET_TIMEOUT_MS;
    this.idleTimeoutMs = init.idleTimeoutMs ?? BODY_IDLE_TIMEOUT_MS;
    this.handlerTimeoutMs = init.handlerTimeoutMs ?? CACHE_HANDLER_TIMEOUT_MS;
    this.sendBuffers = init.sendBuffers ?? SEND_BUFFERS;
  }

  async start(): Promise<void> {
    if (this.started) return;
    await this.libp2p.handle(CACHE_PROTOCOL, (stream, connection) => this.answer(stream, connection), {
      maxInboundStreams: MAX_INBOUND_STREAMS,
      maxOutboundStreams: MAX_OUTBOUND_STREAMS,
    });
    this.started = true;
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.libp2p.unhandle(CACHE_PROTOCOL);
  }

  async lookup(peer: PeerId | Multiaddr, key: string, options: AbortOptions = {}): Promise<Uint8Array[]> {
    if (!isKey(key)) throw new RangeError(`a lookup key is a string of 1 to ${MAX_LOOKUP_KEY_LENGTH} characters`);
    const { signal, timeout } = bounded(options.signal, this.lookupTimeoutMs);
    let stream: Stream | undefined;
    try {
      stream = await this.openStream(peer, signal);
      const lp = lpStream(stream, { maxDataLength: MAX_ENTRY_BYTES, maxBufferSize: MAX_LOOKUP_ANSWER_BYTES });
      await lp.write(encodeJson({ lookup: key }), { signal });
      const header = parseHeader((await lp.read({ signal })).subarray());
      if (header === undefined || !('entries' in header)) throw new InvalidCacheResponseError(`bad lookup answer from ${peer.toString()}: no entry count`);
      const entries: Uint8Array[] = [];
      for (let i = 0; i < header.entries; i++) entries.push(Uint8Array.from((await lp.read({ signal })).subarray()));
      await stream.close({ signal });
      return entries;
    } catch (error) {
      stream?.abort(error as Error);
      throw this.clientError(error, peer, timeout, options.signal, this.lookupTimeoutMs);
    }
  }

  async get(peer: PeerId | Multiaddr, cid: string, options: GetOptions = {}): Promise<BlobResponse> {
    cid = parseBlobCid(cid);
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`offset must be an integer from 0 up, not ${offset}`);
    const { signal, timeout } = bounded(options.signal, this.getTimeoutMs);
    let stream: Stream | undefined;
    let header: Header | undefined;
    let notFound = false;
    let lp: LpStream;
    try {
      stream = await this.openStream(peer, signal);
      // Room for what Yamux still sends once the body is paused (see BODY_HIGH_WATER_BYTES).
      stream.maxReadBufferLength = MAX_BODY_READ_BUFFER_BYTES;
      lp = lpStream(stream, { maxDataLength: MAX_CACHE_HEADER_BYTES, maxBufferSize: MAX_BODY_READ_BUFFER_BYTES });
      await lp.write(encodeJson({ get: cid, offset, acks: true }), { signal });
      header = parseHeader((await lp.read({ signal })).subarray());
      notFound = header !== undefined && 'error' in header && header.error === 'not-found';
      if (notFound) await stream.close({ signal });
    } catch (error) {
      stream?.abort(error as Error);
      throw this.clientError(error, peer, timeout, options.signal, this.getTimeoutMs);
    }
    if (notFound) throw new BlobNotFoundError(`${peer.toString()} does not have ${cid}`);
    if (header === undefined || !('size' in header) || header.size < offset) {
      const error = new InvalidCacheResponseError(`bad answer from ${peer.toString()} for ${cid} from ${offset}: ${header === undefined ? 'malformed header' : JSON.stringify(header)}`);
      stream.abort(error);
      throw error;
    }
    // The header's message may have brought the first bytes of the body: unwrap() gives them back to the stream.
    lp.unwrap();
    if (stream.readStatus === 'readable') stream.pause();
    const acknowledge = (received: number) => stream.send(lengthPrefixed.encode.single(encodeJson({ received })));
    return { size: header.size, body: readBody(stream, header.size - offset, options.idleTimeoutMs ?? this.idleTimeoutMs, options.signal, peer.toString(), acknowledge) };
  }

  private async openStream(peer: PeerId | Multiaddr, signal: AbortSignal): Promise<Stream> {
    const connection = await this.libp2p.dial(peer, { signal });
    return connection.newStream(CACHE_PROTOCOL, { signal, maxOutboundStreams: MAX_OUTBOUND_STREAMS });
  }

  /** The error a failed lookup or get rejects with. */
  private clientError(error: unknown, peer: PeerId | Multiaddr, timeout: AbortSignal, callerSignal: AbortSignal | undefined, timeoutMs: number): unknown {
    if (timeout.aborted && !callerSignal?.aborted) return new CacheTimeoutError(`no answer from ${peer.toString()} within ${timeoutMs} ms`, { cause: error });
    if (!callerSignal?.aborted && isFramingError(error)) {
      return new InvalidCacheResponseError(`bad answer from ${peer.toString()}: ${(error as Error).message}`, { cause: error });
    }
    return error;
  }

  /** Reads the request and answers it; a malformed one is logged and the stream reset. */
  private async answer(stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString();
    const signal = AbortSignal.timeout(this.handlerTimeoutMs);
    const lp = lpStream(stream, { maxDataLength: MAX_CACHE_REQUEST_BYTES });
    let request: Request | string;
    try {
      request = parseRequest((await lp.read({ signal })).subarray());
    } catch (error) {
      request = `unreadable request: ${(error as Error).message}`;
    }
    if (typeof request === 'string') {
      this.log(`refused a cache request from ${from}: ${request}`);
      stream.abort(new Error(request));
      return;
    }
    try {
      if ('lookup' in request) await this.answerLookup(stream, lp, request.lookup, signal, from);
      else await this.sendBlob(stream, lp, request, signal, from);
    } catch (error) {
      this.log.debug(`cache answer to ${from} on stream ${stream.id} failed: ${(error as Error).message}`);
      stream.abort(error as Error);
    }
  }

  private async answerLookup(stream: Stream, lp: LpStream, key: string, signal: AbortSignal, from: string): Promise<void> {
    const entries: Uint8Array[] = [];
    for (const entry of await abortable(Promise.resolve().then(() => this.entriesFor(key)), signal)) {
      if (entries.length === MAX_LOOKUP_ENTRIES) break;
      if (entry.byteLength > MAX_ENTRY_BYTES) this.log.error(`not sending an entry of ${entry.byteLength} bytes for ${key}: more than ${MAX_ENTRY_BYTES}`);
      else entries.push(entry);
    }
    this.log.debug(`sending ${entries.length} entries for ${key} to ${from}`);
    await lp.writeV([encodeJson({ entries: entries.length }), ...entries], { signal });
    await stream.close({ signal });
  }

  /**
   * The header, then the raw bytes as fast as the stream takes them, each wait for room (or, with acks, for a
   * buffer to be free again) bounded by the idle timeout.
   */
  private async sendBlob(stream: Stream, lp: LpStream, request: { get: string; offset: number; acks: boolean }, signal: AbortSignal, from: string): Promise<void> {
    let blob;
    try {
      blob = await this.blobs.open(request.get, request.offset);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      this.log(`refused a cache request from ${from}: ${error.message}`);
      stream.abort(error);
      return;
    }
    if (blob === undefined) {
      this.log.debug(`${from} asked for ${request.get}, which is not here`);
      await lp.write(encodeJson({ error: 'not-found' }), { signal });
      await stream.close({ signal });
      return;
    }
    const stalled = () => new CacheStallError(`${from} took nothing of ${request.get} for ${this.idleTimeoutMs} ms`);
    try {
      this.log.debug(`sending ${request.get} from byte ${request.offset} of ${blob.size} to ${from}`);
      await lp.write(encodeJson({ size: blob.size }), { signal });
      const raw = lp.unwrap();
      const buffers = request.acks ? new SendBuffers(this.sendBuffers, SEND_PIECE_BYTES) : undefined;
      if (buffers) void readAcknowledgements(raw, buffers);
      for (let position = blob.offset; position < blob.size;) {
        const length = Math.min(SEND_PIECE_BYTES, blob.size - position);
        const piece = buffers ? await buffers.take(length, (free) => withinIdle(free, this.idleTimeoutMs, stalled)) : Buffer.allocUnsafe(length);
        const { bytesRead } = await blob.handle.read(piece, 0, length, position);
        if (bytesRead !== length) throw new Error(`blob ${request.get} is shorter than its ${blob.size} bytes`);
        position += length;
        if (!raw.send(piece)) await withinIdle(raw.onDrain(), this.idleTimeoutMs, stalled);
      }
      await withinIdle(raw.close(), this.idleTimeoutMs, stalled);
    } finally {
      await blob.handle.close();
    }
  }
}

/** Hands the client's acknowledgements to `buffers` until it closes its side; one that breaks the rules aborts the stream. */
async function readAcknowledgements(stream: Parameters<typeof lpStream>[0], buffers: SendBuffers): Promise<void> {
  const acks = lpStream(stream, { maxDataLength: MAX_ACK_BYTES });
  for (;;) {
    let message: Uint8Array;
    try {
      message = (await acks.read()).subarray();
    } catch {
      return; // the client closed its side (it has everything), or the stream ended
    }
    try {
      const received = parseObject(message)?.['received'];
      if (typeof received !== 'number') throw new BadAcknowledgementError('not an acknowledgement');
      buffers.acknowledge(received);
    } catch (error) {
      stream.abort(error as Error);
      return;
    }
  }
}

/**
 * A blob's body: the stream's buffers as they come, `expected` bytes in all. Reading is paused while more
 * than BODY_HIGH_WATER_BYTES wait for the consumer (so a slow disk slows the sender rather than filling
 * memory); a wait for bytes longer than `idleMs` fails with CacheStallError. Every ACK_EVERY_BYTES that
 * arrive are acknowledged, paused or not: the sender fills its buffers again only then.
 */
async function* readBody(stream: Stream, expected: number, idleMs: number, signal: AbortSignal | undefined, from: string, acknowledge: (received: number) => void): AsyncGenerator<Uint8Array> {
  const queue: Uint8Array[] = [];
  let queued = 0;
  let received = 0;
  /** Bytes that arrived (queued or not), and how many of them were acknowledged. */
  let arrived = 0;
  let acknowledged = 0;
  let ended = false;
  let failure: unknown;
  let pausing = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  const onMessage = (event: StreamMessageEvent) => {
    for (const piece of event.data instanceof Uint8Array ? [event.data] : event.data) {
      queue.push(piece);
      queued += piece.byteLength;
      arrived += piece.byteLength;
    }
    // What arrived was sent: the listener may fill the buffers it was sent from again.
    if (arrived - acknowledged >= ACK_EVERY_BYTES && arrived < expected) {
      acknowledged = arrived;
      try {
        acknowledge(arrived);
      } catch {
        // the stream is closing: its own events say so
      }
    }
    // Not from inside the dispatch: resume() dispatches what was held, then would undo a pause made meanwhile.
    if (queued >= BODY_HIGH_WATER_BYTES && !pausing) {
      pausing = true;
      queueMicrotask(() => {
        pausing = false;
        if (stream.readStatus === 'readable' && queued >= BODY_HIGH_WATER_BYTES) stream.pause();
      });
    }
    notify();
  };
  const onRemoteCloseWrite = () => {
    ended = true;
    notify();
  };
  const onClose = (event: StreamCloseEvent) => {
    ended = true;
    failure ??= event.error;
    notify();
  };
  const onAbort = () => {
    failure ??= signal?.reason;
    notify();
  };
  stream.addEventListener('message', onMessage);
  stream.addEventListener('remoteCloseWrite', onRemoteCloseWrite);
  stream.addEventListener('close', onClose);
  signal?.addEventListener('abort', onAbort);
  let finished = false;
  try {
    signal?.throwIfAborted();
    while (received < expected) {
      if (failure !== undefined) throw failure;
      const piece = queue.shift();
      if (piece !== undefined) {
        queued -= piece.byteLength;
        received += piece.byteLength;
        if (received > expected) throw new InvalidCacheResponseError(`${from} sent more than the ${expected} bytes it announced`);
        if (queued < BODY_HIGH_WATER_BYTES / 2 && stream.readStatus === 'paused') stream.resume();
        yield piece;
        continue;
      }
      if (stream.readStatus === 'paused') {
        stream.resume(); // hands over what the stream holds, if anything
        continue;
      }
      if (ended) throw new InvalidCacheResponseError(`${from} ended the blob after ${received} of ${expected} bytes`);
      const timer = setTimeout(() => {
        failure ??= new CacheStallError(`no byte from ${from} for ${idleMs} ms (${received} of ${expected} received)`);
        notify();
      }, idleMs);
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      clearTimeout(timer);
    }
    finished = true;
    await stream.close();
  } catch (error) {
    stream.abort(error as Error);
    throw error;
  } finally {
    stream.removeEventListener('message', onMessage);
    stream.removeEventListener('remoteCloseWrite', onRemoteCloseWrite);
    stream.removeEventListener('close', onClose);
    signal?.removeEventListener('abort', onAbort);
    if (!finished) stream.abort(new Error('the body was not read to its end'));
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Parses a JSON object from a message, or undefined. */
function parseObject(message: Uint8Array): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(decoder.decode(message)) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

/** A request, or why it is refused. */
function parseRequest(message: Uint8Array): Request | string {
  const value = parseObject(message);
  if (value === undefined) return 'not a JSON object';
  const fields = Object.keys(value).sort().join();
  if (fields === 'get,offset' || fields === 'acks,get,offset') {
    const { get, offset, acks = false } = value;
    if (typeof get !== 'string') return 'get is not a string';
    if (!Number.isSafeInteger(offset) || (offset as number) < 0) return `offset ${JSON.stringify(offset)} is not a byte offset`;
    if (typeof acks !== 'boolean') return 'acks is not a boolean';
    try {
      return { get: parseBlobCid(get), offset: offset as number, acks };
    } catch (error) {
      return (error as Error).message;
    }
  }
  if (fields === 'lookup') {
    return isKey(value['lookup']) ? { lookup: value['lookup'] } : `the lookup key is not a string of 1 to ${MAX_LOOKUP_KEY_LENGTH} characters`;
  }
  return `unknown request with fields ${JSON.stringify(fields.slice(0, 100))}`;
}

/** An answer's header, or undefined when it is none. */
function parseHeader(message: Uint8Array): Header | undefined {
  if (message.byteLength > MAX_CACHE_HEADER_BYTES) return undefined;
  const value = parseObject(message);
  const fields = value === undefined ? [] : Object.keys(value);
  if (value === undefined || fields.length !== 1) return undefined;
  const { size, entries, error } = value;
  if (fields[0] === 'size' && Number.isSafeInteger(size) && (size as number) >= 0) return { size: size as number };
  if (fields[0] === 'entries' && Number.isSafeInteger(entries) && (entries as number) >= 0 && (entries as number) <= MAX_LOOKUP_ENTRIES) return { entries: entries as number };
  if (fields[0] === 'error' && typeof error === 'string') return { error };
  return undefined;
}

function isKey(key: unknown): key is string {
  return typeof key === 'string' && key.length > 0 && key.length <= MAX_LOOKUP_KEY_LENGTH;
}

/** `promise`, or `error()` if it does not settle within `ms`. */
async function withinIdle<T>(promise: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(error()), ms);
    })]);
  } finally {
    clearTimeout(timer);
  }
}
