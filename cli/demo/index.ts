// `slapmesh demo`, the README's main job. Until the mesh exists: build the example hello release
// with the buildout engine, deploy one instance of it standalone, fetch its greeting, stop.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { install } from '../../engine/install/installer.js';
import { freePort } from '../../node/ports.js';
import { CliError, EXIT_OK } from '../io.js';
import type { CommandContext } from '../main.js';

const RELEASE = fileURLToPath(new URL('../../../examples/hello/software.cfg', import.meta.url));
const SERVICE_START_TIMEOUT_MS = 10_000;

export function registerDemo(program: Command, { io, setExit }: CommandContext): void {
  program
    .command('demo')
    .description('build the example hello release, run an instance of it, and fetch its greeting')
    .action(async () => {
      const work = mkdtempSync(join(tmpdir(), 'slapmesh-demo-'));
      const step = async <T>(title: string, body: () => Promise<T>): Promise<T> => {
        const started = performance.now();
        const result = await body();
        io.stdout(`  ${title} (${((performance.now() - started) / 1000).toFixed(2)} s)\n`);
        return result;
      };
      try {
        io.stdout(`slapmesh demo: the hello release (${RELEASE})\n`);
        const software = join(work, 'software');
        const report = await step('built the release: configure, make, make install of hello-server, instance profile rendered', () =>
          install({ configFile: RELEASE, assignments: [{ section: 'buildout', option: 'directory', value: software }] }));
        io.stdout(`    parts: ${report.installed.join(', ')}\n`);

        const instance = join(work, 'instance');
        const port = await freePort();
        writeFileSync(join(work, 'parameters.json'), JSON.stringify({ name: 'slapmesh', port: String(port) }));
        writeFileSync(join(work, 'instance.cfg'), `[buildout]\nextends = ${join(software, 'instance.cfg')}\ndirectory = ${instance}\n[slap-configuration]\nparameters-file = ${join(work, 'parameters.json')}\n`);
        await step('deployed an instance with {"name": "slapmesh"}: service, promise, published connection', () =>
          install({ configFile: join(work, 'instance.cfg') }));
        const connection = JSON.parse(readFileSync(join(instance, 'connection.json'), 'utf8')) as { url: string };
        io.stdout(`    url: ${connection.url}\n`);

        const greeting = await step('started etc/service/hello and fetched the url', () => withService(join(instance, 'etc/service/hello'), async () => {
          const response = await fetch(connection.url, { signal: AbortSignal.timeout(5000) });
          return (await response.text()).trim();
        }));
        io.stdout(`    the instance says: ${greeting}\n`);
        io.stdout('Done: the service is stopped and the demo folder removed. Next: the mesh (see the issues).\n');
        setExit(EXIT_OK);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    });
}


/** Runs a service (in its own process group) until `body` is done; it is ready once it prints `listening on`. */
async function withService<T>(path: string, body: () => Promise<T>): Promise<T> {
  const service = spawn(path, [], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new CliError(`${path} did not start listening in time`)), SERVICE_START_TIMEOUT_MS);
      createInterface({ input: service.stdout! }).on('line', (line) => {
        if (line.startsWith('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      service.once('exit', (code) => {
        clearTimeout(timer);
        reject(new CliError(`${path} exited (${code}) before listening`));
      });
    });
    return await body();
  } finally {
    if (service.exitCode === null && service.signalCode === null) {
      process.kill(-service.pid!, 'SIGTERM');
      await once(service, 'exit');
    }
  }
}
