// The instance protocol's handler and client (index.ts has the contract, messages.ts the checks).
import type { AbortOptions, Connection, Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { abortable, bounded, isFramingError } from '../streams.js';
import {
  INSTANCE_HANDLER_TIMEOUT_MS, INSTANCE_PROTOCOL, INSTANCE_TIMEOUT_MS, MAX_INBOUND_STREAMS, MAX_INSTANCE_ANSWER_BYTES,
  MAX_INSTANCE_REQUEST_BYTES, MAX_OUTBOUND_STREAMS,
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

/**
 * How much of an oversized request the handler takes in while it refuses it: up to this, the peer gets an
 * `invalid` answer; beyond it, the stream is reset (lpStream's read buffer overflows).
 */
const MAX_REQUEST_BUFFER_BYTES = 2 * MAX_INSTANCE_REQUEST_BYTES;

export class Instance implements InstanceProtocol {
  private readonly libp2p: InstanceComponents['libp2p'];
  private readonly log: InstanceLogger;
  private service: InstanceService | undefined;
  private readonly timeoutMs: number;
  private readonly handlerTimeoutMs: number;
  private started = false;

  constructor(components: InstanceComponents, init: InstanceInit) {
    this.libp2p = components.libp2p;
    this.log = components.logger;
    this.service = init.service;
    this.timeoutMs = init.timeoutMs ?? INSTANCE_TIMEOUT_MS;
    this.handlerTimeoutMs = init.handlerTimeoutMs ?? INSTANCE_HANDLER_TIMEOUT_MS;
  }

  async start(): Promise<void> {
    if (this.started) return;
    await this.libp2p.handle(INSTANCE_PROTOCOL, (stream, connection) => this.answer(stream, connection), {
      maxInboundStreams: MAX_INBOUND_STREAMS,
      maxOutboundStreams: MAX_OUTBOUND_STREAMS,
    });
    this.started = true;
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.libp2p.unhandle(INSTANCE_PROTOCOL);
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

  /** Sends one request and reads its answer, checked against the request. */
  private async call<M extends InstanceMessage>(peer: InstancePeer, message: M, options: AbortOptions = {}): Promise<AnswerOf<M['op']>> {
    const request = encodeRequest(message);
    const { signal, timeout } = bounded(options.signal, this.timeoutMs);
    let stream: Stream | undefined;
    try {
      const connection = await this.libp2p.dial(peer, { signal });
      stream = await connection.newStream(INSTANCE_PROTOCOL, { signal, maxOutboundStreams: MAX_OUTBOUND_STREAMS });
      const lp = lpStream(stream, { maxDataLength: MAX_INSTANCE_ANSWER_BYTES, maxBufferSize: MAX_INSTANCE_ANSWER_BYTES + 16 });
      await lp.write(request, { signal });
      const answer = parseAnswer(message.op as M['op'], (await lp.read({ signal })).subarray());
      const problem = typeof answer === 'string' ? answer : mismatch(message, answer);
      if (problem !== undefined) {
        throw new InvalidInstanceAnswerError(`bad answer from ${connection.remotePeer.toString()} to ${message.op}: ${problem}`);
      }
      await stream.close({ signal });
      return answer as AnswerOf<M['op']>;
    } catch (error) {
      stream?.abort(error as Error);
      throw this.clientError(error, peer, message.op, timeout, options.signal);
    }
  }

  /** The error a failed call rejects with. */
  private clientError(error: unknown, peer: InstancePeer, op: string, timeout: AbortSignal, callerSignal: AbortSignal | undefined): unknown {
    if (timeout.aborted && !callerSignal?.aborted) {
      return new InstanceTimeoutError(`no answer from ${describe(peer)} to ${op} within ${this.timeoutMs} ms`, { cause: error });
    }
    if (!callerSignal?.aborted && isFramingError(error)) {
      return new InvalidInstanceAnswerError(`bad answer from ${describe(peer)} to ${op}: ${(error as Error).message}`, { cause: error });
    }
    return error;
  }

  /** Reads the request, has the service answer it, writes the answer and closes; aborts the stream if that fails. */
  private async answer(stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString();
    const lp = lpStream(stream, { maxDataLength: MAX_INSTANCE_REQUEST_BYTES, maxBufferSize: MAX_REQUEST_BUFFER_BYTES });
    try {
      const answer = await this.serve(lp, from);
      if (answer === undefined) {
        stream.abort(new Error('the request could not be read'));
        return;
      }
      // A fresh bound: the first may have run out on a slow service, and its `busy` must still go out.
      const signal = AbortSignal.timeout(this.handlerTimeoutMs);
      await lp.write(answer, { signal });
      await stream.close({ signal });
    } catch (error) {
      this.log.debug(`instance answer to ${from} on stream ${stream.id} failed: ${(error as Error).message}`);
      stream.abort(error as Error);
    }
  }

  /** The encoded answer to the stream's request, or undefined when the stream failed before a request came. */
  private async serve(lp: ReturnType<typeof lpStream>, from: string): Promise<Uint8Array | undefined> {
    const signal = AbortSignal.timeout(this.handlerTimeoutMs);
    let message: InstanceMessage | string;
    try {
      message = parseMessage((await lp.read({ signal })).subarray());
    } catch (error) {
      if (!signal.aborted && !isFramingError(error)) {
        this.log.debug(`instance request from ${from} failed: ${(error as Error).message}`);
        return undefined;
      }
      message = this.readProblem(error, signal);
    }
    if (typeof message === 'string') {
      // The reason may quote the peer's bytes (a field's name): made printable for the log and the answer.
      const reason = toMessage(message);
      this.log(`refused an instance request from ${from}: ${reason}`);
      return refusal('invalid', reason);
    }
    return this.work(message, from, signal);
  }

  private readProblem(error: unknown, signal: AbortSignal): string {
    if (signal.aborted) return `no request within ${this.handlerTimeoutMs} ms`;
    if ((error as Error).name === 'InvalidDataLengthError') return `a request of more than ${MAX_INSTANCE_REQUEST_BYTES} bytes`;
    return `unreadable request: ${(error as Error).message}`;
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
