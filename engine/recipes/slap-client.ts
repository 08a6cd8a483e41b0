// How the instance recipes reach the node that runs them (docs/instances.md, "The partition socket"):
// one newline-delimited JSON request `{id, method, params, token}` on the partition's unix socket, one
// answer `{id, result}` or `{id, error: {name, message}}`. Recipe init is synchronous (it runs while the
// configuration is evaluated), so slapconfiguration and request call through a worker thread (synckit)
// and wait for it; publish, in install, calls directly.
import { connect } from 'node:net';
import { isAbsolute } from 'node:path';
import { createSyncFn } from 'synckit';
import { MissingSectionError } from '../config/errors.js';
import { RecipeError, type RecipeInit } from '../install/recipe.js';

/** Longer than the node's own bound on a request (60 s), so that its typed answer comes first. */
export const SLAP_CALL_TIMEOUT_MS = 90_000;
/** An answer longer than this is not from a slapmesh node. */
export const MAX_ANSWER_BYTES = 1 << 20;

/** Where the node listens for one partition, and the partition's secret. */
export interface SlapEndpoint {
  readonly socket: string;
  readonly token: string;
}

/**
 * What the node answers to `parameters` (docs/instances.md): the instance's parameters and what its partition
 * has. The wire contract between the node's partition socket and these recipes, defined once here.
 */
export interface PartitionParameters {
  parameters: Record<string, unknown>;
  softwareType: string;
  /** `slappart<n>`. */
  partitionId: string;
  /** The host's PeerId. */
  computerId: string;
  instanceTitle: string;
  rootInstanceTitle: string;
  ipv4: string[];
  ipv6: string[];
  ports: number[];
}

/** The node could not be asked: no socket, no answer in time, or an answer that is not the protocol's. */
export class SlapUnreachableError extends Error {
  override name = 'SlapUnreachableError';
}

/** The node answered with an error (`remoteName` is the name it gave, e.g. `UnauthorizedError`). */
export class SlapCallError extends Error {
  override name = 'SlapCallError';
  constructor(message: string, readonly remoteName: string) {
    super(message);
  }
}

/** The socket of a `server-url`: `unix:<path>` or an absolute path; undefined for anything else (an HTTP master). */
export function socketPathOf(serverUrl: string): string | undefined {
  const url = serverUrl.trim();
  const path = url.startsWith('unix:') ? url.slice('unix:'.length).replace(/^\/\/(?=\/)/, '') : url;
  return isAbsolute(path) ? path : undefined;
}

/** Sends one request and resolves with its result. */
export function callSlap(endpoint: SlapEndpoint, method: string, params: unknown, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<unknown> {
  const timeoutMs = options.timeoutMs ?? SLAP_CALL_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const socket = connect(endpoint.socket);
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      finish();
      reject(error);
    };
    const onAbort = () => fail(new SlapUnreachableError(`${method}: ${String(options.signal?.reason ?? 'aborted')}`));
    const timer = setTimeout(() => fail(new SlapUnreachableError(`the node did not answer ${method} within ${timeoutMs / 1000} s (${endpoint.socket})`)), timeoutMs);
    const finish = () => {
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
    };
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });

    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify({ id: 1, method, params, token: endpoint.token })}\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const nl = buffer.indexOf('\n');
      if (nl < 0) {
        if (buffer.length > MAX_ANSWER_BYTES) fail(new SlapUnreachableError(`the node's answer to ${method} is longer than ${MAX_ANSWER_BYTES} bytes`));
        return;
      }
      try {
        const answer = readAnswer(buffer.slice(0, nl));
        finish();
        resolve(answer);
      } catch (error) {
        fail(error as Error);
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const why = error.code === 'ENOENT' || error.code === 'ECONNREFUSED' ? 'no node is listening' : error.message;
      fail(new SlapUnreachableError(`cannot reach the node at ${endpoint.socket} (${method}): ${why}`));
    });
    socket.on('close', () => fail(new SlapUnreachableError(`the node closed the connection without answering ${method}`)));
  });
}

/** The result of an answer line, or the error it carries. */
function readAnswer(line: string): unknown {
  let answer: unknown;
  try {
    answer = JSON.parse(line);
  } catch (error) {
    throw new SlapUnreachableError(`unreadable answer from the node: ${(error as Error).message}`);
  }
  if (typeof answer !== 'object' || answer === null) throw new SlapUnreachableError('unreadable answer from the node: not an object');
  const { result, error } = answer as { result?: unknown; error?: { name?: unknown; message?: unknown } };
  if (error !== undefined) {
    throw new SlapCallError(String(error?.message ?? 'the node refused the request'), typeof error?.name === 'string' ? error.name : 'Error');
  }
  if (!('result' in answer)) throw new SlapUnreachableError('unreadable answer from the node: neither result nor error');
  return result;
}

/** What the worker hands back: errors as data, so their class survives the thread boundary. */
export type WorkerAnswer = { result: unknown } | { error: { name: string; message: string; remoteName?: string } };

type WorkerCall = (endpoint: SlapEndpoint, method: string, params: unknown, timeoutMs: number) => Promise<WorkerAnswer>;

let syncCall: ((...args: Parameters<WorkerCall>) => WorkerAnswer) | undefined;

/** A node's answer given ahead of the call: to `method` without parameters, from this socket with this token. */
export interface PrimedAnswer {
  socket: string;
  token: string;
  method: string;
  result: unknown;
}

const primed = new Map<string, unknown>();
const primedKey = (socket: string, token: string, method: string) => JSON.stringify([socket, token, method]);

/**
 * Answers the node gave with a job (the buildout runner's): while they are set, callSlapSync returns them
 * instead of asking. A node deploying a partition knows its `parameters` answer already; asked over the
 * socket, it costs the buildout a round trip through the node's busy event loop. Returns the undoing.
 */
export function primeSlapAnswers(answers: readonly PrimedAnswer[]): () => void {
  const keys = answers.map(({ socket, token, method, result }) => {
    const key = primedKey(socket, token, method);
    primed.set(key, result);
    return key;
  });
  return () => keys.forEach((key) => primed.delete(key));
}

/**
 * callSlap, waiting for the answer: for recipe init. The socket is served by another process (the
 * node), never by this thread, which is blocked meanwhile.
 */
export function callSlapSync(endpoint: SlapEndpoint, method: string, params: unknown, timeoutMs = SLAP_CALL_TIMEOUT_MS): unknown {
  const key = primedKey(endpoint.socket, endpoint.token, method);
  if (primed.has(key) && isEmptyObject(params)) return structuredClone(primed.get(key));
  // The compiled worker sits next to this file (dist/engine/recipes/), whatever the folder is.
  syncCall ??= createSyncFn<WorkerCall>(new URL('./slap-client-worker.js', import.meta.url), { timeout: timeoutMs + 5_000 });
  const answer = syncCall(endpoint, method, params, timeoutMs);
  if ('result' in answer) return answer.result;
  const { name, message, remoteName } = answer.error;
  if (name === 'SlapCallError') throw new SlapCallError(message, remoteName ?? 'Error');
  throw new SlapUnreachableError(message);
}

function isEmptyObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length === 0;
}

// ---------------------------------------------------------------------------------------------
// What the recipes read to find the node

/** An option of [slap-connection] (which the node adds to the profile it runs), if there is one. */
export function connectionOption(part: RecipeInit, option: string): string | undefined {
  try {
    return part.section('slap-connection').get(option)?.trim() || undefined;
  } catch (error) {
    if (error instanceof MissingSectionError) return undefined;
    throw error;
  }
}

/**
 * The node to ask, from a server URL: its socket, and `partition-token` of the section or of
 * [slap-connection]. `asking` says what for, in the errors.
 */
export function nodeEndpoint(part: RecipeInit, serverUrl: string, asking: string): SlapEndpoint {
  const socket = socketPathOf(serverUrl);
  if (!socket) {
    throw new RecipeError(`[${part.name}] ${asking} (server-url ${serverUrl}) is not implemented yet: a slapmesh node is reached at unix:<socket path>`);
  }
  const token = part.options.get('partition-token')?.trim() || connectionOption(part, 'partition-token');
  if (!token) throw new RecipeError(`[${part.name}] ${asking} needs partition-token in [slap-connection]`);
  return { socket, token };
}

/** A failed call as a recipe error naming the part. */
export function slapFailure(part: RecipeInit, asking: string, error: unknown): Error {
  if (error instanceof SlapCallError) return new RecipeError(`[${part.name}] ${asking}: the node refused (${error.remoteName}): ${error.message}`);
  if (error instanceof SlapUnreachableError) return new RecipeError(`[${part.name}] ${asking}: ${error.message}`);
  return error instanceof Error ? error : new Error(String(error));
}
