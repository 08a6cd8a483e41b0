// The buildout runners with real child processes: reused from job to job, replaced when they die or have
// done their share, one job per runner at a time.
import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BuildoutRunners, type BuildoutJob } from '../../node/buildout-runners.js';
import { removeTree, writeTree } from '../helpers/files.js';
import { until } from '../helpers/programs.js';

/** A profile whose one part runs `command` with sh (the runner is the shell's parent: $PPID). */
const profile = (command: string) => `[buildout]
parts = run
[run]
recipe = plone.recipe.command
stop-on-error = true
command = ${command}
`;

describe('node/buildout-runners', function () {
  this.timeout(30_000);
  let root: string;
  let count = 0;

  beforeEach(() => {
    root = writeTree({});
  });
  afterEach(() => removeTree(root));

  /** A job in a folder of its own running `command`; its log is `<folder>/log`. */
  function job(command: string, extra: Partial<BuildoutJob> = {}): BuildoutJob {
    const folder = join(root, `job-${++count}`);
    mkdirSync(folder);
    writeFileSync(join(folder, 'buildout.cfg'), profile(command));
    return {
      configFile: join(folder, 'buildout.cfg'), cwd: folder, logFile: join(folder, 'log'), signal: new AbortController().signal,
      timeoutMs: 20_000, killGraceMs: 2_000, ...extra,
    };
  }
  const runnerOf = (done: BuildoutJob) => Number(readFileSync(join(done.cwd, 'runner'), 'utf8'));

  it('runs jobs in their folder, one runner after another job, the output in the job\'s log', async () => {
    const runners = new BuildoutRunners({ size: 1 });
    const first = job('echo $PPID > runner');
    const second = job('echo $PPID > runner');
    assert.deepEqual(await runners.run(first), { reason: 'ok' });
    assert.deepEqual(await runners.run(second), { reason: 'ok' });
    assert.equal(runnerOf(first), runnerOf(second));
    assert.match(readFileSync(first.logFile, 'utf8'), /Installing run\.\n/);
  });

  it('a failing profile fails with its output in the log; the runner goes on', async () => {
    const runners = new BuildoutRunners({ size: 1 });
    const failing = job('echo $PPID > runner; echo no space left >&2; exit 4');
    assert.deepEqual(await runners.run(failing), { reason: 'failed' });
    assert.match(readFileSync(failing.logFile, 'utf8'), /slapmesh: \[run\] install failed: command failed \(exit status 4\)[^]*no space left/);
    const next = job('echo $PPID > runner');
    assert.deepEqual(await runners.run(next), { reason: 'ok' });
    assert.equal(runnerOf(next), runnerOf(failing));
  });

  it('a runner that dies fails its job with the reason, and the next job gets a new one', async () => {
    const runners = new BuildoutRunners({ size: 1 });
    const killer = job('echo $PPID > runner; kill -9 $PPID; sleep 5');
    const outcome = await runners.run(killer);
    assert.deepEqual(outcome, { reason: 'failed', message: 'the buildout runner exited on SIGKILL' });
    const next = job('echo $PPID > runner');
    assert.deepEqual(await runners.run(next), { reason: 'ok' });
    assert.notEqual(runnerOf(next), runnerOf(killer));
  });

  it('a runner that has done its share of jobs is replaced', async () => {
    const runners = new BuildoutRunners({ size: 1, jobsPerRunner: 2 });
    const jobs = [job('echo $PPID > runner'), job('echo $PPID > runner'), job('echo $PPID > runner')];
    for (const each of jobs) assert.deepEqual(await runners.run(each), { reason: 'ok' });
    const [a, b, c] = jobs.map(runnerOf);
    assert.equal(a, b);
    assert.notEqual(b, c);
  });

  it('a runner whose memory passed the bound after a job is replaced', async () => {
    const runners = new BuildoutRunners({ size: 1, maxRssBytes: 1 });
    const jobs = [job('echo $PPID > runner'), job('echo $PPID > runner')];
    for (const each of jobs) assert.deepEqual(await runners.run(each), { reason: 'ok' });
    assert.notEqual(runnerOf(jobs[0]!), runnerOf(jobs[1]!));
  });

  it('as many jobs at once as runners: the others wait their turn', async () => {
    const runners = new BuildoutRunners({ size: 2 });
    // Each job records when it started and ended; with two runners, the third starts after one ended.
    const timeline = join(root, 'timeline');
    writeFileSync(timeline, '');
    const jobs = [1, 2, 3].map((n) => job(`echo start ${n} >> ${timeline}; sleep 0.3; echo end ${n} >> ${timeline}`));
    const outcomes = await Promise.all(jobs.map((each) => runners.run(each)));
    assert.deepEqual(outcomes, [{ reason: 'ok' }, { reason: 'ok' }, { reason: 'ok' }]);
    const events = readFileSync(timeline, 'utf8').trim().split('\n');
    assert.deepEqual(events.slice(0, 2).sort(), ['start 1', 'start 2']);
    // Never more than two at once: the third starts only after one of the first two ended.
    let running = 0;
    for (const event of events) {
      running += event.startsWith('start') ? 1 : -1;
      assert.ok(running <= 2, events.join(', '));
    }
    assert.ok(events.indexOf('start 3') > events.findIndex((e) => e.startsWith('end')), events.join(', '));
  });

  it('prepare() starts the runners before any job; the jobs run on them, and preparing again starts none', async () => {
    const before = new Set(runnerProcesses());
    const runners = new BuildoutRunners({ size: 2 });
    runners.prepare();
    const prepared = runnerProcesses().filter((pid) => !before.has(pid)).sort();
    assert.equal(prepared.length, 2);
    const jobs = [job('echo $PPID > runner; sleep 0.2'), job('echo $PPID > runner; sleep 0.2')];
    assert.deepEqual(await Promise.all(jobs.map((each) => runners.run(each))), [{ reason: 'ok' }, { reason: 'ok' }]);
    assert.deepEqual(jobs.map(runnerOf).sort(), prepared);
    runners.prepare();
    assert.deepEqual(runnerProcesses().filter((pid) => !before.has(pid)).sort(), prepared);
  });

  it('abort and timeout stop the job and what it runs', async () => {
    const runners = new BuildoutRunners({ size: 1 });
    const controller = new AbortController();
    const slow = job('echo $$ > shell; exec sleep 60', { signal: controller.signal });
    const running = runners.run(slow);
    // The shell writes its pid, then becomes the sleep.
    await until(() => existsSync(join(slow.cwd, 'shell')) && readFileSync(join(slow.cwd, 'shell'), 'utf8').endsWith('\n'), 'the command to start');
    const shell = Number(readFileSync(join(slow.cwd, 'shell'), 'utf8'));
    controller.abort(new Error('destroyed'));
    assert.equal((await running).reason, 'aborted');
    assert.throws(() => process.kill(shell, 0), /ESRCH/);
    assert.equal((await runners.run(job('exec sleep 60', { timeoutMs: 500 }))).reason, 'timeout');
  });

  it('close() stops the job in progress and resolves once every runner has left', async () => {
    const before = new Set(runnerProcesses());
    const runners = new BuildoutRunners({ size: 2 });
    runners.prepare();
    const slow = job('echo $$ > shell; exec sleep 60');
    const running = runners.run(slow);
    await until(() => existsSync(join(slow.cwd, 'shell')) && readFileSync(join(slow.cwd, 'shell'), 'utf8').endsWith('\n'), 'the command to start');
    const shell = Number(readFileSync(join(slow.cwd, 'shell'), 'utf8'));
    assert.equal(runnerProcesses().filter((pid) => !before.has(pid)).length, 2);
    await runners.close();
    // Gone, not just told to go: the idle runner, the busy one, and the command of its job.
    assert.deepEqual(runnerProcesses().filter((pid) => !before.has(pid)), []);
    assert.throws(() => process.kill(shell, 0), /ESRCH/);
    assert.equal((await running).reason, 'failed');
  });
});

/** The buildout runners this process started that are alive (Linux: read from /proc). */
function runnerProcesses(): number[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      return parent === process.pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('buildout-runner');
    } catch {
      return false; // gone meanwhile
    }
  });
}
