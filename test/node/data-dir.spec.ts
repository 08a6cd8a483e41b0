import { strict as assert } from 'node:assert';
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import {
  DataDirError, DataDirLockedError, defaultDataDir, LOCK_FILE, LOCK_GUARD_FILE, lockDataDir, prepareDataDir,
} from '../../node/data-dir.js';
import { removeTree, writeTree } from '../helpers/files.js';

/** A pid that no process has any more: a child's, once it has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  assert.ok(child.pid > 0);
  return child.pid;
}

function lockContent(dir: string): string {
  return readFileSync(join(dir, LOCK_FILE), 'utf8');
}

describe('node/data-dir', () => {
  let root: string;

  beforeEach(() => {
    root = writeTree({});
  });

  afterEach(() => {
    removeTree(root);
  });

  describe('defaultDataDir', () => {
    it('is $SLAPMESH_HOME, made absolute', () => {
      assert.equal(defaultDataDir({ SLAPMESH_HOME: '/srv/mesh' }), '/srv/mesh');
      assert.equal(defaultDataDir({ SLAPMESH_HOME: 'rel/mesh' }), resolve('rel/mesh'));
    });

    it('is ~/.slapmesh otherwise', () => {
      assert.equal(defaultDataDir({ HOME: '/home/ann' }), '/home/ann/.slapmesh');
      assert.equal(defaultDataDir({ HOME: '/home/ann', SLAPMESH_HOME: '' }), '/home/ann/.slapmesh');
      assert.equal(defaultDataDir({}), join(homedir(), '.slapmesh'));
    });
  });

  describe('prepareDataDir', () => {
    it('creates the directory and its parents, the directory itself private', () => {
      const dir = join(root, 'a/b/data');
      prepareDataDir(dir);
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      assert.deepEqual(readdirSync(dir), []);
    });

    it('tightens an existing directory of ours to 0700 and keeps its content', () => {
      const dir = join(root, 'data');
      mkdirSync(dir, { mode: 0o755 });
      chmodSync(dir, 0o755);
      writeFileSync(join(dir, 'keep'), 'x');
      prepareDataDir(dir);
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      assert.deepEqual(readdirSync(dir), ['keep']);
      prepareDataDir(dir);
      assert.equal(statSync(dir).mode & 0o777, 0o700);
    });

    it('refuses a file in its place', () => {
      const file = join(root, 'data');
      writeFileSync(file, 'x');
      assert.throws(() => prepareDataDir(file), { name: 'DataDirError', message: `data directory ${file} is not a directory` });
      assert.ok(new DataDirError('x') instanceof Error);
    });
  });

  describe('lockDataDir', () => {
    it('writes our pid into node.lock, and release removes it', () => {
      const lock = lockDataDir(root);
      assert.match(lockContent(root), new RegExp(`^${process.pid}\\n[0-9a-f]+\\n$`));
      assert.deepEqual(readdirSync(root), [LOCK_FILE]);
      lock.release();
      assert.deepEqual(readdirSync(root), []);
      lock.release();
    });

    it('refuses a second lock while the first is held, in this process too', () => {
      const lock = lockDataDir(root);
      const before = lockContent(root);
      assert.throws(() => lockDataDir(root), (error: unknown) => {
        assert.ok(error instanceof DataDirLockedError);
        assert.equal(error.name, 'DataDirLockedError');
        assert.equal(error.pid, process.pid);
        assert.equal(error.message, `another slapmesh node (pid ${process.pid}) uses ${root}`);
        return true;
      });
      assert.equal(lockContent(root), before);
      lock.release();
      lockDataDir(root).release();
    });

    it('refuses a lock held by another live process and leaves it alone', () => {
      writeFileSync(join(root, LOCK_FILE), `${process.ppid}\n`);
      assert.throws(() => lockDataDir(root), { name: 'DataDirLockedError', message: `another slapmesh node (pid ${process.ppid}) uses ${root}` });
      assert.equal(lockContent(root), `${process.ppid}\n`);
      assert.deepEqual(readdirSync(root), [LOCK_FILE]);
    });

    for (const [what, content] of [
      ['a dead pid', () => `${deadPid()}\n0123abcd\n`],
      ['a dead pid without token', () => `${deadPid()}`],
      ['garbage', () => 'not a pid\n'],
      ['an empty file', () => ''],
      ['pid 0', () => '0\n'],
      ['our own pid from an earlier process', () => `${process.pid}\nfeedbeef\n`],
    ] as const) {
      it(`takes over a stale lock: ${what}`, () => {
        writeFileSync(join(root, LOCK_FILE), content());
        const lock = lockDataDir(root);
        assert.match(lockContent(root), new RegExp(`^${process.pid}\\n[0-9a-f]{24}\\n$`));
        assert.throws(() => lockDataDir(root), { name: 'DataDirLockedError' });
        lock.release();
        assert.ok(!existsSync(join(root, LOCK_FILE)));
        assert.deepEqual(readdirSync(root).filter((name) => name !== LOCK_GUARD_FILE), []);
      });
    }

    it('release leaves a lock that is no longer ours', () => {
      const lock = lockDataDir(root);
      writeFileSync(join(root, LOCK_FILE), `${process.ppid}\n`);
      lock.release();
      assert.equal(lockContent(root), `${process.ppid}\n`);
    });

    it('lets exactly one of several processes take over a stale lock', async () => {
      writeFileSync(join(root, LOCK_FILE), `${deadPid()}\n`);
      const moduleUrl = new URL('../../node/data-dir.js', import.meta.url).href;
      // Each contender loads the module, says "ready", waits for "go", tries, reports, then holds on until
      // its stdin closes, so that a winner cannot exit and free the lock for a slower one.
      const script = `
        import { createInterface } from 'node:readline';
        const { lockDataDir } = await import(${JSON.stringify(moduleUrl)});
        const input = createInterface({ input: process.stdin });
        process.stdout.write('ready\\n');
        input.once('line', () => {
          let result = 'won';
          try { lockDataDir(process.argv[1]); } catch (error) { result = error.name; }
          process.stdout.write(result + '\\n');
          input.on('close', () => process.exit(0));
        });`;
      const children: ChildProcessByStdio<Writable, Readable, null>[] = [];
      try {
        for (let i = 0; i < 6; i++) {
          children.push(spawn(process.execPath, ['--input-type=module', '-e', script, root], { stdio: ['pipe', 'pipe', 'inherit'] }));
        }
        const lines = children.map((child) => createInterface({ input: child.stdout })[Symbol.asyncIterator]());
        for (const next of lines) assert.deepEqual(await next.next(), { done: false, value: 'ready' });
        for (const child of children) child.stdin.write('go\n');
        const results: string[] = [];
        for (const next of lines) {
          const line = await next.next();
          assert.equal(line.done, false);
          results.push(line.value as string);
        }
        assert.deepEqual(results.filter((result) => result === 'won').length, 1, results.join(' '));
        assert.deepEqual(results.filter((result) => result !== 'won' && result !== 'DataDirLockedError'), []);
        const winner = children[results.indexOf('won')];
        assert.equal(lockContent(root).split('\n')[0], String(winner?.pid));
      } finally {
        const exits = children.map((child) => new Promise((done) => child.once('exit', done)));
        for (const child of children) child.stdin.end();
        await Promise.all(exits);
      }
    });
  });
});
