// The buildout runners of this process: as many long-lived child processes as cores, each running one
// instance profile at a time (cli/buildout-runner.ts), fed first come first served. A child rather than
// this process, because a profile that hangs or crashes must not take the node with it and can be killed,
// and because the recipes ask the node's partition socket synchronously — served by this event loop, they
// would deadlock if they ran on it. Long-lived, because starting Node and loading the engine is most of
// what a deployment costs. Every node in the process shares them: the cores are the machine's.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { RunnerReply, RunnerRequest } from '../cli/buildout-runner.js';
import type { PrimedAnswer } from '../engine/recipes/slap-client.js';
import { Limiter } from './limiter.js';

const RUNNER = fileURLToPath(new URL('../cli/buildout-runner.js', import.meta.url));

/**
 * A runner is replaced after this many jobs, or once its memory passes RUNNER_MAX_RSS_BYTES, so that what
 * jobs leak (memory, handles) does not pile up. High, because a replacement costs a Node start and the
 * engine's loading in the middle of a burst: a runner grew from 88 to 105 MB over its first 240 jobs
 * (bench:placement, 5 nodes, 480 requests).
 */
export const JOBS_PER_RUNNER = 1_000;
export const RUNNER_MAX_RSS_BYTES = 512 * 2 ** 20;
/** How long a runner may take to start. */
export const RUNNER_START_TIMEOUT_MS = 30_000;
/** At close(), how long a runner has to stop its job and leave before it is killed. */
export const RUNNER_CLOSE_GRACE_MS = 10_000;

export interface BuildoutJob {
  configFile: string;
  /** The buildout's folder: the job's working directory. */
  cwd: string;
  /** Where its output is appended. */
  logFile: string;
  signal: AbortSignal;
  timeoutMs: number;
  /** After a timeout or an abort, how long the profile has to clean up before the runner is killed. */
  killGraceMs: number;
  /** The node's answers known before the job (slap-client.ts primeSlapAnswers). */
  primed?: PrimedAnswer[];
}

export interface BuildoutOutcome {
  reason: 'ok' | 'failed' | 'timeout' | 'aborted';
  /** What went wrong outside the profile's own output (the runner died), if anything. */
  message?: string;
}

export interface BuildoutRunnersOptions {
  /** Runners at most, so jobs at once; default one per core. */
  size?: number;
  /** Default JOBS_PER_RUNNER. */
  jobsPerRunner?: number;
  /** Default RUNNER_MAX_RSS_BYTES. */
  maxRssBytes?: number;
}

export class BuildoutRunners {
  private readonly size: number;
  private readonly limiter: Limiter;
  private readonly limits: RunnerLimits;
  private readonly idle: Runner[] = [];
  /** Every runner not exited yet, idle, busy or retired. */
  private readonly live = new Set<Runner>();
  /** Runners running a job. */
  private busy = 0;

  constructor(options: BuildoutRunnersOptions = {}) {
    this.size = options.size ?? availableParallelism();
    this.limiter = new Limiter(this.size);
    this.limits = { jobs: options.jobsPerRunner ?? JOBS_PER_RUNNER, rssBytes: options.maxRssBytes ?? RUNNER_MAX_RSS_BYTES };
  }

  /**
   * Starts the runners not started yet (≈ 70–100 MB each, one per core by default), so that the first jobs
   * neither wait for them (a runner's start, ≈ 0.25 CPU-s) nor stall this event loop with their spawns: the
   * pool is sized for the bursts of deployments it exists for.
   */
  prepare(): void {
    while (this.busy + this.idle.length < this.size) this.idle.push(this.spawn());
  }

  run(job: BuildoutJob): Promise<BuildoutOutcome> {
    return this.limiter.run(async () => {
      if (job.signal.aborted) return { reason: 'aborted' };
      let runner = this.idle.pop();
      if (!runner?.usable) runner = this.spawn();
      this.busy++;
      try {
        return await runner.run(job);
      } finally {
        this.busy--;
        if (runner.usable) this.idle.push(runner);
        else runner.retire();
      }
    });
  }

  /**
   * Lets every runner go and waits until they have left (a job in progress is stopped first:
   * cli/buildout-runner.ts); one still there after `graceMs` is killed. A node's process ends so, so that no
   * runner outlives it: one leaving later still writes (Node's compile cache, a job's files) into folders
   * that may be removed by then.
   */
  async close(graceMs = RUNNER_CLOSE_GRACE_MS): Promise<void> {
    this.idle.length = 0;
    await Promise.all([...this.live].map((runner) => runner.close(graceMs)));
  }

  private spawn(): Runner {
    const runner = new Runner(this.limits);
    this.live.add(runner);
    void runner.gone.then(() => this.live.delete(runner));
    return runner;
  }
}

let shared: BuildoutRunners | undefined;

/** The runners of this process. */
export function buildoutRunners(): BuildoutRunners {
  return (shared ??= new BuildoutRunners());
}

interface RunnerLimits {
  jobs: number;
  rssBytes: number;
}

/** One runner process. */
class Runner {
  private readonly child: ChildProcess;
  private readonly ready: Promise<void>;
  private jobs = 0;
  /** Its memory after its last job (resident set, bytes). */
  private rss = 0;
  private nextId = 1;
  private exited = false;
  private exitMessage = '';
  /** Resolves once the process has exited. */
  readonly gone: Promise<void>;
  /** The log of the job in progress: where stray output of the runner goes. */
  private logFile: string | undefined;

  constructor(private readonly limits: RunnerLimits) {
    this.child = spawn(process.execPath, [RUNNER], { detached: true, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    // The runners never keep the node's process alive; they leave when it does (cli/buildout-runner.ts).
    this.child.unref();
    this.child.channel?.unref();
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      (stream as unknown as { unref(): void }).unref();
      stream.on('data', (data: Buffer) => {
        if (this.logFile) appendFileSync(this.logFile, data);
      });
    }
    // A failed spawn, or a message that could not be sent: the exit that follows (or none) decides.
    this.child.on('error', (error) => (this.exitMessage ||= `the buildout runner failed: ${error.message}`));
    this.gone = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      this.exited = true;
      this.exitMessage = `the buildout runner exited ${signal ? `on ${signal}` : `with status ${code}`}`;
      resolve();
    }));
    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the buildout runner did not start within ${RUNNER_START_TIMEOUT_MS / 1000} s`)), RUNNER_START_TIMEOUT_MS);
      const onMessage = (reply: RunnerReply) => {
        if (reply.type !== 'ready') return;
        done();
        resolve();
      };
      const onExit = () => {
        done();
        reject(new Error(this.exitMessage));
      };
      const onError = (error: Error) => {
        done();
        reject(new Error(`cannot start the buildout runner: ${error.message}`));
      };
      const done = () => {
        clearTimeout(timer);
        this.child.off('message', onMessage).off('exit', onExit).off('error', onError);
      };
      this.child.on('message', onMessage).once('exit', onExit).once('error', onError);
    });
    // Awaited by run(); a failed start is its outcome there.
    this.ready.catch(() => undefined);
  }

  /** Neither exited nor due to be replaced. */
  get usable(): boolean {
    return !this.exited && this.jobs < this.limits.jobs && this.rss <= this.limits.rssBytes;
  }

  async run(job: BuildoutJob): Promise<BuildoutOutcome> {
    try {
      await this.ready;
    } catch (error) {
      this.kill();
      this.exited = true;
      return { reason: 'failed', message: (error as Error).message };
    }
    this.jobs++;
    const id = this.nextId++;
    this.logFile = job.logFile;
    try {
      return await this.exchange(id, job);
    } finally {
      this.logFile = undefined;
    }
  }

  /** Sends the job and waits for its end: the runner's answer, its exit, or the kill after a timeout or abort. */
  private exchange(id: number, job: BuildoutJob): Promise<BuildoutOutcome> {
    return new Promise((resolve) => {
      let stopped: 'timeout' | 'aborted' | undefined;
      let grace: NodeJS.Timeout | undefined;
      const finish = (outcome: BuildoutOutcome) => {
        clearTimeout(timer);
        clearTimeout(grace);
        job.signal.removeEventListener('abort', onAbort);
        this.child.off('message', onMessage).off('exit', onExit);
        resolve(stopped ? { ...outcome, reason: stopped } : outcome);
      };
      const onMessage = (reply: RunnerReply) => {
        if (reply.type !== 'done' || reply.id !== id) return;
        this.rss = reply.rss;
        finish({ reason: reply.ok ? 'ok' : 'failed' });
      };
      const onExit = () => finish({ reason: 'failed', message: this.exitMessage });
      const stop = (why: 'timeout' | 'aborted', reason: string) => {
        if (stopped) return;
        stopped = why;
        this.send({ type: 'cancel', id, reason });
        // A profile that does not stop takes the runner with it; the next job gets a new one.
        grace = setTimeout(() => this.kill(), job.killGraceMs);
      };
      const timer = setTimeout(() => stop('timeout', `no end within ${job.timeoutMs / 1000} s`), job.timeoutMs);
      const onAbort = () => stop('aborted', String((job.signal.reason as Error | undefined)?.message ?? 'aborted'));
      this.child.on('message', onMessage).once('exit', onExit);
      job.signal.addEventListener('abort', onAbort, { once: true });
      if (this.exited) return onExit();
      this.send({ type: 'run', id, configFile: job.configFile, cwd: job.cwd, logFile: job.logFile, ...(job.primed ? { primed: job.primed } : {}) });
    });
  }

  /** Lets an idle runner go: it leaves when its channel closes. */
  retire(): void {
    if (!this.exited && this.child.connected) this.child.disconnect();
  }

  /** Lets it go, and waits until it has left; after `graceMs`, kills it. */
  async close(graceMs: number): Promise<void> {
    this.child.ref(); // the caller waits for its exit: the process must not end first
    this.retire();
    const timer = setTimeout(() => this.kill(), graceMs);
    await this.gone;
    clearTimeout(timer);
  }

  private send(request: RunnerRequest): void {
    if (this.child.connected) this.child.send(request);
  }

  private kill(): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }
}
