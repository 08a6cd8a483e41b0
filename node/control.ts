// The control socket: how the CLI talks to the running node of a data directory. A unix socket in
// the (0700) data directory, itself 0600, so only the node's owner can use it. One JSON request per
// line, one JSON response per line.
import { createHash } from 'node:crypto';
import { chmodSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const CONTROL_TIMEOUT_MS = 10_000;
export const MAX_CONTROL_LINE = 4 << 20;
/** sun_path is 108 bytes on Linux; longer data-dir paths use a socket in the temp folder instead. */
const MAX_SOCKET_PATH = 100;

/** Answers one request; long ones report progress through `emit` (each event is a line before the answer). */
export type ControlHandler = (params: unknown, emit: (event: unknown) => void) => unknown;

export interface CallOptions {
  /** The call fails after this long without an answer or an event (default CONTROL_TIMEOUT_MS). */
  idleTimeoutMs?: number;
  /** Progress the node reports before its answer. */
  onEvent?: (event: unknown) => void;
}

export class NodeNotRunningError extends Error {
  override name = 'NodeNotRunningError';
}

/** An error the node reported for a request (its name is kept, e.g. `InvalidPeerIdError`). */
export class ControlError extends Error {
  override name = 'ControlError';
  constructor(message: string, readonly remoteName: string) {
    super(message);
  }
}

export function controlSocketPath(dataDir: string): string {
  const path = join(resolve(dataDir), 'control.sock');
  if (Buffer.byteLength(path) <= MAX_SOCKET_PATH) return path;
  const hash = createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 24);
  return join(tmpdir(), `slapmesh-${hash}.sock`);
}

export class ControlServer {
  private server?: Server;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly dataDir: string, private readonly handlers: ReadonlyMap<string, ControlHandler>) {}

  async start(): Promise<void> {
    const path = controlSocketPath(this.dataDir);
    rmSync(path, { force: true }); // left by a node that was killed; the data-dir lock says none runs
    const server = createServer((socket) => this.serve(socket));
    await new Promise<void>((done, fail) => {
      server.once('error', fail);
      server.listen(path, () => done());
    });
    chmodSync(path, 0o600);
    this.server = server;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((done) => server.close(() => done()));
    rmSync(controlSocketPath(this.dataDir), { force: true });
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setEncoding('utf8');
    let buffer = '';
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.length > MAX_CONTROL_LINE) return void socket.destroy();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        void this.answer(line, socket).then((response) => socket.writable && socket.write(`${JSON.stringify(response)}\n`));
      }
    });
  }

  private async answer(line: string, socket: Socket): Promise<unknown> {
    let id: unknown = null;
    try {
      const request = JSON.parse(line) as { id?: unknown; method?: unknown; params?: unknown };
      id = request.id ?? null;
      const handler = typeof request.method === 'string' ? this.handlers.get(request.method) : undefined;
      if (!handler) return { id, error: { name: 'UnknownMethodError', message: `unknown request ${JSON.stringify(request.method)}` } };
      const emit = (event: unknown) => void (socket.writable && socket.write(`${JSON.stringify({ id, event })}\n`));
      return { id, result: (await handler(request.params, emit)) ?? null };
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      return { id, error: { name: e.name, message: e.message } };
    }
  }
}

/** Sends one request to the node of `dataDir` and returns its result. */
export function callControl(dataDir: string, method: string, params: unknown = {}, options: CallOptions = {}): Promise<unknown> {
  const idleTimeoutMs = options.idleTimeoutMs ?? CONTROL_TIMEOUT_MS;
  return new Promise((done, fail) => {
    const socket = connect(controlSocketPath(dataDir));
    let timer: NodeJS.Timeout;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        socket.destroy();
        fail(new NodeNotRunningError(`the node of ${dataDir} did not answer in ${idleTimeoutMs / 1000} s`));
      }, idleTimeoutMs);
    };
    arm();
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify({ id: 1, method, params })}\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        let response: { result?: unknown; event?: unknown; error?: { name: string; message: string } };
        try {
          response = JSON.parse(line) as typeof response;
        } catch (error) {
          clearTimeout(timer);
          socket.destroy();
          return fail(new ControlError(`unreadable answer from the node: ${(error as Error).message}`, 'ProtocolError'));
        }
        if ('event' in response) {
          arm();
          options.onEvent?.(response.event);
          continue;
        }
        clearTimeout(timer);
        socket.end();
        if (response.error) fail(new ControlError(response.error.message, response.error.name));
        else done(response.result);
        return;
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') {
        fail(new NodeNotRunningError(`no slapmesh node is running for ${dataDir} (start one with: slapmesh node start --data-dir ${dataDir})`));
      } else fail(error);
    });
  });
}
