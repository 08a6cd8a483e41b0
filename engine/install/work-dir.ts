// The scratch folder of an install run (downloads when there is no download cache, the builds' TMPDIR): made
// in the system's temporary folder and removed when the run ends. A process killed in the middle of a run (a
// buildout runner SIGKILLed with its node) cannot remove its own, so the folder's name carries the process
// id, and the first run of any later process removes the folders of processes that are gone.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = 'slapmesh-build-';
/** A scratch folder's name: the prefix, the process id, a random part. */
const NAME = new RegExp(`^${PREFIX}(\\d+)-`);

let swept = false;

/** A new scratch folder for this process's run (the caller removes it). */
export function makeWorkDir(): string {
  if (!swept) {
    swept = true;
    sweepWorkDirs(tmpdir());
  }
  return mkdtempSync(join(tmpdir(), `${PREFIX}${process.pid}-`));
}

/** Removes the scratch folders in `root` that belong to this user and to a process that no longer runs. */
export function sweepWorkDirs(root: string): string[] {
  const removed: string[] = [];
  const uid = process.getuid?.();
  for (const name of readdirSync(root)) {
    const pid = Number(NAME.exec(name)?.[1] ?? NaN);
    if (!Number.isSafeInteger(pid) || isRunning(pid)) continue;
    const path = join(root, name);
    try {
      if (uid !== undefined && statSync(path).uid !== uid) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // gone meanwhile, or not ours to remove: another run's business
    }
  }
  return removed;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // it runs, as another user
  }
}
