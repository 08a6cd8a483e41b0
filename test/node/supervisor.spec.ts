// The supervisor with a real node.db and real processes: small shell scripts written by each test.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ProgramLauncher } from '../../node/launcher.js';
import { NodeStore } from '../../node/store.js';
import { processStartTime, Supervisor, type ServiceExit, type ServiceStart, type SupervisorInit } from '../../node/supervisor.js';
import { removeTree, writeTree } from '../helpers/files.js';
import { recordingLogger } from '../helpers/nodes.js';
import { exited, program, until } from '../helpers/programs.js';

/** The members of a process group that have not exited, from /proc. */
function liveMembers(pgid: number): number[] {
  return readdirSync('/proc').filter((name) => /^[0-9]+$/.test(name)).map(Number).filter((pid) => {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(fields[2]) === pgid && fields[0] !== 'Z';
    } catch {
      return false;
    }
  });
}

describe('node/supervisor', () => {
  let dir: string;
  let folder: string;
  let store: NodeStore;
  let lines: string[];
  let supervisor: Supervisor;
  let starts: ServiceStart[];
  let exits: ServiceExit[];
  const strays: number[] = [];

  const make = (init: Partial<SupervisorInit> = {}) => {
    const made = new Supervisor({ store, log: recordingLogger(lines), backoff: { initialMs: 10, maxMs: 40 }, graceMs: 500, ...init });
    made.addEventListener('service:start', (event) => starts.push(event.detail));
    made.addEventListener('service:exit', (event) => exits.push(event.detail));
    return made;
  };

  /** Resolves with the first event of `type` matching, from now on. */
  function next(type: 'service:start', match: (detail: ServiceStart) => boolean, from?: Supervisor): Promise<ServiceStart>;
  function next(type: 'service:exit', match: (detail: ServiceExit) => boolean, from?: Supervisor): Promise<ServiceExit>;
  function next(type: 'service:start' | 'service:exit', match: (detail: never) => boolean, from = supervisor): Promise<unknown> {
    return new Promise((resolve) => {
      const listener = (event: CustomEvent) => {
        if (!match(event.detail as never)) return;
        from.removeEventListener(type, listener);
        resolve(event.detail);
      };
      from.addEventListener(type, listener);
    });
  }
  const named = (name: string) => (detail: { name: string }) => detail.name === name;

  beforeEach(() => {
    dir = writeTree({});
    folder = join(dir, 'instances', '0');
    mkdirSync(folder, { recursive: true });
    store = NodeStore.open(join(dir, 'node.db'));
    lines = [];
    starts = [];
    exits = [];
    supervisor = make();
  });

  afterEach(async () => {
    await supervisor.stopAll();
    for (const pid of strays.splice(0)) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    store.close();
    removeTree(dir);
  });

  it('starts services and run programs in the partition folder, with env, logs and records', async () => {
    program(folder, 'etc/service/hello', 'echo "in $(pwd) as $GREETING"\nexec sleep 1000');
    program(folder, 'etc/run/once', 'echo ran >&2');
    program(folder, 'etc/service/.hidden', 'exit 1');
    const ran = next('service:exit', named('once'));
    await supervisor.start(0, folder, { GREETING: 'hi' });
    assert.deepEqual(starts.map((s) => s.name).sort(), ['hello', 'once']);
    const hello = starts.find((s) => s.name === 'hello')!;
    assert.deepEqual(store.listServices(0).find((s) => s.name === 'hello')?.pgid, hello.pid, 'recorded with its pgid');
    assert.equal((await ran).code, 0);
    assert.deepEqual(supervisor.running(0), ['hello']);
    const log = join(folder, '.slapmesh', 'log');
    await until(() => existsSync(join(log, 'hello.log')) && readFileSync(join(log, 'hello.log'), 'utf8').includes('\n'), 'the log line');
    assert.equal(readFileSync(join(log, 'hello.log'), 'utf8'), `in ${realpathSync(folder)} as hi\n`);
    assert.equal(readFileSync(join(log, 'once.log'), 'utf8'), 'ran\n');
    assert.deepEqual(store.listServices(0).map((s) => s.name), ['hello'], 'a finished run program is forgotten');
    await supervisor.stop(0);
    assert.ok(exited(hello.pid));
    assert.deepEqual(supervisor.running(0), []);
    assert.deepEqual(store.listServices(), []);
  });

  it('restarts a crashing service with a doubling back-off, up to the maximum', async () => {
    program(folder, 'etc/service/crash', 'echo x >> runs\nexit 3');
    let fifth!: () => void;
    const fiveStarts = new Promise<void>((resolve) => (fifth = resolve));
    supervisor.addEventListener('service:start', () => starts.length === 5 && fifth());
    await supervisor.start(0, folder);
    await fiveStarts;
    assert.deepEqual(exits.slice(0, 4).map((e) => [e.name, e.code]), Array(4).fill(['crash', 3]));
    assert.deepEqual(lines.filter((l) => l.includes('restarting')).slice(0, 4), [10, 20, 40, 40].map((ms) => `partition 0: crash exited with 3; restarting in ${ms} ms`));
  });

  it('starts the back-off again after a long enough run', async () => {
    supervisor = make({ backoff: { initialMs: 20, maxMs: 1_000, resetAfterMs: 100 } });
    program(folder, 'etc/service/flaky', 'n=$(cat count 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n > count\n[ $n -eq 3 ] && sleep 0.2\nexit 1');
    const fourth = next('service:start', () => starts.length === 4);
    await supervisor.start(0, folder);
    await fourth;
    assert.deepEqual(lines.filter((l) => l.includes('restarting')).map((l) => /in (\d+) ms/.exec(l)?.[1]), ['20', '40', '20']);
  });

  it('a second start keeps what did not change, restarts what changed, stops what was removed', async () => {
    for (const name of ['keep', 'change', 'remove']) program(folder, `etc/service/${name}`, 'exec sleep 1000');
    program(folder, 'etc/run/once', 'exit 0');
    const once = next('service:exit', named('once'));
    await supervisor.start(0, folder);
    await once;
    const first = new Map(starts.map((s) => [s.name, s.pid]));
    starts.length = 0;

    program(folder, 'etc/service/change', 'exec sleep 1001');
    unlinkSync(join(folder, 'etc/service/remove'));
    await supervisor.start(0, folder);
    assert.deepEqual(starts.map((s) => s.name), ['change'], 'only the changed one starts; the finished run program is not run again');
    assert.ok(exited(first.get('change')!));
    assert.ok(exited(first.get('remove')!));
    assert.ok(!exited(first.get('keep')!));
    assert.deepEqual(supervisor.running(0), ['change', 'keep']);
    assert.deepEqual(store.listServices(0).map((s) => [s.name, s.pgid]), [['change', starts[0]!.pid], ['keep', first.get('keep')]]);

    // The same files again, and a new environment: all restart.
    starts.length = 0;
    await supervisor.start(0, folder);
    assert.equal(starts.length, 0);
    await supervisor.start(0, folder, { MODE: 'other' });
    assert.deepEqual(starts.map((s) => s.name).sort(), ['change', 'keep', 'once']);
  });

  it('stop() ends the whole group, grandchildren included, and nothing restarts', async () => {
    program(folder, 'etc/service/parent', 'sleep 1000 &\necho $! > grandchild.tmp && mv grandchild.tmp grandchild\nwait');
    await supervisor.start(0, folder);
    const leader = starts[0]!.pid;
    await until(() => existsSync(join(folder, 'grandchild')), 'the grandchild');
    const grandchild = Number(readFileSync(join(folder, 'grandchild'), 'utf8'));
    assert.ok(!exited(grandchild));
    await supervisor.stop(0);
    assert.ok(exited(leader));
    assert.ok(exited(grandchild));
    assert.deepEqual(liveMembers(leader), []);
    assert.deepEqual(store.listServices(), []);
    assert.deepEqual(supervisor.running(0), []);
    assert.equal(lines.some((l) => l.includes('restarting')), false);
  });

  it('kills a program that ignores SIGTERM after the grace time', async () => {
    supervisor = make({ graceMs: 50 });
    // It says when it ignores SIGTERM: stopped before that, on a busy machine, SIGTERM would end it.
    program(folder, 'etc/service/stubborn', "trap '' TERM\ntouch ignoring\nexec sleep 1000");
    await supervisor.start(0, folder);
    await until(() => existsSync(join(folder, 'ignoring')), 'the program to ignore SIGTERM');
    const exit = next('service:exit', named('stubborn'));
    await supervisor.stop(0);
    assert.equal((await exit).signal, 'SIGKILL');
  });

  it('retries a program that cannot be spawned, like a crash', async () => {
    program(folder, 'etc/service/later', 'exec sleep 1000', 0o644);
    const failed = next('service:exit', named('later'));
    await supervisor.start(0, folder);
    const failure = await failed;
    assert.equal(failure.pid, undefined);
    assert.match(failure.error ?? '', /EACCES/);
    assert.ok(lines.some((l) => l.startsWith('error: partition 0: later: cannot start')));
    const started = next('service:start', named('later'));
    chmodSync(join(folder, 'etc/service/later'), 0o755);
    await started;
    assert.deepEqual(supervisor.running(0), ['later']);
  });

  it('restarts its services when the launcher process dies, ending the groups it can no longer watch', async () => {
    const launcher = new ProgramLauncher();
    supervisor = make({ launcher });
    program(folder, 'etc/service/steady', 'exec sleep 1000');
    await supervisor.start(0, folder);
    const first = starts[0]!.pid;
    const restarted = next('service:start', named('steady'));
    process.kill(launcher.pid!, 'SIGKILL');
    const again = await restarted;
    assert.notEqual(again.pid, first);
    assert.ok(exited(first), 'the group started by the dead launcher is ended');
    assert.deepEqual(supervisor.running(0), ['steady']);
    assert.ok(lines.some((l) => l === 'partition 0: steady was lost with the program launcher; restarting in 10 ms'));
  });

  it('stopAll() stops every partition, one being started too', async () => {
    const other = join(dir, 'instances', '1');
    program(folder, 'etc/service/a', 'exec sleep 1000');
    program(other, 'etc/service/b', 'exec sleep 1000');
    await supervisor.start(0, folder);
    await supervisor.start(1, other);
    assert.deepEqual([supervisor.running(0), supervisor.running(1)], [['a'], ['b']]);
    const third = join(dir, 'instances', '2');
    program(third, 'etc/service/c', 'exec sleep 1000');
    void supervisor.start(2, third);
    await supervisor.stopAll();
    assert.deepEqual(supervisor.running(2), []);
    assert.deepEqual([supervisor.running(0), supervisor.running(1)], [[], []]);
    assert.ok(starts.every((s) => exited(s.pid)));
    assert.deepEqual(store.listServices(), []);
  });

  describe('reap()', () => {
    /** A process group left by a node that was killed: started here, recorded as the supervisor does. */
    function leftBehind(script: string): number {
      const child = spawn('/bin/sh', ['-c', script], { detached: true, stdio: 'ignore' });
      child.unref();
      strays.push(child.pid!);
      return child.pid!;
    }

    it('ends the groups a killed node left, and forgets them', async () => {
      const pgid = leftBehind('sleep 1000 & wait');
      store.putService({ partition: 3, name: 'left', pgid, startedAt: Date.now() });
      const gone = spawn('/bin/true');
      await new Promise((resolve) => gone.once('exit', resolve));
      store.putService({ partition: 4, name: 'gone', pgid: gone.pid!, startedAt: Date.now() });
      await until(() => liveMembers(pgid).length === 2, 'the group');
      const fresh = make();
      assert.equal(await fresh.reap(), 1);
      assert.deepEqual(liveMembers(pgid), []);
      assert.deepEqual(store.listServices(), []);
      assert.ok(lines.some((l) => l.includes('partition 3: left (process group') && l.endsWith('stopped')));
    });

    it('leaves alone a group whose pgid was reused by another program', async () => {
      const pgid = leftBehind('exec sleep 1000');
      // Recorded an hour ago: the group now under that pgid started later, it is not the one recorded.
      store.putService({ partition: 0, name: 'old', pgid, startedAt: Date.now() - 3_600_000 });
      assert.equal(await make().reap(), 0);
      assert.ok(!exited(pgid));
      assert.deepEqual(store.listServices(), []);
      assert.ok(lines.some((l) => l.includes('not ours: left alone')));
    });

    it('reads when a process started from /proc', () => {
      const pid = leftBehind('exec sleep 1000');
      const started = processStartTime(pid);
      assert.ok(started !== undefined && Math.abs(started - Date.now()) < 2_000, `${started} vs ${Date.now()}`);
      assert.equal(processStartTime(2 ** 22 + 1), undefined);
    });
  });
});
