// npm run bench:cache — the build cache between two nodes, each in a process of its own on 127.0.0.1
// (a provider and a fetcher, with the node's libp2p host: TCP, Noise, Yamux). Parts, all by default:
//   fetch — an artifact of --size-mib MiB (random bytes) moved (a) over a bare libp2p stream that only
//           writes the bytes, the fetcher draining them, and (b) by fetchBlob with the artifact's chunk
//           hashes (each chunk checked, written, the whole checked, synced and renamed into the fetcher's
//           blob store), and two ways in between (WAYS); target (b)/(a) ≥ 0.8.
//   supply — (1) supplying a realistic release (SQLite from Debian's sources) on node B from node A's
//           artifact, against A building it from source (scripts/bench-supply.ts); target ≥ 20× faster.
// Options: --part NAME (repeatable), --size-mib N (256), --runs N (5, after one warm-up round), --json (one
// JSON object per part on stdout), --cpu-prof-dir DIR (CPU profiles of both child processes).
// Figures are the median of the runs; each round times every way back to back; every run is printed too.
import './as-a-node.js'; // first: V8's flags as a node's
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { BlobStore } from '../node/cache/blob-store.js';
import { fetchBlob } from '../node/cache/fetch.js';
import { createHost, type Host } from '../node/host.js';
import type { Logger } from '../node/log.js';
import { cacheProtocol } from '../protocols/cache/index.js';
import { benchSupply } from './bench-supply.js';
import { machineTicks, stealShare } from './machine.js';

const SELF = fileURLToPath(import.meta.url);
const MiB = 2 ** 20;
/** The bare stream's protocol: the provider writes the artifact's bytes and closes; nothing else. */
const BARE_PROTOCOL = '/slapmesh/bench/bytes/1.0.0';
/** The same, the bytes read from the blob store as the cache protocol reads them. */
const BARE_FILE_PROTOCOL = '/slapmesh/bench/file/1.0.0';
/** The bare stream writes the bytes in pieces of this size (as the cache protocol reads them from disk). */
const BARE_PIECE_BYTES = MiB;
/** /proc's unit of CPU time (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = 100;

interface Options {
  sizeMiB: number;
  runs: number;
  cpuProfDir: string | undefined;
}

/** Runs of one way of moving the bytes, in MiB/s, and their median and best. */
interface Series {
  mibPerSecond: number[];
  median: number;
  best: number;
}

/**
 * The ways the fetch part moves the artifact, each timed in turn in every round:
 *   bare       (a) the bare stream, the provider writing the bytes from memory;
 *   bare-file      the same, the provider reading them from its blob store as the cache protocol does;
 *   get            the cache protocol's get, the fetcher draining the body (no check, nothing written);
 *   fetchBlob  (b) fetchBlob with the chunk hashes, into the fetcher's blob store.
 */
const WAYS = ['bare', 'bare-file', 'get', 'fetchBlob'] as const;
type Way = typeof WAYS[number];

interface FetchPartResult {
  part: 'fetch';
  sizeMiB: number;
  runs: number;
  /**
   * MiB/s of each way, and the CPU both processes used meanwhile (medians; NaN without /proc): in cores, and
   * in CPU-seconds for the whole artifact (what the way costs, whether or not the cores were all busy).
   */
  ways: Record<Way, Series & { cores: number; cpuSeconds: number }>;
  /** fetchBlob's median over the bare stream's median (target ≥ 0.8). */
  ratio: number;
  /**
   * The bare stream's CPU-seconds over fetchBlob's: the ratio the speeds would have on cores both ways keep
   * busy. Steadier than `ratio`, which also depends on how much of the two cores each way leaves idle.
   */
  cpuRatio: number;
  /** The share of the machine's CPU time the hypervisor took meanwhile (scripts/machine.ts). */
  steal: number;
}

/** A part's outcome: its figures (printed as one JSON line with --json), and how to print them for people. */
interface PartOutcome {
  result: object;
  print(): void;
}

/** The parts of this benchmark, in the order they run. */
const parts: Record<string, (options: Options) => Promise<PartOutcome>> = {
  supply: async () => {
    const result = { part: 'supply', ...await benchSupply() };
    return {
      result,
      print: () => {
        console.log(`supply: ${result.release}, two node processes`);
        console.log(`  built from source on A           ${result.buildSeconds.toFixed(2).padStart(8)} s`);
        console.log(`  supplied on B from A's artifact  ${result.fetchSeconds.toFixed(2).padStart(8)} s`);
        console.log(`  speed-up = ${result.speedup.toFixed(0)}x (target >= 20x)`);
      },
    };
  },
  fetch: async (options) => {
    const result = await fetchPart(options);
    return { result, print: () => printFetchPart(result) };
  },
};

// ---- part "fetch": fetching a blob from a peer vs a bare libp2p stream -------------------------------

async function fetchPart(options: Options): Promise<FetchPartResult> {
  const provider = startChild(['--role', 'provider', '--size-mib', String(options.sizeMiB)], options.cpuProfDir);
  let fetcher: Child | undefined;
  try {
    const artifact = await provider.next() as Artifact;
    fetcher = startChild(['--role', 'fetcher', '--address', artifact.address], options.cpuProfDir);
    await fetcher.next();
    const ticksBefore = machineTicks();
    const speeds = Object.fromEntries(WAYS.map((way) => [way, [] as number[]])) as Record<Way, number[]>;
    const cores = Object.fromEntries(WAYS.map((way) => [way, [] as number[]])) as Record<Way, number[]>;
    const cpu = Object.fromEntries(WAYS.map((way) => [way, [] as number[]])) as Record<Way, number[]>;
    for (let run = -1; run < options.runs; run++) { // run -1 warms everything up
      for (const way of WAYS) {
        const before = cpuSeconds(provider) + cpuSeconds(fetcher);
        const { seconds } = await fetcher.ask({ way, artifact }) as { seconds: number };
        if (run < 0) continue;
        speeds[way].push(options.sizeMiB / seconds);
        const used = cpuSeconds(provider) + cpuSeconds(fetcher) - before;
        cores[way].push(used / seconds);
        cpu[way].push(used);
      }
    }
    const ways = Object.fromEntries(WAYS.map((way) => [way, { ...series(speeds[way]), cores: series(cores[way]).median, cpuSeconds: series(cpu[way]).median }])) as FetchPartResult['ways'];
    const steal = stealShare(ticksBefore, machineTicks());
    return { part: 'fetch', sizeMiB: options.sizeMiB, runs: options.runs, ways, ratio: ways.fetchBlob.median / ways.bare.median,
      cpuRatio: ways.bare.cpuSeconds / ways.fetchBlob.cpuSeconds, steal };
  } finally {
    await Promise.all([fetcher?.stop(), provider.stop()]);
  }
}

function printFetchPart(result: FetchPartResult): void {
  const labels: Record<Way, string> = {
    bare: '(a) bare libp2p stream', 'bare-file': '    bare stream, from the file', get: '    cache get, drained', fetchBlob: '(b) fetchBlob, chunk hashes',
  };
  console.log(`fetch: ${result.sizeMiB} MiB from a provider process to a fetcher process, median of ${result.runs} runs (after a warm-up)`);
  for (const way of WAYS) {
    const { median, mibPerSecond, cores, cpuSeconds: used } = result.ways[way];
    console.log(`  ${labels[way].padEnd(32)} ${median.toFixed(0).padStart(5)} MiB/s  (runs: ${mibPerSecond.map((v) => v.toFixed(0)).join(', ')}; ${cores.toFixed(2)} of ${availableParallelism()} cores busy, ${used.toFixed(2)} CPU-s)`);
  }
  console.log(`  (b)/(a) = ${result.ratio.toFixed(2)} (target >= 0.8); by CPU-seconds, (a)/(b) = ${result.cpuRatio.toFixed(2)}`);
  console.log(`  stolen by the hypervisor meanwhile: ${(100 * result.steal).toFixed(0)}% of the machine's CPU time`);
}

/** What the provider holds: where it listens, and the artifact's CID, size and chunk hashes (a cache entry's). */
interface Artifact {
  address: string;
  cid: string;
  size: number;
  chunks: string[];
}

/** The provider: an artifact of random bytes in its blob store, served by the cache protocol and the bare one. */
async function provider(sizeMiB: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'slapmesh-bench-provider-'));
  try {
    const store = new BlobStore(join(dir, 'cache'));
    await store.init();
    const bytes = randomBytes(sizeMiB * MiB);
    const put = await store.putBytes(bytes);
    const host = await benchHost();
    const cache = cacheProtocol({ blobs: store })({ libp2p: host, logger: quiet() });
    await cache.start();
    await host.handle(BARE_PROTOCOL, async (stream: Stream) => {
      for (let at = 0; at < bytes.byteLength; at += BARE_PIECE_BYTES) {
        if (!stream.send(bytes.subarray(at, at + BARE_PIECE_BYTES))) await stream.onDrain();
      }
      await stream.close();
    });
    await host.handle(BARE_FILE_PROTOCOL, async (stream: Stream) => {
      const blob = (await store.open(put.cid))!;
      for await (const piece of blob.stream() as AsyncIterable<Buffer>) {
        if (!stream.send(piece)) await stream.onDrain();
      }
      await stream.close();
    });
    const artifact: Artifact = { address: host.getMultiaddrs()[0]!.toString(), cid: put.cid, size: put.size, chunks: put.chunks };
    reply(artifact);
    for await (const _ of createInterface({ input: process.stdin })); // until the parent closes stdin
    await cache.stop();
    await host.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The fetcher: connects to the provider, then times each run the parent asks for. */
async function fetcher(address: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'slapmesh-bench-fetcher-'));
  try {
    const store = new BlobStore(join(dir, 'cache'));
    await store.init();
    const host = await benchHost();
    const cache = cacheProtocol({ blobs: store })({ libp2p: host, logger: quiet() });
    const peer = (await host.dial(multiaddr(address))).remotePeer;
    reply({ ready: true });
    for await (const line of createInterface({ input: process.stdin })) {
      const { way, artifact } = JSON.parse(line) as { way: Way; artifact: Artifact };
      const start = performance.now();
      switch (way) {
        case 'bare': await drain(await host.dialProtocol(peer, BARE_PROTOCOL), artifact.size); break;
        case 'bare-file': await drain(await host.dialProtocol(peer, BARE_FILE_PROTOCOL), artifact.size); break;
        case 'get': await drain((await cache.get(peer, artifact.cid)).body, artifact.size); break;
        case 'fetchBlob': await fetchBlob({ store, client: cache, cid: artifact.cid, size: artifact.size, chunks: artifact.chunks, providers: [peer] }); break;
      }
      const seconds = (performance.now() - start) / 1000;
      if (way === 'fetchBlob') await store.remove(artifact.cid);
      reply({ seconds });
    }
    await host.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function drain(source: AsyncIterable<{ byteLength: number }>, size: number): Promise<void> {
  let received = 0;
  for await (const bytes of source) received += bytes.byteLength;
  if (received !== size) throw new Error(`${received} bytes came, not ${size}`);
}

// ---- plumbing ------------------------------------------------------------------------------------------

/** A node's libp2p host as `slapmesh node start` makes it, on a random loopback port. */
async function benchHost(): Promise<Host> {
  const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], isTrusted: () => true, privateMesh: false });
  await host.start();
  return host;
}

function quiet(): Logger {
  const log = (() => undefined) as unknown as Logger;
  log.error = (message) => process.stderr.write(`${message}\n`);
  log.debug = () => undefined;
  return log;
}

/** A child speaks one JSON object per line on stdout; the parent asks one JSON line at a time on stdin. */
function reply(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

interface Child {
  pid: number;
  next(): Promise<unknown>;
  ask(request: unknown): Promise<unknown>;
  /** Closes its stdin (it stops its node and exits, writing its profile) and waits for it to exit. */
  stop(): Promise<void>;
}

function startChild(args: string[], cpuProfDir: string | undefined): Child {
  const execArgv = cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : [];
  const child: ChildProcess = spawn(process.execPath, [...execArgv, SELF, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  const next = async () => {
    const line = await Promise.race([lines.next(), exited.then(([code]) => {
      throw new Error(`${args.join(' ')} exited with status ${code}`);
    })]);
    if (line.done) throw new Error(`${args.join(' ')} closed its output`);
    return JSON.parse(line.value) as unknown;
  };
  return {
    pid: child.pid!,
    next,
    async ask(request) {
      child.stdin!.write(`${JSON.stringify(request)}\n`);
      return next();
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin!.end();
      const [code] = await exited;
      if (code !== 0) throw new Error(`${args.join(' ')} exited with status ${code}`);
    },
  };
}

/** CPU time (user and system, all threads) a child has used so far, from /proc; NaN elsewhere. */
function cpuSeconds(child: Child): number {
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

function series(values: number[]): Series {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { mibPerSecond: values, median, best: sorted[sorted.length - 1]! };
}

// ---- main ----------------------------------------------------------------------------------------------

const { values } = parseArgs({
  options: {
    role: { type: 'string' },
    address: { type: 'string' },
    part: { type: 'string', multiple: true },
    'size-mib': { type: 'string', default: '256' },
    runs: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
    'cpu-prof-dir': { type: 'string' },
  },
});
const sizeMiB = Number(values['size-mib']);
if (values.role === 'provider') await provider(sizeMiB);
else if (values.role === 'fetcher') await fetcher(values.address!);
else {
  const runs = Number(values.runs);
  if (!Number.isInteger(sizeMiB) || sizeMiB < 1 || !Number.isInteger(runs) || runs < 1) throw new Error('--size-mib and --runs are whole numbers from 1 up');
  const chosen = values.part ?? Object.keys(parts);
  for (const name of chosen) if (!(name in parts)) throw new Error(`unknown part ${name} (parts: ${Object.keys(parts).join(', ')})`);
  for (const name of chosen) {
    const outcome = await parts[name]!({ sizeMiB, runs, cpuProfDir: values['cpu-prof-dir'] });
    if (values.json) console.log(JSON.stringify(outcome.result));
    else outcome.print();
  }
}
