// Promises with real processes: small shell scripts, and the check promise.plugin writes for examples/hello.
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { install } from '../../engine/install/installer.js';
import { PROMISE_MARKER } from '../../engine/recipes/promise-check.js';
import { NotWatchedError, PromiseRunner, PromisesStoppedError, runPromises, type PromiseResult } from '../../node/promises.js';
import { removeTree, writeTree } from '../helpers/files.js';
import { recordingLogger } from '../helpers/nodes.js';
import { exited, program as script, until } from '../helpers/programs.js';

describe('node/promises', () => {
  let folder: string;

  beforeEach(() => {
    folder = writeTree({});
  });

  afterEach(() => removeTree(folder));

  describe('runPromises', () => {
    it('runs the executables of etc/plugin and etc/promise in the folder: ok, or failing with the last line', async () => {
      script(folder, 'etc/plugin/a-fine', 'pwd');
      script(folder, 'etc/promise/b-broken', 'echo first\necho "  it is broken  " >&2\necho\nexit 1');
      script(folder, 'etc/plugin/c-silent', 'exit 2');
      script(folder, 'etc/promise/d-quiet', 'exit 0');
      script(folder, 'etc/plugin/__init__.py', '', 0o644);
      script(folder, 'etc/plugin/.hidden', 'exit 1');
      assert.deepEqual(await runPromises(folder), [
        { name: 'a-fine', ok: true, message: realpathSync(folder) },
        { name: 'b-broken', ok: false, message: 'it is broken' },
        { name: 'c-silent', ok: false, message: 'exited with code 2' },
        { name: 'd-quiet', ok: true, message: '' },
      ]);
    });

    it('has nothing to run in a folder without promises', async () => {
      assert.deepEqual(await runPromises(folder), []);
      assert.deepEqual(await runPromises(join(folder, 'missing')), []);
    });

    it('runs them in parallel, and kills one that times out with its whole group', async () => {
      script(folder, 'etc/plugin/slow', 'sleep 1000 &\necho $! > child.tmp && mv child.tmp child\necho waiting\nwait');
      script(folder, 'etc/plugin/fast', 'echo done');
      const started = Date.now();
      const [fast, slow] = await runPromises(folder, { timeoutMs: 300 });
      assert.deepEqual(fast, { name: 'fast', ok: true, message: 'done' });
      assert.deepEqual(slow, { name: 'slow', ok: false, message: 'timed out after 0.3 s: waiting' });
      assert.ok(Date.now() - started < 5_000);
      const child = Number(readFileSync(join(folder, 'child'), 'utf8'));
      await until(() => exited(child), 'the killed grandchild');
    });

    it('does not wait for what a promise left running, and kills it', async () => {
      script(folder, 'etc/plugin/leaves', 'sleep 1000 &\necho $! > child\necho done');
      assert.deepEqual(await runPromises(folder, { timeoutMs: 10_000 }), [{ name: 'leaves', ok: true, message: 'done' }]);
      const child = Number(readFileSync(join(folder, 'child'), 'utf8'));
      await until(() => exited(child), 'the leftover');
    });

    it('does not wait for the output a process that left the group holds open', async () => {
      script(folder, 'etc/plugin/escapes', 'setsid sleep 1000 &\necho $! > child\necho done');
      const started = Date.now();
      try {
        assert.deepEqual(await runPromises(folder, { timeoutMs: 10_000 }), [{ name: 'escapes', ok: true, message: 'done' }]);
        assert.ok(Date.now() - started < 5_000);
      } finally {
        process.kill(Number(readFileSync(join(folder, 'child'), 'utf8')), 'SIGKILL');
      }
    });

    it('keeps only the end of a long output, and a bounded message', async () => {
      script(folder, 'etc/plugin/chatty', `i=0\nwhile [ $i -lt 20000 ]; do echo "line $i"; i=$((i + 1)); done\necho last`);
      script(folder, 'etc/plugin/long', `printf 'x%.0s' $(seq 5000)\necho\nexit 1`);
      const [chatty, long] = await runPromises(folder);
      assert.deepEqual(chatty, { name: 'chatty', ok: true, message: 'last' });
      assert.equal(long!.ok, false);
      assert.equal(long!.message, 'x'.repeat(1_000));
    });

    it('stops on abort: the promises are killed and it rejects with the reason', async () => {
      script(folder, 'etc/plugin/forever', 'echo $$ > pid.tmp && mv pid.tmp pid\nexec sleep 1000');
      const controller = new AbortController();
      const run = runPromises(folder, { signal: controller.signal });
      await until(() => existsSync(join(folder, 'pid')), 'the promise');
      const reason = new Error('enough');
      controller.abort(reason);
      await assert.rejects(run, (error) => error === reason);
      const pid = Number(readFileSync(join(folder, 'pid'), 'utf8'));
      await until(() => exited(pid), 'the killed promise');
    });

    it('runs the check promise.plugin writes for examples/hello (check_url_available)', async () => {
      const server = createServer((_, response) => response.end('Hello World!')).listen(0, '127.0.0.1');
      await once(server, 'listening');
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      // [hello-promise] of examples/hello/instance.cfg.in.
      writeFileSync(join(folder, 'buildout.cfg'), [
        '[buildout]', 'parts = hello-promise', 'offline = true',
        '[directory]', 'etc = ${buildout:directory}/etc', 'plugin = ${:etc}/plugin',
        '[hello-promise]', 'recipe = slapos.cookbook:promise.plugin', 'module = slapos.promise.plugin.check_url_available',
        `config-url = ${url}`, 'output = ${directory:plugin}/hello', '',
      ].join('\n'));
      await install({ configFile: join(folder, 'buildout.cfg') });
      try {
        assert.deepEqual(await runPromises(folder), [{ name: 'hello', ok: true, message: `${url} answered 200` }]);
      } finally {
        server.close();
        await once(server, 'close');
      }
      const [down] = await runPromises(folder);
      assert.equal(down!.ok, false);
      assert.match(down!.message, new RegExp(`^Error: ${url} cannot be reached: .*ECONNREFUSED`));
      // The script itself, as a person runs it, says the same.
      const standalone = spawnSync(join(folder, 'etc', 'plugin', 'hello'), { encoding: 'utf8' });
      assert.equal(standalone.status, 1);
      assert.equal(standalone.stdout.trim(), down!.message);
    });

    it('runs the network checks a script is marked with in its own process, other checks and unmarked files as scripts', async () => {
      const server = createNetServer().listen(0, '127.0.0.1');
      await once(server, 'listening');
      const port = (server.address() as AddressInfo).port;
      // In a here-document, which sh skips.
      const marked = (line: string) => `: <<'END'\n${line}\nEND\necho body ran; exit 1`;
      const marker = (check: string, config: Record<string, string>) => marked(`${PROMISE_MARKER}${JSON.stringify({ check, config })}`);
      try {
        // Their bodies fail: a result that holds comes from the marker's check, run by the node.
        script(folder, 'etc/plugin/a-socket', marker('check_socket_listening', { host: '127.0.0.1', port: String(port) }));
        script(folder, 'etc/plugin/b-command', marker('check_command_execute', { command: 'true' }));
        script(folder, 'etc/plugin/c-garbled', marked(`${PROMISE_MARKER}{"check": "check_socket_listening", "config": {"port": 1}`));
        assert.deepEqual(await runPromises(folder), [
          { name: 'a-socket', ok: true, message: `127.0.0.1:${port} is listening` },
          { name: 'b-command', ok: false, message: 'body ran' },
          { name: 'c-garbled', ok: false, message: 'body ran' },
        ]);
      } finally {
        server.close();
      }
    });
  });

  describe('PromiseRunner', () => {
    let runner: PromiseRunner;
    let lines: string[];

    beforeEach(() => {
      lines = [];
      runner = new PromiseRunner({ log: recordingLogger(lines), timeoutMs: 5_000 });
    });

    afterEach(() => runner.stopAll());

    /** A promise that fails if another run of it is going on, and counts its runs. */
    const exclusive = 'echo run >> runs\nmkdir lock 2>/dev/null || { echo overlap; exit 1; }\nsleep 0.05\nrmdir lock\necho alone';

    it('runs them periodically, never two runs of a partition at once, and gives every result', async () => {
      script(folder, 'etc/plugin/exclusive', exclusive);
      const results: PromiseResult[][] = [];
      let third!: () => void;
      const thirdRun = new Promise<void>((resolve) => (third = resolve));
      runner.watch(0, folder, 10, (r) => {
        results.push(r);
        if (results.length === 3) third();
      });
      // Concurrent with the periodic runs: they wait for each other.
      const checked = await Promise.all([runner.checkNow(0), runner.checkNow(0), runner.checkNow(0, folder)]);
      await thirdRun;
      runner.unwatch(0);
      for (const r of [...results, ...checked]) assert.deepEqual(r, [{ name: 'exclusive', ok: true, message: 'alone' }]);
    });

    it('checkNow(): runs at once, after the run in progress; callers meanwhile share the next run', async () => {
      script(folder, 'etc/plugin/exclusive', exclusive);
      const [a, b, c] = await Promise.all([runner.checkNow(7, folder), runner.checkNow(7, folder), runner.checkNow(7, folder)]);
      assert.deepEqual([a, b, c].map((r) => r[0]?.message), ['alone', 'alone', 'alone']);
      assert.equal(readFileSync(join(folder, 'runs'), 'utf8'), 'run\nrun\n', 'the first, then one for the two that waited');
      await assert.rejects(runner.checkNow(8), NotWatchedError);
    });

    it('unwatch() kills the run in progress and ends the periodic runs', async () => {
      script(folder, 'etc/plugin/forever', 'echo $$ > pid.tmp && mv pid.tmp pid\nexec sleep 1000');
      let delivered = 0;
      runner.watch(0, folder, 60_000, () => delivered++);
      const run = runner.checkNow(0);
      await until(() => existsSync(join(folder, 'pid')), 'the promise');
      runner.unwatch(0);
      await assert.rejects(run, PromisesStoppedError);
      await until(() => exited(Number(readFileSync(join(folder, 'pid'), 'utf8'))), 'the killed promise');
      assert.equal(delivered, 0);
      await assert.rejects(runner.checkNow(0), NotWatchedError);
      // Checking again afterwards works: unwatching is not for good.
      script(folder, 'etc/plugin/forever', 'echo back');
      assert.deepEqual(await runner.checkNow(0, folder), [{ name: 'forever', ok: true, message: 'back' }]);
    });

    it('logs a result handler that throws, and goes on', async () => {
      script(folder, 'etc/plugin/ok', 'echo fine');
      let calls = 0;
      let second!: () => void;
      const twice = new Promise<void>((resolve) => (second = resolve));
      runner.watch(0, folder, 5, () => {
        if (++calls === 2) second();
        throw new Error('handler broke');
      });
      await twice;
      assert.ok(lines.includes('error: partition 0: handling promise results: handler broke'));
    });
  });
});
