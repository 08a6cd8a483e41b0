// Spawning the partitions' programs from a small helper process (launcher-process.ts) rather than from the
// node's: on Linux, Node forks to spawn, and a fork costs in proportion to the memory of the process that
// forks, while its event loop stands still (measured with 20 spawns of /bin/true: 4 ms each from a 50 MB
// process, 56 ms from 550 MB). A node hosting many instances is a large process; the helper stays small, and
// its forks hold up nothing of the node's.
//
// The helper starts at the first launch and stops with stop(). Each program's group is ended by the helper if
// the node dies before confirming that it recorded the group (recorded()), so no group escapes both the
// helper and the node's next reap. If the helper itself dies, the programs it started live on, but their exits
// can no longer be told: each one's exit listener is called with no code and no signal.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export type LauncherRequest =
  | { op: 'launch'; id: number; path: string; cwd: string; env: NodeJS.ProcessEnv; log: string }
  | { op: 'recorded'; pid: number };

export type LauncherReply =
  | { id: number; pid: number }
  | { id: number; error: string }
  | { exit: number; code: number | null; signal: NodeJS.Signals | null };

/** Both null: the helper died, and with it the means to know when the program ends. */
export type ExitListener = (code: number | null, signal: NodeJS.Signals | null) => void;

/** The program could not be spawned (the helper's message says why: ENOENT, EACCES…). */
export class LaunchError extends Error {
  override name = 'LaunchError';
}

/** The helper process stopped before answering. */
export class LauncherLostError extends Error {
  override name = 'LauncherLostError';
}

export interface Launch {
  /** The program's executable, run with no arguments. */
  path: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** The file its output is appended to. */
  log: string;
}

export class ProgramLauncher {
  private helper: ChildProcess | undefined;
  private nextId = 1;
  private readonly calls = new Map<number, { resolve: (pid: number) => void; reject: (error: Error) => void; onExit: ExitListener }>();
  private readonly exits = new Map<number, ExitListener>();

  /** The helper's pid, while it runs. */
  get pid(): number | undefined {
    return this.helper?.pid;
  }

  /** Spawns the program in a new process group; resolves with its pid (= pgid). `onExit` hears of its end. */
  launch(launch: Launch, onExit: ExitListener): Promise<number> {
    const helper = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.calls.size === 0) helper.channel?.ref(); // an answer is awaited: the process must not exit meanwhile
      this.calls.set(id, { resolve, reject, onExit });
      helper.send({ op: 'launch', id, ...launch } satisfies LauncherRequest);
    });
  }

  /** Starts the helper now rather than at the first launch (its spawn holds up this event loop a moment). */
  prepare(): void {
    this.start();
  }

  /** The node recorded the group of `pid`: the helper leaves it alone if the node dies. */
  recorded(pid: number): void {
    this.helper?.send({ op: 'recorded', pid } satisfies LauncherRequest);
  }

  /** Ends the helper (the programs it started live on: stop them first). */
  stop(): void {
    const helper = this.helper;
    this.helper = undefined;
    if (helper?.connected) helper.disconnect();
    this.failAll(helper, new LauncherLostError('the program launcher was stopped'));
  }

  private start(): ChildProcess {
    if (this.helper) return this.helper;
    const helper = spawn(process.execPath, [fileURLToPath(new URL('./launcher-process.js', import.meta.url))], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    helper.unref();
    helper.channel?.unref(); // a node with programs running may still stop
    helper.on('message', (reply: LauncherReply) => this.answer(reply));
    helper.on('error', (error) => {
      helper.kill('SIGKILL'); // taken for lost: it must not live on unheard
      this.failAll(helper, new LauncherLostError(`the program launcher failed: ${error.message}`));
    });
    helper.once('exit', (code, signal) => this.failAll(helper, new LauncherLostError(`the program launcher ended (${signal ?? `exit status ${code}`})`)));
    this.helper = helper;
    return helper;
  }

  private answer(reply: LauncherReply): void {
    if ('exit' in reply) {
      const onExit = this.exits.get(reply.exit);
      this.exits.delete(reply.exit);
      onExit?.(reply.code, reply.signal);
      return;
    }
    const call = this.calls.get(reply.id);
    this.calls.delete(reply.id);
    if (this.calls.size === 0) this.helper?.channel?.unref();
    if (!call) return;
    if ('error' in reply) return call.reject(new LaunchError(reply.error));
    this.exits.set(reply.pid, call.onExit);
    call.resolve(reply.pid);
  }

  /** The helper is gone: calls waiting fail, and the programs it started are told as lost. */
  private failAll(helper: ChildProcess | undefined, error: Error): void {
    if (helper === undefined) return;
    if (this.helper === helper) this.helper = undefined;
    for (const call of this.calls.values()) call.reject(error);
    this.calls.clear();
    const orphans = [...this.exits.values()];
    this.exits.clear();
    for (const onExit of orphans) onExit(null, null);
  }
}
