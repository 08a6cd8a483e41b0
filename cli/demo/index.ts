// `slapmesh demo`, the README's main job: a mesh of two nodes on 127.0.0.1, each with its own data
// directory. A (--open) supplies the example hello release — it builds it; B, which A does not trust,
// requests an instance of it through its control socket as `slapmesh request` does; the mesh places it on
// A (the peer that has the release); the demo prints its URL and the greeting fetched from it, destroys
// the instance and stops both nodes.
import { mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { callControl } from '../../node/control.js';
import type { InstanceJson } from '../../node/instances.js';
import { SlapmeshNode, type NodeOptions } from '../../node/node.js';
import { CliError, EXIT_OK } from '../io.js';
import type { CommandContext } from '../main.js';

const RELEASE = fileURLToPath(new URL('../../../examples/hello/software.cfg', import.meta.url));
const READY_TIMEOUT_MS = 120_000;
/** Adverts every half second: the two nodes learn of each other's releases at once. */
const ADVERT_INTERVAL_MS = 500;

export function registerDemo(program: Command, { io, setExit }: CommandContext): void {
  program
    .command('demo')
    .description('a two-node mesh on 127.0.0.1: one supplies the hello release, the other requests an instance of it')
    .action(async () => {
      const work = mkdtempSync(join(tmpdir(), 'slapmesh-demo-'));
      const nodes: SlapmeshNode[] = [];
      const step = async <T>(title: string, body: () => Promise<T>): Promise<T> => {
        const started = performance.now();
        const result = await body();
        io.stdout(`  ${title} (${((performance.now() - started) / 1000).toFixed(2)} s)\n`);
        return result;
      };
      const start = async (name: string, extra: Partial<NodeOptions>) => {
        const node = new SlapmeshNode({
          dataDir: join(work, name), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], trust: [], open: false, private: false,
          trustAnyBuilder: false, partitions: 5, verbose: false, advertIntervalMs: ADVERT_INTERVAL_MS,
          stderr: () => undefined, // each node logs to node.log in its data directory
          ...extra,
        });
        nodes.push(node);
        await node.start();
        return node;
      };
      try {
        io.stdout(`slapmesh demo: a mesh of two nodes on 127.0.0.1, in ${work}\n`);
        const a = await step('started node A (--open: untrusted peers may request the releases it supplies)', () => start('a', { open: true }));
        const b = await step('started node B, joined through A', () => start('b', { bootstrap: [a.addresses()[0]!] }));
        io.stdout(`    A ${a.peerId}\n    B ${b.peerId}\n`);
        const supplied = await step('A supplied the hello release: bundled, built (configure, make, make install), artifact cached', () => a.supply(RELEASE));
        io.stdout(`    release ${supplied.name} ${supplied.cid}\n`);
        await step("B received A's advert listing the release", () => advertised(b, a.peerId, supplied.cid));
        const { instance, reached } = await step('B requested instance "hello" with name=World: placed on A, deployed, service started, promise passed', () =>
          callControl(b.options.dataDir, 'request', {
            reference: 'hello', release: supplied.cid, type: 'default', parameters: { name: 'World' }, state: 'started', waitMs: READY_TIMEOUT_MS,
          }, { idleTimeoutMs: READY_TIMEOUT_MS + 10_000 }) as Promise<{ instance: InstanceJson; reached: boolean }>);
        if (!reached) throw new CliError(`the instance is not ready: ${instance.status}${instance.message ? `: ${instance.message}` : ''} (logs: ${join(work, 'a', 'node.log')})`);
        const url = instance.connection['url'];
        if (!url) throw new CliError('the instance published no url');
        io.stdout(`    host ${instance.host === a.peerId ? 'A' : instance.host}, url ${url}\n`);
        const greeting = await step('fetched the url', async () => {
          const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
          return (await response.text()).trim();
        });
        io.stdout(`    the instance says: ${greeting}\n`);
        await step('B destroyed the instance: A stopped its service and freed the partition', () =>
          callControl(b.options.dataDir, 'instance.destroy', { reference: 'hello' }, { idleTimeoutMs: 60_000 }));
        await Promise.allSettled(nodes.reverse().map((node) => node.stop()));
        io.stdout('Done: both nodes stopped and the demo folder removed. Next: README.md, "The command line".\n');
        setExit(EXIT_OK);
      } finally {
        await Promise.allSettled(nodes.map((node) => node.stop()));
        rmSync(work, { recursive: true, force: true });
      }
    });
}

/** Resolves once `node` holds an advert of `peer` listing `release`. */
async function advertised(node: SlapmeshNode, peer: string, release: string): Promise<void> {
  const signal = AbortSignal.timeout(30_000);
  while (!node.table.get(peer)?.advert.releases.some((r) => r.cid === release)) {
    await once(node.table, 'peer:updated', { signal });
  }
}
