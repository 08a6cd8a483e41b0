// Builds run in a clean environment: nothing from the user's shell, only the system's build
// tools on PATH, no user site directories; output goes to the part's log.
import { spawn } from 'node:child_process';
import { RecipeError, type PartLog, type RunOptions } from './recipe.js';

/** The folders build tools come from: the system's, never the user's (~/.local, pyenv, …). */
export const BUILD_PATH = '/usr/bin:/bin:/usr/sbin:/sbin';

export function cleanEnvironment(home: string, tmp: string): Record<string, string> {
  return {
    PATH: BUILD_PATH,
    HOME: home,
    TMPDIR: tmp,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    SHELL: '/bin/sh',
    PYTHONNOUSERSITE: '1',
    SOURCE_DATE_EPOCH: '0',
  };
}

/** How many output lines a failure message quotes. */
const TAIL_LINES = 15;

/** Runs `command` with /bin/sh in its own process group; rejects with the tail of its output. */
export function runCommand(command: string, env: Record<string, string>, log: PartLog, signal: AbortSignal, options: RunOptions = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new RecipeError('cancelled'));
    const child = spawn('/bin/sh', ['-c', command], {
      cwd: options.cwd, env: { ...env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    });
    const tail: string[] = [];
    const onLine = (line: string) => {
      log(line);
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
    };
    for (const stream of [child.stdout, child.stderr]) {
      let pending = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const lines = (pending + chunk).split('\n');
        pending = lines.pop()!;
        lines.forEach(onLine);
      });
      stream.on('end', () => pending && onLine(pending));
    }
    const abort = () => {
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        // already gone
      }
    };
    signal.addEventListener('abort', abort, { once: true });
    child.on('error', (error) => {
      signal.removeEventListener('abort', abort);
      reject(new RecipeError(`cannot run ${command}: ${error.message}`));
    });
    child.on('close', (code, killedBy) => {
      signal.removeEventListener('abort', abort);
      if (code === 0) return resolve();
      const why = killedBy ? `killed by ${killedBy}` : `exit status ${code}`;
      reject(new RecipeError(`command failed (${why}): ${command}${tail.length ? `\n${tail.join('\n')}` : ''}`));
    });
  });
}
