// The partition socket (docs/instances.md, "The partition socket"): how an instance's buildout asks the
// node for its parameters, publishes its connection parameters and requests child instances. A unix
// socket inside the partition (0600), newline-delimited JSON as the control socket: one request
// `{id, method, params, token}` per line, one answer `{id, result}` or `{id, error: {name, message}}`.
// It answers only for its partition (the backend the node gives) and only with the partition's token.
import { timingSafeEqual } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import type { PartitionParameters } from '../engine/recipes/slap-client.js';
import type { Logger } from './log.js';
import type { RequestedState } from './store.js';

/** A request line longer than this is refused and its connection closed. */
export const MAX_REQUEST_LINE = 64 * 1024;
/** How long the backend may take to answer one request. */
export const PARTITION_REQUEST_TIMEOUT_MS = 60_000;
/** sun_path holds 108 bytes on Linux (104 on macOS), the final NUL included. */
export const MAX_SOCKET_PATH_BYTES = process.platform === 'darwin' ? 103 : 107;

export type { PartitionParameters } from '../engine/recipes/slap-client.js';

/** What `request` asks: a child instance of this partition's instance, named within it. */
export interface ChildRequest {
  name: string;
  /** Release URL or CID. */
  release: string;
  type: string;
  parameters: Record<string, unknown>;
  state?: RequestedState;
  shared?: boolean;
}

/** What `request` answers: whether the child is ready, and what it published so far. */
export interface ChildAnswer {
  ready: boolean;
  connection: Record<string, string>;
  status: string;
  message?: string;
}

/** The node's side, for one partition. */
export interface PartitionBackend {
  parameters(): PartitionParameters | Promise<PartitionParameters>;
  publish(connection: Record<string, string>): Promise<void>;
  request(child: ChildRequest): Promise<ChildAnswer>;
}

export interface PartitionSocketInit {
  /** The socket's path: `<partition>/.slapmesh/slap.sock`. */
  path: string;
  /** The partition's secret: requests must carry it. */
  token: string;
  backend: PartitionBackend;
  log: Logger;
  /** Default PARTITION_REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number;
}

export class SocketPathTooLongError extends Error {
  override name = 'SocketPathTooLongError';
}

/** A request the socket refuses before the backend sees it; its name is the answer's error name. */
class RefusedRequest extends Error {
  constructor(override readonly name: string, message: string) {
    super(message);
  }
}

/** Fails with SocketPathTooLongError when a unix socket cannot be bound at `path`. */
export function checkSocketPath(path: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new SocketPathTooLongError(`the socket path ${path} is ${bytes} bytes long, more than unix sockets allow (${MAX_SOCKET_PATH_BYTES}): use a shorter data directory`);
  }
}

type Handler = (params: Record<string, unknown>) => unknown;

export class PartitionSocket {
  readonly path: string;
  readonly token: string;
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private readonly handlers: ReadonlyMap<string, Handler>;
  private readonly timeoutMs: number;

  constructor(private readonly init: PartitionSocketInit) {
    this.path = resolve(init.path);
    this.token = init.token;
    this.timeoutMs = init.requestTimeoutMs ?? PARTITION_REQUEST_TIMEOUT_MS;
    const { backend } = init;
    this.handlers = new Map<string, Handler>([
      ['parameters', () => backend.parameters()],
      ['publish', async (params) => {
        await backend.publish(connectionOf(params));
        return {};
      }],
      ['request', (params) => backend.request(childOf(params))],
    ]);
  }

  /** What the socket answers to `parameters` now. */
  async parameters(): Promise<PartitionParameters> {
    return this.init.backend.parameters();
  }

  async start(): Promise<void> {
    checkSocketPath(this.path);
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    removeStaleSocket(this.path);
    const server = createServer((socket) => this.serve(socket));
    await new Promise<void>((done, fail) => {
      server.once('error', fail);
      server.listen(this.path, () => {
        server.off('error', fail);
        done();
      });
    });
    chmodSync(this.path, 0o600);
    server.on('error', (error) => this.init.log.error(`partition socket ${this.path}: ${error.message}`));
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    if (server) await new Promise<void>((done) => server.close(() => done()));
    removeStaleSocket(this.path);
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      let nl: number;
      while ((nl = buffer.indexOf(0x0a)) >= 0) {
        const line = buffer.subarray(0, nl);
        buffer = buffer.subarray(nl + 1);
        if (line.length > MAX_REQUEST_LINE) return this.refuseOversized(socket);
        void this.answer(line.toString('utf8')).then((response) => send(socket, response));
      }
      // The rest of a line that is already too long cannot be read: refuse it and hang up.
      if (buffer.length > MAX_REQUEST_LINE) this.refuseOversized(socket);
    });
  }

  private refuseOversized(socket: Socket): void {
    this.init.log.debug(`partition socket ${this.path}: refused a request longer than ${MAX_REQUEST_LINE} bytes`);
    socket.end(`${JSON.stringify({ id: null, error: { name: 'RequestTooLargeError', message: `a request line is limited to ${MAX_REQUEST_LINE} bytes` } })}\n`);
    socket.removeAllListeners('data');
    socket.pause();
  }

  /** The answer to one line: never throws. */
  private async answer(line: string): Promise<object> {
    let id: string | number | null = null;
    try {
      const raw = parseLine(line);
      id = idOf(raw);
      const request = validRequest(raw);
      if (!sameToken(request.token, this.token)) throw new RefusedRequest('UnauthorizedError', 'wrong or missing partition token');
      const handler = this.handlers.get(request.method);
      if (!handler) throw new RefusedRequest('UnknownMethodError', `unknown method ${JSON.stringify(request.method)} (parameters, publish, request)`);
      return { id, result: (await this.withTimeout(request.method, () => handler(request.params))) ?? {} };
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      this.init.log.debug(`partition socket ${this.path}: ${e.name}: ${e.message}`);
      return { id, error: { name: e.name, message: e.message } };
    }
  }

  private async withTimeout<T>(method: string, call: () => T | Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, fail) => {
      timer = setTimeout(() => fail(new RefusedRequest('TimeoutError', `${method} took longer than ${this.timeoutMs / 1000} s`)), this.timeoutMs);
    });
    try {
      return await Promise.race([Promise.resolve().then(call), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function send(socket: Socket, response: object): void {
  if (socket.writable) socket.write(`${JSON.stringify(response)}\n`);
}

/** A socket file left by a node that was killed; anything else at that path is not ours to delete. */
function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) rmSync(path, { force: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function sameToken(given: unknown, token: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

// ---- validation ----

interface ParsedRequest {
  method: string;
  params: Record<string, unknown>;
  token: unknown;
}

const malformed = (message: string) => new RefusedRequest('MalformedRequestError', message);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseLine(line: string): Record<string, unknown> {
  let request: unknown;
  try {
    request = JSON.parse(line);
  } catch (error) {
    throw malformed(`not JSON: ${(error as Error).message}`);
  }
  if (!isObject(request)) throw malformed('a request is a JSON object {id, method, params, token}');
  return request;
}

/** The request's id, first: an answer to a bad request still carries it. */
function idOf(request: Record<string, unknown>): string | number | null {
  const { id = null } = request;
  if (id !== null && typeof id !== 'string' && typeof id !== 'number') throw malformed('id must be a string or a number');
  return id;
}

function validRequest(request: Record<string, unknown>): ParsedRequest {
  const { method, params = {}, token } = request;
  if (typeof method !== 'string') throw malformed('method must be a string');
  if (!isObject(params)) throw malformed('params must be an object');
  return { method, params, token };
}

function stringRecord(value: unknown, what: string): Record<string, string> {
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw malformed(`${what} must be an object of strings`);
  }
  return { ...(value as Record<string, string>) };
}

function connectionOf(params: Record<string, unknown>): Record<string, string> {
  return stringRecord(params['connection'], 'connection');
}

const STATES: readonly string[] = ['started', 'stopped', 'destroyed'];

function childOf(params: Record<string, unknown>): ChildRequest {
  const { name, release, type = 'default', parameters = {}, state, shared } = params;
  if (typeof name !== 'string' || !name.trim()) throw malformed('name must be a non-empty string');
  if (typeof release !== 'string' || !release.trim()) throw malformed('release must be a non-empty string');
  if (typeof type !== 'string') throw malformed('type must be a string');
  if (!isObject(parameters)) throw malformed('parameters must be an object');
  if (state !== undefined && (typeof state !== 'string' || !STATES.includes(state))) throw malformed(`state must be one of ${STATES.join(', ')}`);
  if (shared !== undefined && typeof shared !== 'boolean') throw malformed('shared must be true or false');
  return {
    name, release, type: type || 'default', parameters: { ...parameters },
    ...(state !== undefined ? { state: state as RequestedState } : {}),
    ...(shared !== undefined ? { shared } : {}),
  };
}
