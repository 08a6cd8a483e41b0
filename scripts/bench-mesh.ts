// npm run bench:mesh — how fast a mesh converges and what a node costs in memory
// (BENCH_MESH_SHARED=20,50 and BENCH_MESH_PROCESSES=20 choose the sizes):
//   nodes sharing one process (20 and 50), joining one after another and all at once: time from all
//   listening until every node has every other node's advert, and the memory per additional node
//   (targets: 50 nodes < 5 s, < 25 MB per node);
//   one process per node (20): the same time, and the memory of each process.
import './as-a-node.js'; // first: V8's flags as a node's
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { callControl } from '../node/control.js';
import { DEFAULT_ADVERT_INTERVAL_MS, SlapmeshNode } from '../node/node.js';
import { removeTree, writeTree } from '../test/helpers/files.js';

const BIN = fileURLToPath(new URL('../cli/bin.js', import.meta.url));
const ADVERT_INTERVAL_MS = DEFAULT_ADVERT_INTERVAL_MS;

function rssMiB(): number {
  globalThis.gc?.();
  return process.memoryUsage().rss / 2 ** 20;
}

type JoinOrder = 'one after another' | 'all at once';
interface SharedResult { seconds: number; startSeconds: number; perNodeMiB: number }

/**
 * n nodes in this process, joining through the first: one after another (each starts once the one
 * before listens, as nodes join a mesh over time) or all at once (every handshake at the same moment).
 */
async function sharedProcess(n: number, order: JoinOrder): Promise<SharedResult> {
  const dirs = Array.from({ length: n }, () => writeTree({}));
  const nodes: SlapmeshNode[] = [];
  const before = rssMiB();
  try {
    const options = (dataDir: string, bootstrap: string[]) => ({
      dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, trust: [], open: false, private: false, trustAnyBuilder: false,
      partitions: 50, verbose: false, stderr: () => undefined, advertIntervalMs: ADVERT_INTERVAL_MS,
    });
    const launched = performance.now();
    const first = new SlapmeshNode(options(dirs[0]!, []));
    await first.start();
    nodes.push(first);
    const seed = [first.addresses()[0]!];
    const startOne = async (dir: string) => {
      const node = new SlapmeshNode(options(dir, seed));
      nodes.push(node);
      await node.start();
    };
    if (order === 'all at once') await Promise.all(dirs.slice(1).map(startOne));
    else for (const dir of dirs.slice(1)) await startOne(dir);
    const started = performance.now();
    await Promise.all(nodes.map(async (node) => {
      while (node.table.list().length < n - 1) await once(node.table, 'peer:updated');
    }));
    const seconds = (performance.now() - started) / 1000;
    const perNodeMiB = (rssMiB() - before) / n;
    return { seconds, startSeconds: (started - launched) / 1000, perNodeMiB };
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
    dirs.forEach(removeTree);
  }
}

async function processPerNode(n: number): Promise<{ seconds: number; rssMiB: number[] }> {
  const dirs = Array.from({ length: n }, () => writeTree({}));
  const children: ChildProcess[] = [];
  const env = { ...process.env, SLAPMESH_ADVERT_INTERVAL_MS: String(ADVERT_INTERVAL_MS) };
  const start = async (dir: string, bootstrap: string[]): Promise<string> => {
    const child = spawn(process.execPath, [BIN, 'node', 'start', '--data-dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--json', ...bootstrap.flatMap((b) => ['--bootstrap', b])], { env, stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(child);
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
    return (JSON.parse(line) as { addresses: string[] }).addresses[0]!;
  };
  try {
    const seed = await start(dirs[0]!, []);
    await Promise.all(dirs.slice(1).map((dir) => start(dir, [seed])));
    const started = performance.now();
    // Processes cannot be waited on through events from here: ask each node, bounded.
    for (const dir of dirs) {
      for (let i = 0; i < 600; i++) {
        const peers = (await callControl(dir, 'peers')) as unknown[];
        if (peers.length >= n - 1) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const rss = children.map((c) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(join('/proc', String(c.pid), 'status'), 'utf8'))?.[1] ?? 0) / 1024);
    return { seconds, rssMiB: rss };
  } finally {
    await Promise.all(children.map(async (c) => {
      c.kill('SIGTERM');
      if (c.exitCode === null) await once(c, 'exit');
    }));
    dirs.forEach(removeTree);
  }
}

const SELF = fileURLToPath(import.meta.url);

/** Each shared-process case runs in a fresh process of its own, so that its memory is its own. */
async function sharedProcessApart(n: number, order: JoinOrder): Promise<SharedResult> {
  const child = spawn(process.execPath, ['--expose-gc', SELF, '--shared', String(n), order], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`the ${n}-node case (${order}) failed with exit status ${code}`);
  return JSON.parse(output) as SharedResult;
}

if (process.argv[2] === '--shared') {
  console.log(JSON.stringify(await sharedProcess(Number(process.argv[3]), process.argv[4] as JoinOrder)));
} else {
  const sizes = (name: string, fallback: string) => (process.env[name] ?? fallback).split(',').filter(Boolean).map(Number);
  console.log(`bench:mesh (adverts every ${ADVERT_INTERVAL_MS} ms, 127.0.0.1, one bootstrap node)`);
  for (const n of sizes('BENCH_MESH_SHARED', '20,50')) {
    for (const order of ['one after another', 'all at once'] as const) {
      const r = await sharedProcessApart(n, order);
      console.log(`  ${n} nodes in one process, joining ${order}: all listening after ${r.startSeconds.toFixed(1)} s, then converged in ${r.seconds.toFixed(2)} s (target for 50: < 5 s); ${r.perNodeMiB.toFixed(1)} MiB per node (target < 25)`);
    }
  }
  for (const n of sizes('BENCH_MESH_PROCESSES', '20')) {
    const p = await processPerNode(n);
    const mean = p.rssMiB.reduce((a, b) => a + b, 0) / p.rssMiB.length;
    console.log(`  ${n} nodes, one process each: converged in ${p.seconds.toFixed(2)} s, ${mean.toFixed(0)} MiB per process (min ${Math.min(...p.rssMiB).toFixed(0)}, max ${Math.max(...p.rssMiB).toFixed(0)})`);
  }
}
