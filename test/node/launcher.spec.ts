// The program launcher's helper process, for real: programs spawned in groups of their own with their output
// in their logs, exits told, spawn failures answered, and the groups the node never recorded ended when the
// node goes away.
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LaunchError, ProgramLauncher } from '../../node/launcher.js';
import { removeTree, writeTree } from '../helpers/files.js';
import { exited, program, until } from '../helpers/programs.js';

describe('node/launcher', () => {
  let dir: string;
  let launcher: ProgramLauncher;
  const strays: number[] = [];

  beforeEach(() => {
    dir = writeTree({});
    launcher = new ProgramLauncher();
  });

  afterEach(() => {
    launcher.stop();
    for (const pid of strays.splice(0)) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    removeTree(dir);
  });

  const launch = (name: string, onExit: (code: number | null, signal: NodeJS.Signals | null) => void = () => undefined) =>
    launcher.launch({ path: join(dir, name), cwd: dir, env: { ...process.env, WHO: 'launcher' }, log: join(dir, `${name}.log`) }, onExit);

  it('spawns a program as the leader of its own group, in its folder, with its env and log, and tells its exit', async () => {
    program(dir, 'hello', 'echo "$WHO in $(pwd)"\nexit 7');
    let told!: (outcome: [number | null, string | null]) => void;
    const exit = new Promise<[number | null, string | null]>((resolve) => (told = resolve));
    const pid = await launch('hello', (code, signal) => told([code, signal]));
    assert.ok(pid > 0);
    assert.deepEqual(await exit, [7, null]);
    assert.match(readFileSync(join(dir, 'hello.log'), 'utf8'), /^launcher in .+\n$/);
  });

  it('prepare() starts the helper at once; launches then go through it', async () => {
    assert.equal(launcher.pid, undefined);
    launcher.prepare();
    const helper = launcher.pid;
    assert.ok(helper !== undefined && helper > 0);
    program(dir, 'child', 'echo $PPID');
    let exited!: () => void;
    const exit = new Promise<void>((resolve) => (exited = resolve));
    await launch('child', () => exited());
    await exit;
    assert.equal(readFileSync(join(dir, 'child.log'), 'utf8'), `${helper}\n`);
    launcher.prepare();
    assert.equal(launcher.pid, helper);
  });

  it('answers a program that cannot be spawned with the reason', async () => {
    program(dir, 'not-executable', 'exit 0', 0o644);
    await assert.rejects(launch('not-executable'), (error: Error) => error.name === 'LaunchError' && /EACCES/.test(error.message));
    await assert.rejects(launch('missing'), LaunchError);
  });

  it('stopped (the node gone), it ends the groups never recorded and leaves the recorded ones to the next reap', async () => {
    program(dir, 'kept', 'exec sleep 1000');
    program(dir, 'unrecorded', 'exec sleep 1000');
    const kept = await launch('kept');
    strays.push(kept);
    launcher.recorded(kept);
    const unrecorded = await launch('unrecorded');
    strays.push(unrecorded);
    launcher.stop();
    await until(() => exited(unrecorded), 'the unrecorded group to end');
    assert.equal(exited(kept), false);
    assert.ok(existsSync(join(dir, 'kept.log')));
  });
});
