// The install run's scratch folders: those of processes that are gone are removed, no others.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { makeWorkDir, sweepWorkDirs } from '../../../engine/install/work-dir.js';
import { removeTree } from '../../helpers/files.js';

/** The id of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await once(child, 'exit');
  return child.pid!;
}

describe('engine/install/work-dir', () => {
  let root: string;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'slapmesh-work-dirs-'));
  });

  afterEach(() => removeTree(root));

  it('removes the scratch folders of processes that are gone, with what they hold, and keeps the others', async () => {
    const dead = join(root, `slapmesh-build-${await deadPid()}-abc123`);
    mkdirSync(join(dead, 'downloads'), { recursive: true });
    writeFileSync(join(dead, 'downloads', 'partial'), 'x');
    const alive = join(root, `slapmesh-build-${process.pid}-def456`);
    const unnamed = join(root, 'slapmesh-build-ghi789'); // an older version's: no process id to go by
    const other = join(root, 'not-ours');
    for (const dir of [alive, unnamed, other]) mkdirSync(dir);

    assert.deepEqual(sweepWorkDirs(root), [dead]);
    assert.equal(existsSync(dead), false);
    for (const dir of [alive, unnamed, other]) assert.ok(existsSync(dir), dir);
  });

  it('names a new scratch folder after this process', () => {
    const work = makeWorkDir();
    try {
      assert.equal(dirname(work), tmpdir());
      assert.match(basename(work), new RegExp(`^slapmesh-build-${process.pid}-`));
    } finally {
      removeTree(work);
    }
  });
});
