// The instance protocol's handler and client (index.ts has the contract, messages.ts the checks).
import type { AbortOptions, Connection, Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { abortable, bounded, isFramingError } from '../streams.js';
import {
  INSTANCE_HANDLER_TIMEOUT_MS, INSTANCE_PROTOCOL, INSTANCE_TIMEOUT_MS, MAX_INBOUND_STREAMS, MAX_INSTANCE_ANSWER_BYTES,
  MAX_INSTANCE_REQUEST_BYTES, MAX_OUTBOUND_STREAMS, MAX_SESSION_REQUESTS, SESSION_IDLE_MS,
} from './constants.js';
import { InstanceTimeoutError, InvalidInstanceAnswerError, InvalidInstanceRequestError } from './errors.js';
import type {
  InstanceComponents, InstanceInit, InstanceLogger, InstancePeer, InstanceProtocol, InstanceService,
} from './index.js';
import {
  checkAnswer, checkMessage, parseAnswer, parseMessage, projectAnswer, toMessage,
  type AnswerOf, type InstanceMessage, type InstancePlacement, type InstanceReport, type InstanceRequest, type InstanceUpdate,
  type RefusalCode,
} from './messages.js';
import { ClientSession, frame, SessionEndedError, unframe } from './session.js';

/**
 * The longest frame the handler reads: a request up to this is answered (`invalid` when over
 * MAX_INSTANCE_REQUEST_BYTES); a longer one ends the session.
 */
const MAX_REQUEST_BUFFER_BYTES = 2 * MAX_INSTANCE_REQUEST_BYTES;

export class Instance implements InstanceProtocol {
  private readonly libp2p: InstanceComponents['libp2p'];
  private readonly log: InstanceLogger;
  private service: InstanceService | undefined;
  private readonly timeoutMs: number;
  private readonly handlerTimeoutMs: number;
  private readonly sessionIdleMs: number;
  /** The sessions this node opened, by connection id: calls to a peer share one stream. */
  private readonly sessions = new Map<string, Promise<ClientSession>>();
  /** The sessions this node serves: ended when it stops serving. */
  private readonly served = new Set<Stream>();
  private started = false;

  constructor(components: InstanceComponents, init: InstanceInit) {
    this.libp2p = components.libp2p;
    this.log = components.logger;
    this.service = init.service;
    this.timeoutMs = init.timeoutMs ?? INSTANCE_TIMEOUT_MS;
    this.handlerTimeoutMs = init.handlerTimeoutMs ?? INSTANCE_HANDLER_TIMEOUT_MS;
    this.sessionIdleMs = init.sessionIdleMs ?? SESSION_IDLE_MS;
  }

  async start(): Promise<void> {
    if (this.started) return;
    await this.libp2p.handle(INSTANCE_PROTOCOL, (stream, connection) => this.serveSession(stream, connection), {
      maxInboundStreams: MAX_INBOUND_STREAMS,
      maxOutboundStreams: MAX_OUTBOUND_STREAMS,
    });
    this.started = true;
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.libp2p.unhandle(INSTANCE_PROTOCOL);
    // Sessions opened before go too: a caller's next call finds that this node no longer serves.
    for (const stream of this.served) stream.abort(new SessionEndedError('the node stopped serving instances'));
    for (const opening of this.sessions.values()) void opening.then((session) => session.close(), () => undefined);
  }

  setService(service: InstanceService | undefined): void {
    this.service = service;
  }

  reserve(peer: InstancePeer, request: InstanceRequest, options?: AbortOptions): Promise<AnswerOf<'reserve'>> {
    return this.call(peer, { op: 'reserve', ...requestOf(request) }, options);
  }

  confirm(peer: InstancePeer, reference: string, epoch: number, options?: AbortOptions): Promise<AnswerOf<'confirm'>> {
    return this.call(peer, { op: 'confirm', reference, epoch }, options);
  }

  update(peer: InstancePeer, update: InstanceUpdate, options?: AbortOptions): Promise<AnswerOf<'update'>> {
    return this.call(peer, { op: 'update', ...requestOf(update), epoch: update.epoch }, options);
  }

  status(peer: InstancePeer, reference: string, options?: AbortOptions): Promise<AnswerOf<'status'>> {
    return this.call(peer, { op: 'status', reference }, options);
  }

  renew(peer: InstancePeer, instances: InstancePlacement[], options?: AbortOptions): Promise<AnswerOf<'renew'>> {
    return this.call(peer, { op: 'renew', instances: instances.map(({ reference, epoch }) => ({ reference, epoch })) }, options);
  }

  list(peer: InstancePeer, options?: AbortOptions): Promise<AnswerOf<'list'>> {
    return this.call(peer, { op: 'list' }, options);
  }

  report(peer: InstancePeer, report: InstanceReport, options?: AbortOptions): Promise<AnswerOf<'report'>> {
    return this.call(peer, { op: 'report', ...reportOf(report) }, options);
  }

  check(peer: InstancePeer, reference: string, epoch: number, options?: AbortOptions): Promise<AnswerOf<'check'>> {
    return this.call(peer, { op: 'check', reference, epoch }, options);
  }

  /** Sends one request on the connection's session and reads its answer, checked against the request. */
  private async call<M extends InstanceMessage>(peer: InstancePeer, message: M, options: AbortOptions = {}): Promise<AnswerOf<M['op']>> {
    const request = encodeRequest(message);
    const { signal, timeout } = bounded(options.signal, this.timeoutMs);
    try {
      const connection = await this.libp2p.dial(peer, { signal });
      let bytes: Uint8Array;
      for (let attempt = 1; ; attempt++) {
        const session = await abortable(this.sessionOn(connection), signal);
        const reused = session.answered;
        try {
          bytes = await session.exchange(request, signal);
          break;
        } catch (error) {
          // A session that had answered before may have ended just now — its peer stopped serving, or the
          // idle close crossed this request: once more, on a new stream. (Every op may be repeated: a
          // placement is idempotent by reference and epoch.)
          if (attempt === 1 && reused && session.ended && !signal.aborted && !isFramingError(error)) continue;
          throw error;
        }
      }
      const answer = parseAnswer(message.op as M['op'], bytes);
      const problem = typeof answer === 'string' ? answer : mismatch(message, answer);
      if (problem !== undefined) throw new InvalidInstanceAnswerError(problem);
      return answer as AnswerOf<M['op']>;
    } catch (error) {
      throw this.clientError(error, peer, message.op, timeout, options.signal);
    }
  }

  /** The open session on this connection, or a new one (calls made while it opens share it). */
  private async sessionOn(connection: Connection): Promise<ClientSession> {
    const known = this.sessions.get(connection.id);
    if (known !== undefined) {
      const session = await known.catch(() => undefined);
      if (session !== undefined && !session.ended) return session;
    }
    const opening: Promise<ClientSession> = connection
      // Its own bound rather than a caller's signal: the callers that share it do not abort each other.
      .newStream(INSTANCE_PROTOCOL, { signal: AbortSignal.timeout(this.timeoutMs), maxOutboundStreams: MAX_OUTBOUND_STREAMS })
      .then((stream) => new ClientSession(stream, {
        maxAnswerBytes: MAX_INSTANCE_ANSWER_BYTES, idleMs: this.sessionIdleMs,
        onEnd: () => this.forgetSession(connection.id, opening),
      }));
    this.sessions.set(connection.id, opening);
    opening.catch(() => this.forgetSession(connection.id, opening));
    return opening;
  }

  private forgetSession(connectionId: string, opening: Promise<ClientSession>): void {
    if (this.sessions.get(connectionId) === opening) this.sessions.delete(connectionId);
  }

  /** The error a failed call rejects with. */
  private clientError(error: unknown, peer: InstancePeer, op: string, timeout: AbortSignal, callerSignal: AbortSignal | undefined): unknown {
    if (timeout.aborted && !callerSignal?.aborted) {
      return new InstanceTimeoutError(`no answer from ${describe(peer)} to ${op} within ${this.timeoutMs} ms`, { cause: error });
    }
    if (!callerSignal?.aborted && (isFramingError(error) || (error as Error | undefined)?.name === 'InvalidInstanceAnswerError')) {
      return new InvalidInstanceAnswerError(`bad answer from ${describe(peer)} to ${op}: ${(error as Error).message}`, { cause: error });
    }
    return error;
  }

  /**
   * Serves one session: reads requests and answers each as the service gives its answer, in any order; at
   * most MAX_SESSION_REQUESTS at once (then it reads no more until one is answered). A frame it cannot read
   * ends the session (the stream is reset).
   */
  private async serveSession(stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString();
    const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BUFFER_BYTES, maxBufferSize: MAX_REQUEST_BUFFER_BYTES + 16 });
    const working = new Set<Promise<void>>();
    let writing = Promise.resolve();
    const fail = (error: Error) => {
      this.log.debug(`instance session with ${from} on stream ${stream.id} ended: ${error.message}`);
      stream.abort(error);
    };
    this.served.add(stream);
    try {
      for (;;) {
        while (working.size >= MAX_SESSION_REQUESTS) await Promise.race(working);
        let bytes: Uint8Array;
        try {
          bytes = (await lp.read()).subarray();
        } catch (error) {
          // The caller closed its side: the session ends once what it asked is answered.
          if ((error as Error).name === 'UnexpectedEOFError') break;
          throw error;
        }
        const request = unframe(bytes);
        if (request === undefined) throw new SessionEndedError(`a frame of ${bytes.byteLength} bytes, too short to hold an id`);
        const job = this.answer(request.message, from)
          // One write at a time, each bounded: a caller that stops reading ends its session.
          .then((answer) => (writing = writing.then(() => lp.write(frame(request.id, answer), { signal: AbortSignal.timeout(this.handlerTimeoutMs) }))))
          .catch(fail)
          .finally(() => working.delete(job));
        working.add(job);
      }
      await Promise.all(working);
      await stream.close({ signal: AbortSignal.timeout(this.handlerTimeoutMs) });
    } catch (error) {
      fail(error as Error);
    } finally {
      this.served.delete(stream);
    }
  }

  /** The encoded answer to one request. */
  private async answer(bytes: Uint8Array, from: string): Promise<Uint8Array> {
    const message = bytes.byteLength > MAX_INSTANCE_REQUEST_BYTES ? `a request of more than ${MAX_INSTANCE_REQUEST_BYTES} bytes` : parseMessage(bytes);
    if (typeof message === 'string') {
      // The reason may quote the peer's bytes (a field's name): made printable for the log and the answer.
      const reason = toMessage(message);
      this.log(`refused an instance request from ${from}: ${reason}`);
      return refusal('invalid', reason);
    }
    return this.work(message, from, AbortSignal.timeout(this.handlerTimeoutMs));
  }

  /** The service's answer to a valid request, or `busy` when there is none, it throws, is late or answers wrongly. */
  private async work(message: InstanceMessage, from: string, signal: AbortSignal): Promise<Uint8Array> {
    const service = this.service;
    const { op } = message;
    if (service === undefined) return refusal('busy', 'this node does not serve instances yet');
    let answer: unknown;
    try {
      answer = await abortable(Promise.resolve().then(() => dispatch(service, from, message, signal)), signal);
    } catch (error) {
      if (signal.aborted) {
        this.log(`the instance service did not answer ${op} from ${from} within ${this.handlerTimeoutMs} ms`);
        return refusal('busy', `no answer within ${this.handlerTimeoutMs} ms`);
      }
      this.log.error(`the instance service failed on ${op} from ${from}: ${(error as Error).stack ?? String(error)}`);
      return refusal('busy', `${op} failed on this node`);
    }
    const wire = projectAnswer(op, answer);
    const problem = checkAnswer(op, wire);
    const bytes = problem === undefined ? encode(wire) : undefined;
    if (bytes === undefined || bytes.byteLength > MAX_INSTANCE_ANSWER_BYTES) {
      this.log.error(`the instance service answered ${op} from ${from} against the protocol: ${problem ?? `${bytes?.byteLength} bytes, more than ${MAX_INSTANCE_ANSWER_BYTES}`}`);
      return refusal('busy', `${op} failed on this node`);
    }
    return bytes;
  }
}

const encoder = new TextEncoder();

function encode(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function refusal(code: RefusalCode, reason: string): Uint8Array {
  return encode({ ok: false, code, reason });
}

/** A request's bytes, or InvalidInstanceRequestError when it breaks the protocol's rules. */
function encodeRequest(message: InstanceMessage): Uint8Array {
  const problem = checkMessage(message);
  if (problem !== undefined) throw new InvalidInstanceRequestError(`${message.op}: ${problem}`);
  const bytes = encode(message);
  if (bytes.byteLength > MAX_INSTANCE_REQUEST_BYTES) {
    throw new InvalidInstanceRequestError(`${message.op}: ${bytes.byteLength} bytes, more than ${MAX_INSTANCE_REQUEST_BYTES}`);
  }
  return bytes;
}

/** An answer that is well formed but not an answer to this request: an instance of another reference, unknowns not asked about. */
function mismatch(message: InstanceMessage, answer: AnswerOf<InstanceMessage['op']>): string | undefined {
  if (!answer.ok) return undefined;
  if ((message.op === 'update' || message.op === 'status') && 'instance' in answer && answer.instance.reference !== message.reference) {
    return `an instance of another reference, ${JSON.stringify(answer.instance.reference)}`;
  }
  if (message.op === 'renew' && 'unknown' in answer) {
    const asked = new Set(message.instances.map((instance) => instance.reference));
    const stranger = answer.unknown.find((reference) => !asked.has(reference));
    if (stranger !== undefined) return `unknown ${JSON.stringify(stranger)}, which was not asked about`;
  }
  return undefined;
}

/** The request fields alone: a caller may pass a stored row with more. */
function requestOf({ reference, release, type, parameters, state }: InstanceRequest): InstanceRequest {
  return { reference, release, type, parameters, state };
}

function reportOf({ reference, epoch, status, message, connection }: InstanceReport): InstanceReport {
  return { reference, epoch, status, ...(message === undefined ? {} : { message }), connection };
}

/** The service's answer to a request, from the connection's peer. */
function dispatch(service: InstanceService, from: string, message: InstanceMessage, signal: AbortSignal): unknown {
  switch (message.op) {
    case 'reserve': return service.reserve(from, requestOf(message), signal);
    case 'confirm': return service.confirm(from, message.reference, message.epoch, signal);
    case 'update': return service.update(from, { ...requestOf(message), epoch: message.epoch }, signal);
    case 'status': return service.status(from, message.reference, signal);
    case 'renew': return service.renew(from, message.instances, signal);
    case 'list': return service.list(from, signal);
    case 'report': return service.report(from, reportOf(message), signal);
    case 'check': return service.check(from, message.reference, message.epoch, signal);
  }
}

function describe(peer: InstancePeer): string {
  return Array.isArray(peer) ? peer.map((address) => address.toString()).join(', ') : peer.toString();
}
