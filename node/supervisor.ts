// The programs of partitions (docs/instances.md, design.md §7): every file in a partition's etc/service/ is
// a service, restarted with back-off whenever it exits; every file in etc/run/ is started once. Each runs in
// a process group of its own (detached), with its output appended to .slapmesh/log/<name>.log, and its group
// is recorded in node.db right after spawn, so that a node starting after a crash (SIGKILL leaves services
// running) can end the groups of its previous run (reap) before it starts them again. Programs are spawned by
// a small helper process (node/launcher.ts), not by the node's.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TypedEventEmitter } from '@libp2p/interface';
import { KeyedQueue } from './keyed-queue.js';
import { ProgramLauncher } from './launcher.js';
import type { Logger } from './log.js';
import type { NodeStore, StoredService } from './store.js';

export interface ServiceStart {
  partition: number;
  name: string;
  /** Also the process group's id. */
  pid: number;
}

export interface ServiceExit {
  partition: number;
  name: string;
  /** Undefined when the program could not be spawned at all. */
  pid?: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why it could not be spawned. */
  error?: string;
}

export interface SupervisorEvents {
  'service:start': CustomEvent<ServiceStart>;
  /** Every exit of a program, and every failure to spawn one. */
  'service:exit': CustomEvent<ServiceExit>;
}

export interface Backoff {
  /** The first restart waits this long; each next one twice as long as the one before… */
  initialMs: number;
  /** …up to this. */
  maxMs: number;
  /** A program that ran this long before exiting starts again from `initialMs`. Default 30 s. */
  resetAfterMs?: number;
}

export interface SupervisorInit {
  store: NodeStore;
  log: Logger;
  backoff?: Backoff;
  /** How long a process group has between SIGTERM and SIGKILL. Default 2 s. */
  graceMs?: number;
  /** What spawns the programs (default: a launcher of its own). */
  launcher?: ProgramLauncher;
}

export const DEFAULT_BACKOFF: Required<Backoff> = { initialMs: 500, maxMs: 30_000, resetAfterMs: 30_000 };
export const DEFAULT_GRACE_MS = 2_000;
/** A partition's folders of programs, with how each kind is run. */
export const SERVICE_FOLDER = join('etc', 'service');
export const RUN_FOLDER = join('etc', 'run');
/** Where program output goes, in the partition's folder. */
export const LOG_FOLDER = join('.slapmesh', 'log');
/** After SIGKILL, how long a group may take to go before it is reported stuck (uninterruptible sleep). */
const KILL_WAIT_MS = 5_000;
/** Polling a group that is not our child: there is no event for it. Doubling from the first to the last. */
const POLL_FIRST_MS = 5;
const POLL_MAX_MS = 100;
/**
 * How far the start time /proc gives may be from the one recorded for it: /proc's boot time has whole seconds,
 * the record is taken just after spawn, and the wall clock may have been adjusted since. A pgid reused within
 * this time of the recorded start is practically impossible.
 */
const START_TOLERANCE_MS = 5_000;
/** USER_HZ, the unit of /proc/<pid>/stat times: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

type Kind = 'service' | 'run';

interface Found {
  name: string;
  kind: Kind;
  path: string;
  fingerprint: string;
}

interface Program extends Found {
  partition: number;
  folder: string;
  env: NodeJS.ProcessEnv;
  /** The recorded group (the leader's pid) until it is gone and its record deleted. */
  pgid?: number;
  /** While the leader runs. */
  running: boolean;
  /** When the leader last started (ms epoch), for the back-off's reset. */
  startedAt: number;
  delayMs: number;
  timer?: NodeJS.Timeout;
  /** Never started again once set. */
  stopped: boolean;
  /** Settles once the current leader's exit is handled. */
  exited?: Promise<void>;
  /** Settles once a launch in progress has started the program, or failed. */
  launching?: Promise<void>;
}

export class Supervisor extends TypedEventEmitter<SupervisorEvents> {
  readonly #init: SupervisorInit;
  readonly #backoff: Required<Backoff>;
  readonly #graceMs: number;
  readonly #partitions = new Map<number, Map<string, Program>>();
  /** start() and stop() of one partition run one after the other. */
  readonly #queue = new KeyedQueue<number>();
  readonly #launcher: ProgramLauncher;

  constructor(init: SupervisorInit) {
    super();
    this.#init = init;
    this.#backoff = { ...DEFAULT_BACKOFF, ...init.backoff };
    this.#graceMs = init.graceMs ?? DEFAULT_GRACE_MS;
    this.#launcher = init.launcher ?? new ProgramLauncher();
  }

  /**
   * Ends the process groups recorded in node.db that this supervisor does not run (a killed node's): SIGTERM,
   * SIGKILL after the grace time, and forgets them. A group whose leader started at another time than recorded
   * is someone else's (its pgid was reused) and is left alone. Returns how many groups were still alive.
   */
  async reap(): Promise<number> {
    const records = this.#init.store.listServices().filter((s) => !this.#partitions.get(s.partition)?.has(s.name));
    const alive = await Promise.all(records.map((record) => this.#reapOne(record)));
    return alive.filter(Boolean).length;
  }

  /** Gets ready to start programs: the launcher's spawn happens now, not in the first deployment. */
  prepare(): void {
    this.#launcher.prepare();
  }

  /**
   * Starts the partition's programs (etc/service/ supervised, etc/run/ once), each with `env` over the node's
   * environment. Again on a running partition: unchanged programs keep running (a run program that finished
   * is not run again), changed ones are restarted, removed ones stopped.
   */
  start(partition: number, folder: string, env: Record<string, string> = {}): Promise<void> {
    return this.#queue.run(partition, async () => {
      const environment = { ...process.env, ...env };
      // Synchronous: a few small files, read on the way to a deployment's readiness, where in a burst every
      // await is a turn of a crowded event loop.
      const found = scanPrograms(folder, environment, this.#init.log);
      if (found.size > 0) mkdirSync(join(folder, LOG_FOLDER), { recursive: true });
      const programs = this.#partitions.get(partition) ?? new Map<string, Program>();
      this.#partitions.set(partition, programs);
      const outdated = [...programs.values()].filter((p) => found.get(p.name)?.fingerprint !== p.fingerprint);
      await Promise.all(outdated.map((p) => this.#stopProgram(p)));
      for (const p of outdated) programs.delete(p.name);
      const launches: Promise<void>[] = [];
      for (const program of found.values()) {
        if (programs.has(program.name)) continue;
        const started: Program = { ...program, partition, folder, env: environment, running: false, startedAt: 0, delayMs: this.#backoff.initialMs, stopped: false };
        programs.set(program.name, started);
        launches.push(this.#launch(started));
      }
      await Promise.all(launches);
      if (outdated.length > 0) this.#init.log.debug(`partition ${partition}: stopped ${outdated.map((p) => p.name).join(', ')} (changed or removed)`);
    });
  }

  /** Stops the partition's programs (their whole groups) and waits until they are gone; none is restarted. */
  stop(partition: number): Promise<void> {
    return this.#queue.run(partition, async () => {
      const programs = this.#partitions.get(partition);
      this.#partitions.delete(partition);
      await Promise.all([...programs?.values() ?? []].map((p) => this.#stopProgram(p)));
      // Groups a previous run left that reap() did not end: stopping the partition ends them too.
      await Promise.all(this.#init.store.listServices(partition).map((record) => this.#reapOne(record)));
    });
  }

  /** Stops every partition (a node stopping gracefully), those with a start() in progress too. */
  async stopAll(): Promise<void> {
    const partitions = new Set([...this.#partitions.keys(), ...this.#queue.keys()]);
    await Promise.all([...partitions].map((partition) => this.stop(partition)));
    this.#launcher.stop();
  }

  /** The names of the partition's programs that run now, sorted. */
  running(partition: number): string[] {
    return [...this.#partitions.get(partition)?.values() ?? []].filter((p) => p.running).map((p) => p.name).sort();
  }


  /** Starts the program; settles once it runs or its failure is handled (a retry planned). */
  #launch(p: Program): Promise<void> {
    if (p.stopped) return Promise.resolve();
    const launching = this.#spawn(p).finally(() => {
      if (p.launching === launching) p.launching = undefined;
    });
    p.launching = launching;
    return launching;
  }

  async #spawn(p: Program): Promise<void> {
    let ended!: (outcome: [number | null, NodeJS.Signals | null]) => void;
    const exit = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => (ended = resolve));
    let pid: number;
    try {
      const log = join(p.folder, LOG_FOLDER, `${p.name}.log`);
      pid = await this.#launcher.launch({ path: p.path, cwd: p.folder, env: p.env, log }, (code, signal) => ended([code, signal]));
    } catch (error) {
      this.#failed(p, error as Error);
      return;
    }
    // Recorded before anything else: if this node is killed from here on, the next one finds the group (and
    // until the launcher hears so, it ends the group itself if this node dies).
    p.startedAt = Date.now();
    this.#init.store.putService({ partition: p.partition, name: p.name, pgid: pid, startedAt: p.startedAt });
    this.#launcher.recorded(pid);
    p.pgid = pid;
    p.running = true;
    p.exited = exit.then(([code, signal]) => this.#exited(p, pid, code, signal));
    this.#init.log.debug(`${label(p)} started (pid ${pid})`);
    this.safeDispatchEvent('service:start', { detail: { partition: p.partition, name: p.name, pid } });
  }

  /** `code` and `signal` both null: the launcher died, and with it the means to know when the program ends. */
  async #exited(p: Program, pid: number, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    p.running = false;
    this.safeDispatchEvent('service:exit', { detail: { partition: p.partition, name: p.name, pid, code, signal } });
    if (p.stopped) return; // stop() ends the group and forgets it
    const how = signal ? `killed by ${signal}` : code === null ? 'was lost with the program launcher' : `exited with ${code}`;
    if (p.kind === 'run') {
      if (code === 0) this.#init.log.debug(`${label(p)} ${how}`);
      else this.#init.log(`${label(p)} ${how}`);
      // What it left running in its group stays until stop(); a run program may start a daemon and exit.
      if (!groupAlive(pid)) this.#forget(p, pid);
      return;
    }
    // Whatever a crashed service left in its group would hold its ports against the next start.
    await this.#endGroup(pid);
    this.#forget(p, pid);
    if (p.stopped) return;
    const delay = this.#nextDelay(p);
    this.#init.log(`${label(p)} ${how}; restarting in ${delay} ms`);
    this.#restartLater(p, delay);
  }

  /** A program that could not be spawned is retried like a crash (the file may not be complete yet). */
  #failed(p: Program, error: Error): void {
    p.running = false;
    p.startedAt = Date.now();
    this.safeDispatchEvent('service:exit', { detail: { partition: p.partition, name: p.name, code: null, signal: null, error: error.message } });
    if (p.stopped) return;
    const delay = this.#nextDelay(p);
    this.#init.log.error(`${label(p)}: cannot start ${p.path}: ${error.message}; trying again in ${delay} ms`);
    this.#restartLater(p, delay);
  }

  #nextDelay(p: Program): number {
    if (Date.now() - p.startedAt >= this.#backoff.resetAfterMs) p.delayMs = this.#backoff.initialMs;
    const delay = p.delayMs;
    p.delayMs = Math.min(delay * 2, this.#backoff.maxMs);
    return delay;
  }

  #restartLater(p: Program, delay: number): void {
    p.timer = setTimeout(() => {
      p.timer = undefined;
      void this.#launch(p);
    }, delay);
  }

  async #stopProgram(p: Program): Promise<void> {
    p.stopped = true;
    clearTimeout(p.timer);
    p.timer = undefined;
    await p.launching;
    const pgid = p.pgid;
    if (pgid === undefined) return;
    // A run program's leader may be long gone: what is left under its pgid must still be its group.
    if (p.running || isRecordedGroup(pgid, p.startedAt)) await this.#endGroup(pgid);
    await p.exited;
    this.#forget(p, pgid);
    this.#init.log.debug(`${label(p)} stopped`);
  }

  #forget(p: Program, pgid: number): void {
    if (p.pgid !== pgid) return;
    p.pgid = undefined;
    this.#init.store.deleteService(p.partition, p.name);
  }

  /** Whether the group was alive. */
  async #endGroup(pgid: number): Promise<boolean> {
    const result = await terminateGroup(pgid, this.#graceMs);
    if (result === 'stuck') this.#init.log.error(`process group ${pgid} is still there ${KILL_WAIT_MS} ms after SIGKILL`);
    return result !== 'none';
  }

  async #reapOne(record: StoredService): Promise<boolean> {
    const what = `partition ${record.partition}: ${record.name} (process group ${record.pgid})`;
    let alive = false;
    if (isRecordedGroup(record.pgid, record.startedAt)) {
      alive = await this.#endGroup(record.pgid);
      if (alive) this.#init.log(`${what} was left running by a previous run: stopped`);
    } else if (groupAlive(record.pgid)) {
      this.#init.log(`${what}: the group now there started at another time, it is not ours: left alone`);
    }
    this.#init.store.deleteService(record.partition, record.name);
    return alive;
  }
}

function label(p: Program): string {
  return `partition ${p.partition}: ${p.kind === 'run' ? 'run ' : ''}${p.name}`;
}

/**
 * The programs of a partition by name: the files of etc/service/ and etc/run/ (hidden ones left out; a name
 * in both is the service's). The fingerprint changes with the file's content, its execute bits or the
 * environment: any of them restarts the program.
 */
function scanPrograms(folder: string, env: NodeJS.ProcessEnv, log: Logger): Map<string, Found> {
  const found = new Map<string, Found>();
  for (const [kind, sub] of [['service', SERVICE_FOLDER], ['run', RUN_FOLDER]] as const) {
    const dir = join(folder, sub);
    for (const name of listFolder(dir).sort()) {
      if (name.startsWith('.')) continue;
      const path = join(dir, name);
      const info = statOrNothing(path); // a dangling link is no program
      if (!info?.isFile()) continue;
      if (found.has(name)) {
        log(`${path} is not started: ${join(SERVICE_FOLDER, name)} has the same name`);
        continue;
      }
      let content: Buffer;
      try {
        content = readFileSync(path);
      } catch {
        content = Buffer.from(`unreadable ${info.size} ${info.mtimeMs}`);
      }
      const fingerprint = createHash('sha256').update(`${kind}\0${path}\0${info.mode & 0o111}\0${JSON.stringify(env)}\0`).update(content).digest('hex');
      found.set(name, { name, kind, path, fingerprint });
    }
  }
  return found;
}

function statOrNothing(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function listFolder(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw error;
  }
}

// ---- process groups ----

/** SIGTERM, SIGKILL after `graceMs`: 'none' if the group was not there, 'stuck' if it outlived SIGKILL. */
export async function terminateGroup(pgid: number, graceMs: number): Promise<'none' | 'ended' | 'stuck'> {
  if (!signalGroup(pgid, 'SIGTERM')) return 'none';
  if (await groupGone(pgid, graceMs)) return 'ended';
  signalGroup(pgid, 'SIGKILL');
  return (await groupGone(pgid, KILL_WAIT_MS)) ? 'ended' : 'stuck';
}

/** False when there is no such group, or it is not ours to signal (another user's: EPERM). */
function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH' || code === 'EPERM') return false;
    throw error;
  }
}

/** Polls (nothing tells us when processes that are not our children end), more slowly as time passes. */
async function groupGone(pgid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  for (let wait = POLL_FIRST_MS; groupAlive(pgid); wait = Math.min(wait * 2, POLL_MAX_MS)) {
    if (Date.now() >= deadline) return false;
    await sleep(wait);
  }
  return true;
}

/**
 * Whether the group has a member that has not exited. Exited members linger as zombies until their parent
 * (often init, after the leader died) collects them, which may take seconds: they count as gone.
 */
export function groupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  // Most often the leader still runs: no need to look through every process.
  const leader = procStat(pgid);
  if (leader?.pgrp === pgid && isRunning(leader)) return true;
  const members = groupMembers(pgid);
  return members === undefined || members.some(isRunning);
}

/** Not a zombie (Z) nor dead (X). */
function isRunning(stat: ProcStat): boolean {
  return stat.state !== 'Z' && stat.state !== 'X';
}

interface ProcStat {
  state: string;
  pgrp: number;
  /** Clock ticks after boot. */
  startTicks: number;
}

/** The processes of a group with their state, from /proc; undefined where there is no /proc. */
function groupMembers(pgid: number): ProcStat[] | undefined {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^[0-9]+$/.test(name));
  } catch {
    return undefined;
  }
  return pids.map((pid) => procStat(Number(pid))).filter((s): s is ProcStat => s?.pgrp === pgid);
}

/** Fields of /proc/<pid>/stat (state is field 3, pgrp 5, starttime 22); undefined if it cannot be read. */
function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const [state, pgrp, startTicks] = [fields[0], Number(fields[2]), Number(fields[19])];
  if (state === undefined || !Number.isInteger(pgrp) || !Number.isInteger(startTicks)) return undefined;
  return { state, pgrp, startTicks };
}

/** The wall-clock time (ms epoch) process `pid` started at, from /proc; undefined without /proc or process. */
export function processStartTime(pid: number): number | undefined {
  const stat = procStat(pid);
  if (stat === undefined) return undefined;
  let bootSeconds: number;
  try {
    bootSeconds = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(bootSeconds)) return undefined;
  return bootSeconds * 1000 + (stat.startTicks * 1000) / CLOCK_TICKS_PER_SECOND;
}

/**
 * Whether the live group `pgid` is still the one recorded as started at `startedAt` (ms epoch): its leader's
 * start time, from /proc, must be that time (within a tolerance), else the pgid was reused by another
 * program. With the leader gone but members left, it is ours: the kernel never gives a pid that is still some
 * group's id to a new process. Without /proc (not Linux) there is nothing to compare: taken as ours.
 */
export function isRecordedGroup(pgid: number, startedAt: number): boolean {
  if (!groupAlive(pgid)) return false;
  const leaderStart = processStartTime(pgid);
  if (leaderStart === undefined) return true;
  return Math.abs(leaderStart - startedAt) <= START_TOLERANCE_MS;
}
