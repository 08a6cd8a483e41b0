// The node's data directory: where it is, its permissions, and the lock that keeps one node per directory.
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, linkSync, mkdirSync, openSync, readFileSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

export const LOCK_FILE = 'node.lock';
/** An SQLite file used only for its OS lock, which dies with its process (see `takeOverStaleLock`). */
export const LOCK_GUARD_FILE = 'node.lock.guard';
/** How long a starting node waits for another one that is taking over a stale lock (a few file operations). */
const GUARD_TIMEOUT_MS = 10_000;
const SQLITE_BUSY = 5;

/** `$SLAPMESH_HOME`, else `~/.slapmesh`; absolute, so that a later chdir cannot move it. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const home = env['SLAPMESH_HOME'];
  if (home) return resolve(home);
  return join(env['HOME'] || homedir(), '.slapmesh');
}

export class DataDirError extends Error {
  override name = 'DataDirError';
}

/**
 * Creates the directory (parents with the default mode, the directory itself 0700) or tightens an existing
 * one of ours to 0700: it holds the node's private key and control socket. cache/, software/ and instances/
 * are created by their owners when first needed.
 */
export function prepareDataDir(dir: string): void {
  mkdirSync(dirname(resolve(dir)), { recursive: true });
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const stat = statSync(dir);
  if (!stat.isDirectory()) throw new DataDirError(`data directory ${dir} is not a directory`);
  // The umask may have cleared bits of a new one; someone else's we leave alone (chmod would fail anyway).
  const ours = process.getuid === undefined || stat.uid === process.getuid();
  if (ours && (stat.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
}

export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError';
  /** The holder, when known (undefined if the lock is being taken over by a node that is starting). */
  readonly pid?: number;

  constructor(dir: string, pid?: number) {
    super(pid === undefined
      ? `another slapmesh node is starting in ${dir}`
      : `another slapmesh node (pid ${pid}) uses ${dir}`);
    if (pid !== undefined) this.pid = pid;
  }
}

export interface DataDirLock {
  release(): void;
}

/** What a lock file says: the holder's pid, and a token telling this process's locks from a dead namesake's. */
interface Holder {
  readonly pid: number;
  readonly token: string;
}

/** Tokens of the locks this process holds: a lock naming our own pid but none of these is from an earlier run. */
const heldTokens = new Set<string>();

/**
 * One node per data directory. The lock file `node.lock` holds `<pid>\n<token>\n`; it appears whole, by link()
 * of a fully written temporary file (a file opened with 'wx' is visible empty until written, and would look
 * stale to a second node). A lock whose holder is gone (dead pid, garbage content) is taken over.
 */
export function lockDataDir(dir: string): DataDirLock {
  const lockPath = join(dir, LOCK_FILE);
  const me: Holder = { pid: process.pid, token: randomBytes(12).toString('hex') };
  const temp = join(dir, `${LOCK_FILE}.${me.pid}.${me.token}.tmp`);
  try {
    writeNewFile(temp, `${me.pid}\n${me.token}\n`);
    // Two rounds: create, or remove a stale lock and create. Losing the second race means someone else won.
    for (let round = 0; ; round++) {
      try {
        linkSync(temp, lockPath);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = readHolder(lockPath);
      if (holder !== undefined && isAlive(holder)) throw new DataDirLockedError(dir, holder.pid);
      if (round > 0) throw new DataDirLockedError(dir);
      takeOverStaleLock(dir, lockPath);
    }
  } finally {
    rmSync(temp, { force: true });
  }
  heldTokens.add(me.token);
  let released = false;
  return {
    release(): void {
      if (released) return;
      released = true;
      heldTokens.delete(me.token);
      // Only our own lock: a live lock is never taken over, so nobody can replace it between read and unlink.
      const holder = readHolder(lockPath);
      if (holder?.pid === me.pid && holder.token === me.token) unlinkSync(lockPath);
    },
  };
}

/**
 * Removes a stale lock file so that the caller can link its own. Reading then unlinking is not atomic: two
 * nodes could both read the stale lock, and the slower one would then unlink the lock the faster one had just
 * created. So removal happens under an exclusive SQLite transaction, an OS lock released even if we crash;
 * under it the lock file can change only by a removal under the same guard (its dead holder will not release
 * it, and nobody creates a file that exists). Creating the new lock stays a plain link() race: one winner.
 */
function takeOverStaleLock(dir: string, lockPath: string): void {
  const guard = new DatabaseSync(join(dir, LOCK_GUARD_FILE), { timeout: GUARD_TIMEOUT_MS });
  try {
    guard.exec('BEGIN EXCLUSIVE');
  } catch (error) {
    guard.close();
    // SQLITE_BUSY: another node held the guard past the timeout; it is taking the directory.
    if ((error as { errcode?: number }).errcode === SQLITE_BUSY) throw new DataDirLockedError(dir);
    throw error;
  }
  try {
    let exists = true;
    const holder = readHolder(lockPath, () => { exists = false; });
    if (exists && (holder === undefined || !isAlive(holder))) unlinkSync(lockPath);
  } finally {
    guard.exec('ROLLBACK');
    guard.close();
  }
}

/** The lock's holder; undefined for garbage or a vanished file (then `onMissing` is called). */
function readHolder(lockPath: string, onMissing?: () => void): Holder | undefined {
  let text: string;
  try {
    text = readFileSync(lockPath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    onMissing?.();
    return undefined;
  }
  const match = /^([1-9][0-9]{0,9})(?:\n([0-9a-f]*))?\n?$/.exec(text);
  if (!match?.[1]) return undefined;
  const pid = Number(match[1]);
  return Number.isSafeInteger(pid) ? { pid, token: match[2] ?? '' } : undefined;
}

function isAlive(holder: Holder): boolean {
  // Our own pid: alive only if it is one of our locks, not one left by an earlier process with the same pid
  // (common in containers, where the node is often pid 1 after every restart).
  if (holder.pid === process.pid) return heldTokens.has(holder.token);
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but is someone else's.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function writeNewFile(path: string, content: string): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
}
