// Promises of a partition (design.md §7): the executables in etc/plugin/ (what promise.plugin writes) and
// etc/promise/ (SlapOS's older promises). Each is run in the partition's folder, in a process group of its
// own, with a timeout; exit 0 means it holds, and the last line it printed says why or why not — except the
// network checks promise.plugin writes (marked as such in the script), which the node runs in its own
// process, saving a Node start per check. A failing promise puts the instance in error with that message.
import { spawn, type ChildProcess } from 'node:child_process';
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkPromise, IN_PROCESS_CHECKS, readPromiseMarker } from '../engine/recipes/promise-check.js';
import type { Logger } from './log.js';

export interface PromiseResult {
  /** The file's name. */
  name: string;
  ok: boolean;
  /** The last non-empty line of its output, or what happened to it. */
  message: string;
}

export interface RunPromisesOptions {
  /** Each promise's; default 20 s. */
  timeoutMs?: number;
  /** Kills the running promises; runPromises then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Over the node's environment. */
  env?: Record<string, string>;
}

export const DEFAULT_PROMISE_TIMEOUT_MS = 20_000;
export const PROMISE_FOLDERS: readonly string[] = [join('etc', 'plugin'), join('etc', 'promise')];
/** Of a promise's output (stdout and stderr as they come), only the end is kept. */
const MAX_OUTPUT_BYTES = 16 * 1024;
const MAX_MESSAGE_CHARS = 1_000;
/** How much of a promise file is read looking for the marker of a check the node runs itself. */
const MARKER_SEARCH_BYTES = 64 * 1024;
/** How long the output of a promise that exited may take to end. */
const OUTPUT_DRAIN_MS = 500;

/** checkNow() on a partition that is not watched, without a folder. */
export class NotWatchedError extends Error {
  override name = 'NotWatchedError';
}

/** The reason runs are aborted with when their partition is unwatched. */
export class PromisesStoppedError extends Error {
  override name = 'PromisesStoppedError';
}

/** Runs the partition's promises in parallel; their results sorted by name. */
export async function runPromises(folder: string, options: RunPromisesOptions = {}): Promise<PromiseResult[]> {
  const { signal } = options;
  signal?.throwIfAborted();
  const timeoutMs = options.timeoutMs ?? DEFAULT_PROMISE_TIMEOUT_MS;
  const env = { ...process.env, ...options.env };
  const found = await findPromises(folder);
  signal?.throwIfAborted();
  const results = await Promise.all(found.map(({ name, path }) => runOne(name, path, folder, timeoutMs, env, signal)));
  signal?.throwIfAborted();
  return results;
}

/** Executable files (hidden ones left out), sorted by name. */
async function findPromises(folder: string): Promise<{ name: string; path: string }[]> {
  const found: { name: string; path: string }[] = [];
  for (const sub of PROMISE_FOLDERS) {
    const dir = join(folder, sub);
    for (const name of await listFolder(dir)) {
      if (name.startsWith('.')) continue;
      const path = join(dir, name);
      const info = await stat(path).catch(() => undefined);
      if (info?.isFile() && (info.mode & 0o111) !== 0) found.push({ name, path });
    }
  }
  return found.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function listFolder(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw error;
  }
}

/** Never rejects: what goes wrong is the result's message. */
async function runOne(name: string, path: string, folder: string, timeoutMs: number, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<PromiseResult> {
  const marked = readPromiseMarker(await readHead(path));
  if (marked && IN_PROCESS_CHECKS.includes(marked.check)) return checkInProcess(name, marked.check, marked.config, timeoutMs, signal);
  return runScript(name, path, folder, timeoutMs, env, signal);
}

/** The start of a file, where a promise script's marker line is; empty when it cannot be read. */
async function readHead(path: string): Promise<string> {
  const file = await open(path).catch(() => undefined);
  if (!file) return '';
  try {
    const buffer = Buffer.alloc(MARKER_SEARCH_BYTES);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    return buffer.toString('utf8', 0, bytesRead);
  } catch {
    return '';
  } finally {
    await file.close();
  }
}

/** A network check of a promise.plugin script, run here rather than by starting the script. */
async function checkInProcess(name: string, check: string, config: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<PromiseResult> {
  if (signal?.aborted) return { name, ok: false, message: 'aborted' };
  // The runner's bound wins over the check's own when it is shorter.
  const own = Number(config['timeout']);
  const seconds = Math.min(own > 0 ? own : DEFAULT_PROMISE_TIMEOUT_MS / 1000, timeoutMs / 1000);
  let onAbort = () => {};
  const aborted = new Promise<{ ok: boolean; message: string }>((resolve) => {
    onAbort = () => resolve({ ok: false, message: 'aborted' });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const { ok, message } = await Promise.race([checkPromise(check, { ...config, timeout: String(seconds) }), aborted]);
    return { name, ok, message: message.slice(0, MAX_MESSAGE_CHARS) };
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Runs the executable in the partition's folder, in a process group of its own. */
function runScript(name: string, path: string, folder: string, timeoutMs: number, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<PromiseResult> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(path, [], { cwd: folder, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      resolve({ name, ok: false, message: `cannot run ${path}: ${(error as Error).message}` });
      return;
    }
    const output = new OutputTail(MAX_OUTPUT_BYTES);
    child.stdout!.on('data', output.add);
    child.stderr!.on('data', output.add);

    let done = false;
    let drain: NodeJS.Timeout | undefined;
    const finish = (ok: boolean, message: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(drain);
      signal?.removeEventListener('abort', onAbort);
      resolve({ name, ok, message: message.slice(0, MAX_MESSAGE_CHARS) });
    };
    // Descendants may hold its output open: they are killed, and nothing more is waited for.
    const end = (message: string) => {
      killGroup(child);
      child.stdout!.destroy();
      child.stderr!.destroy();
      finish(false, message);
    };
    const timer = setTimeout(() => {
      const last = output.lastLine();
      end(`timed out after ${timeoutMs / 1000} s${last ? `: ${last}` : ''}`);
    }, timeoutMs);
    const onAbort = () => end('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });

    const exitedWith = (code: number | null, killedBy: NodeJS.Signals | null) => {
      const last = output.lastLine();
      if (code === 0) finish(true, last);
      else finish(false, last || (killedBy ? `killed by ${killedBy}` : `exited with code ${code}`));
    };
    child.once('error', (error) => finish(false, `cannot run ${path}: ${error.message}`));
    child.once('exit', (code, killedBy) => {
      // What it left running in its group is killed: it would keep the output open.
      killGroup(child);
      if (done) return;
      // The rest of the output comes before 'close', unless a process that left the group holds it open.
      drain = setTimeout(() => {
        child.stdout!.destroy();
        child.stderr!.destroy();
        exitedWith(code, killedBy);
      }, OUTPUT_DRAIN_MS);
    });
    child.once('close', exitedWith);
  });
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is gone already.
  }
}

/** The last bytes of an output, and its last non-empty line. */
class OutputTail {
  #bytes = Buffer.alloc(0);

  constructor(private readonly limit: number) {}

  readonly add = (chunk: Buffer): void => {
    this.#bytes = Buffer.concat([this.#bytes, chunk]);
    if (this.#bytes.length > this.limit) this.#bytes = this.#bytes.subarray(this.#bytes.length - this.limit);
  };

  lastLine(): string {
    const lines = this.#bytes.toString('utf8').split(/\r?\n/).map((line) => line.trim());
    return lines.filter(Boolean).pop() ?? '';
  }
}

// ---- running them periodically ----

export interface PromiseRunnerInit {
  log: Logger;
  /** Each promise's; default 20 s. */
  timeoutMs?: number;
}

interface Watch {
  folder: string;
  intervalMs: number;
  onResults: (results: PromiseResult[]) => void;
  timer?: NodeJS.Timeout;
}

/** One partition's runs: one at a time, and at most one waiting behind it. */
interface Runs {
  controller: AbortController;
  current?: Promise<PromiseResult[]>;
  queued?: Promise<PromiseResult[]>;
}

export class PromiseRunner {
  readonly #init: PromiseRunnerInit;
  readonly #watches = new Map<number, Watch>();
  readonly #runs = new Map<number, Runs>();

  constructor(init: PromiseRunnerInit) {
    this.#init = init;
  }

  /**
   * Runs the partition's promises every `intervalMs` (the first time `intervalMs` from now: call checkNow for
   * results at once), counted from the end of the previous run; every run's results, checkNow's too, go to
   * `onResults`. Watching a watched partition replaces its watch.
   */
  watch(partition: number, folder: string, intervalMs: number, onResults: (results: PromiseResult[]) => void): void {
    clearTimeout(this.#watches.get(partition)?.timer);
    const watch: Watch = { folder, intervalMs, onResults };
    this.#watches.set(partition, watch);
    this.#schedule(partition, watch);
  }

  /** No more runs for the partition; a running one is killed (its checkNow callers get PromisesStoppedError). */
  unwatch(partition: number): void {
    clearTimeout(this.#watches.get(partition)?.timer);
    this.#watches.delete(partition);
    this.#runs.get(partition)?.controller.abort(new PromisesStoppedError(`the promises of partition ${partition} were stopped`));
    this.#runs.delete(partition);
  }

  stopAll(): void {
    for (const partition of new Set([...this.#watches.keys(), ...this.#runs.keys()])) this.unwatch(partition);
  }

  /**
   * Runs the partition's promises now (in `folder`, else the watched one): after the run in progress if any;
   * callers that come while a run already waits share it.
   */
  checkNow(partition: number, folder?: string): Promise<PromiseResult[]> {
    const where = folder ?? this.#watches.get(partition)?.folder;
    if (where === undefined) return Promise.reject(new NotWatchedError(`partition ${partition} is not watched: say which folder to check`));
    return this.#run(partition, where);
  }

  #run(partition: number, folder: string): Promise<PromiseResult[]> {
    let runs = this.#runs.get(partition);
    if (runs === undefined) {
      runs = { controller: new AbortController() };
      this.#runs.set(partition, runs);
    }
    if (runs.queued) return runs.queued;
    if (!runs.current) return this.#begin(partition, runs, folder);
    const own = runs;
    const queued = runs.current.catch(() => undefined).then(() => {
      own.queued = undefined;
      return this.#begin(partition, own, folder);
    });
    runs.queued = queued;
    return queued;
  }

  #begin(partition: number, runs: Runs, folder: string): Promise<PromiseResult[]> {
    const run = runPromises(folder, { timeoutMs: this.#init.timeoutMs, signal: runs.controller.signal });
    runs.current = run;
    void run.then((results) => this.#deliver(partition, results), (error: Error) => this.#failed(partition, runs, error))
      .finally(() => {
        if (runs.current === run) runs.current = undefined;
      });
    return run;
  }

  #deliver(partition: number, results: PromiseResult[]): void {
    const watch = this.#watches.get(partition);
    if (watch === undefined) return;
    this.#schedule(partition, watch);
    try {
      watch.onResults(results);
    } catch (error) {
      this.#init.log.error(`partition ${partition}: handling promise results: ${(error as Error).message}`);
    }
  }

  #failed(partition: number, runs: Runs, error: Error): void {
    if (runs.controller.signal.aborted) return; // unwatched
    this.#init.log.error(`partition ${partition}: running the promises: ${error.message}`);
    const watch = this.#watches.get(partition);
    if (watch) this.#schedule(partition, watch);
  }

  /** The next periodic run, `intervalMs` from now (replacing one planned). */
  #schedule(partition: number, watch: Watch): void {
    clearTimeout(watch.timer);
    watch.timer = setTimeout(() => {
      watch.timer = undefined;
      // Errors are logged by #failed; results go to onResults through #deliver.
      this.#run(partition, watch.folder).catch(() => undefined);
    }, watch.intervalMs).unref();
  }
}
