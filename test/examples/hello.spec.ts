import { strict as assert } from 'node:assert';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { install } from '../../engine/install/installer.js';
import { freePort } from '../../node/ports.js';
import { removeTree } from '../helpers/files.js';

const RELEASE = fileURLToPath(new URL('../../../examples/hello/software.cfg', import.meta.url));


function runPromise(path: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(path, { encoding: 'utf8' }, (error, stdout) => resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout }));
  });
}

describe('examples/hello: the release builds, and its instance runs standalone', function () {
  this.timeout(30_000);
  let software: string;
  let instance: string;
  before(() => {
    software = mkdtempSync(join(tmpdir(), 'slapmesh-hello-sw-'));
    instance = mkdtempSync(join(tmpdir(), 'slapmesh-hello-instance-'));
  });
  after(() => {
    removeTree(software);
    removeTree(instance);
  });

  it('builds hello-server with cmmi and renders instance.cfg, outside examples/', async () => {
    await install({ configFile: RELEASE, assignments: [{ section: 'buildout', option: 'directory', value: software }] });
    assert.ok(existsSync(join(software, 'parts/hello-server/bin/hello-server')));
    assert.ok(existsSync(join(software, 'instance.cfg')));
    for (const built of ['parts', 'instance.cfg', '.installed.cfg', '.slapmesh']) {
      assert.ok(!existsSync(join(dirname(RELEASE), built)), `${built} was written in examples/hello`);
    }
  });

  it('deploys an instance from parameters.json; the service answers with the name and its promise passes', async () => {
    const port = await freePort();
    writeFileSync(join(instance, 'parameters.json'), JSON.stringify({ name: 'World', port: String(port) }));
    writeFileSync(join(instance, 'buildout.cfg'), `[buildout]\nextends = ${join(software, 'instance.cfg')}\n[slap-configuration]\nparameters-file = parameters.json\n`);
    await install({ configFile: join(instance, 'buildout.cfg') });
    const connection = JSON.parse(readFileSync(join(instance, 'connection.json'), 'utf8')) as Record<string, string>;
    assert.deepEqual(connection, { name: 'World', url: `http://127.0.0.1:${port}/` });
    assert.equal((await runPromise(join(instance, 'etc/plugin/hello'))).code, 1);

    // Its own process group, so that the whole service stops however the wrapper starts it.
    const service = spawn(join(instance, 'etc/service/hello'), [], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let log = '';
    service.stderr!.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    try {
      // Read to the end (not just to that line): the server keeps writing its log to the pipe.
      await new Promise<void>((resolve, reject) => {
        createInterface({ input: service.stdout! }).on('line', (line) => line.startsWith('listening on') && resolve());
        service.once('exit', (code) => reject(new Error(`the service exited (${code}) before listening: ${log}`)));
      });
      const response = await fetch(connection['url']!);
      assert.equal(await response.text(), 'Hello World!\n');
      assert.deepEqual(await runPromise(join(instance, 'etc/plugin/hello')), { code: 0, output: `${connection['url']} answered 200\n` });
    } finally {
      process.kill(-service.pid!, 'SIGTERM');
      if (service.exitCode === null && service.signalCode === null) await once(service, 'exit');
    }
  });
});
