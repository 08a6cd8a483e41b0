// The process of node/launcher.ts: it spawns the partitions' programs for the node, each in a process group
// of its own with its output appended to its log, and tells the node of every exit. It loads nothing but Node's
// own modules, so that it stays small and its forks cheap.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { LauncherReply, LauncherRequest } from './launcher.js';

const send = (reply: LauncherReply) => process.send?.(reply);

/** Groups started whose record the node has not confirmed: if the node dies now, nothing would ever end them. */
const unrecorded = new Set<number>();

function launch(request: Extract<LauncherRequest, { op: 'launch' }>): void {
  const { id, path, cwd, env, log } = request;
  let pid: number | undefined;
  try {
    const fd = openSync(log, 'a');
    try {
      const child = spawn(path, [], { cwd, env, detached: true, stdio: ['ignore', fd, fd] });
      pid = child.pid;
      child.on('error', (error) => {
        if (pid === undefined) send({ id, error: error.message });
      });
      if (pid !== undefined) {
        const started = pid;
        child.once('exit', (code, signal) => send({ exit: started, code, signal }));
      }
    } finally {
      closeSync(fd); // the program has its own copy
    }
  } catch (error) {
    send({ id, error: (error as Error).message });
    return;
  }
  if (pid === undefined) return; // the 'error' event answers
  unrecorded.add(pid);
  send({ id, pid });
}

process.on('message', (request: LauncherRequest) => {
  if (request.op === 'launch') launch(request);
  else unrecorded.delete(request.pid);
});

// The node is gone (stopped, or killed): what it recorded, its next run reaps; the rest is ended here.
process.on('disconnect', () => {
  for (const pgid of unrecorded) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  process.exit(0);
});
