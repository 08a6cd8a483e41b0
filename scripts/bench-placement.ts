// npm run bench:placement — placing and deploying instances over a mesh (issue 6): --nodes nodes (20) with
// --partitions partitions each (50), in this process on 127.0.0.1, dealt to --threads threads (one per core);
// the hello release built on the first and supplied from its artifact on the others, so that it is cached
// everywhere before timing starts, and the nodes left to settle (see SETTLED_BUSY_SHARE); then --requests
// requests (500) at --rate per second (50), open-loop (each fired at its own time, whether or not the ones
// before were answered), spread over --requesters nodes (5, all in the first thread), each with its own
// reference and parameters {name}. Per request: time to accepted (the control socket's `request` without
// waitMs answered: placed and confirmed) and to ready (the owner's record says ready: promise passed, url
// published), both from the moment the request was due. Then checks:
// instances per node ≤ partitions, the hosted total equals the accepted count, a sample of --check urls (20)
// answer with their name. Targets: accepted p50 < 50 ms, p99 < 250 ms; ready p50 < 1.5 s, p99 < 3 s.
// --json prints one JSON object.
//
// One process, its nodes in a thread per core: the owner's `instance:changed` events give the moment of
// readiness without polling, /proc/self/stat gives the CPU of the nodes (all threads), /proc/<pid>/stat that
// of the buildout runners (node/buildout-runners.ts, two per thread) and program launchers (node/launcher.ts).
// A thread per core rather than per node: each node in a worker thread of its own did far worse on 2 cores —
// 52 CPU-s in the nodes instead of 20, 37 requests refused — twenty isolates each compiling the same code
// during the burst, and each starting buildout runners of its own.
import './as-a-node.js'; // first: V8's flags as a node's
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { callControl } from '../node/control.js';
import type { InstanceJson } from '../node/instances.js';
import { SlapmeshNode, type NodeOptions } from '../node/node.js';
import type { StoredOwned } from '../node/store.js';
import { machineTicks, stealShare } from './machine.js';

const RELEASE = fileURLToPath(new URL('../../examples/hello/software.cfg', import.meta.url));
/** /proc's unit of CPU time (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = 100;
/** Below this much available memory the run stops: a backlog of buildout processes must not take the machine down. */
const MIN_AVAILABLE_BYTES = 2 * 2 ** 30;
const SETUP_TIMEOUT_MS = 300_000;
/**
 * Timing starts once every thread of nodes is this idle (its event loop busy for less than this share of a
 * SETTLE_STEP_MS), or after SETTLE_MAX_MS: supplying the release leaves the nodes busy for a while with what
 * follows it (providing its CIDs in the DHT, the peer store's updates) — the cache's work, not placement's.
 */
const SETTLED_BUSY_SHARE = 0.2;
const SETTLE_STEP_MS = 500;
const SETTLE_MAX_MS = 60_000;

interface Options {
  nodes: number;
  /** Threads the nodes are spread over (the first holds the requesters). */
  threads: number;
  partitions: number;
  requests: number;
  rate: number;
  requesters: number;
  check: number;
  timeoutS: number;
  json: boolean;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '20' },
      partitions: { type: 'string', default: '50' },
      requests: { type: 'string', default: '500' },
      rate: { type: 'string', default: '50' },
      requesters: { type: 'string', default: '5' },
      check: { type: 'string', default: '20' },
      threads: { type: 'string', default: String(availableParallelism()) },
      'timeout-s': { type: 'string', default: '600' },
      json: { type: 'boolean', default: false },
    },
  });
  const number = (name: keyof typeof values) => {
    const value = Number(values[name]);
    if (!(value > 0)) throw new Error(`--${name} must be a positive number`);
    return value;
  };
  return {
    nodes: number('nodes'), threads: Math.min(Math.floor(number('threads')), number('nodes')), partitions: number('partitions'), requests: number('requests'), rate: number('rate'),
    requesters: Math.min(number('requesters'), number('nodes')), check: number('check'), timeoutS: number('timeout-s'), json: values.json,
  };
}

// ---- the mesh ----

async function startNode(work: string, name: string, extra: Partial<NodeOptions>): Promise<SlapmeshNode> {
  const node = new SlapmeshNode({
    dataDir: join(work, name), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], trust: [], open: true, private: false,
    trustAnyBuilder: false, partitions: 50, verbose: false, stderr: () => undefined, ...extra,
  });
  await node.start();
  return node;
}

/** A node that joins through `seed` and trusts the builder's artifacts. */
function joinNode(work: string, name: string, partitions: number, seed: string, builder: string): Promise<SlapmeshNode> {
  return startNode(work, name, { partitions, bootstrap: [seed], trust: [builder] });
}

/** Each node supplies the release from the builder's artifact, once the builder's advert lists it. */
async function supplyFromBuilder(nodes: readonly SlapmeshNode[], builder: string, cid: string, signal: AbortSignal): Promise<void> {
  await Promise.all(nodes.map(async (node) => {
    await seesRelease(node, builder, cid, signal);
    await node.supply(cid);
  }));
}

/** Resolves once `node` holds an advert of `peer` listing `cid`. */
async function seesRelease(node: SlapmeshNode, peer: string, cid: string, signal: AbortSignal): Promise<void> {
  while (!node.table.get(peer)?.advert.releases.some((r) => r.cid === cid)) await once(node.table, 'peer:updated', { signal });
}

interface Setup { startS: number; buildS: number; supplyS: number; advertsS: number; settleS: number; settled: boolean; cid: string }

/** What the main thread tells a thread of nodes, and what it answers. */
type ToNodes = { type: 'supply'; cid: string } | { type: 'stop' };
type FromNodes = { type: 'started'; nodes: ThreadNode[] } | { type: 'supplied' } | { type: 'stopped' } | { type: 'failed'; message: string };

interface ThreadNode { peerId: string; dataDir: string }

interface NodesInit { work: string; names: string[]; partitions: number; seed: string; builder: string }

/** The nodes of another thread, as the main thread drives them. */
class NodeThread {
  readonly worker: Worker;
  readonly nodes: ThreadNode[] = [];
  private readonly replies: FromNodes[] = [];
  private wake: (() => void) | undefined;

  constructor(init: NodesInit) {
    this.worker = new Worker(fileURLToPath(import.meta.url), { workerData: init });
    this.worker.on('message', (reply: FromNodes) => { this.replies.push(reply); this.wake?.(); });
    this.worker.on('error', (error) => { this.replies.push({ type: 'failed', message: error.message }); this.wake?.(); });
  }

  async next(type: FromNodes['type']): Promise<void> {
    for (;;) {
      const reply = this.replies.shift();
      if (reply?.type === 'failed') throw new Error(`a thread of nodes failed: ${reply.message}`);
      if (reply?.type === type) {
        if (reply.type === 'started') this.nodes.push(...reply.nodes);
        return;
      }
      if (reply === undefined) await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  send(message: ToNodes): void {
    this.worker.postMessage(message);
  }
}

/** A thread of nodes: starts them, supplies the release when told, stops them when told. */
async function serveNodes(init: NodesInit): Promise<void> {
  const port = parentPort!;
  const nodes: SlapmeshNode[] = [];
  try {
    await Promise.all(init.names.map(async (name) => {
      nodes.push(await joinNode(init.work, name, init.partitions, init.seed, init.builder));
    }));
    port.postMessage({ type: 'started', nodes: nodes.map((node) => ({ peerId: node.peerId, dataDir: node.options.dataDir })) } satisfies FromNodes);
  } catch (error) {
    port.postMessage({ type: 'failed', message: (error as Error).message } satisfies FromNodes);
  }
  port.on('message', (message: ToNodes) => {
    if (message.type === 'supply') {
      supplyFromBuilder(nodes, init.builder, message.cid, AbortSignal.timeout(SETUP_TIMEOUT_MS)).then(
        () => port.postMessage({ type: 'supplied' } satisfies FromNodes),
        (error: Error) => port.postMessage({ type: 'failed', message: error.message } satisfies FromNodes),
      );
    } else {
      void Promise.allSettled(nodes.map((node) => node.stop())).then(() => {
        port.postMessage({ type: 'stopped' } satisfies FromNodes);
        port.close();
      });
    }
  });
}

/**
 * Every node --open (they all supply the release, so any requester is admitted) and trusting the builder's
 * artifacts; the builder builds, the others supply from its artifact, then every requester waits for every
 * node's advert listing the release (so that placement ranks all of them as holders). The nodes are dealt
 * to --threads threads: this one holds the builder and the requesters.
 */
async function setUp(options: Options, work: string, nodes: SlapmeshNode[], threads: NodeThread[]): Promise<Setup> {
  const signal = AbortSignal.timeout(SETUP_TIMEOUT_MS);
  let mark = performance.now();
  const lap = () => { const now = performance.now(); const s = (now - mark) / 1000; mark = now; return s; };
  const builder = await startNode(work, 'n0', { partitions: options.partitions });
  nodes.push(builder);
  const seed = builder.addresses()[0]!;
  const names = Array.from({ length: options.nodes - 1 }, (_, i) => `n${i + 1}`);
  const mine = Math.max(options.requesters, Math.ceil(options.nodes / options.threads)) - 1;
  const theirs = names.slice(mine);
  const perThread = Math.ceil(theirs.length / Math.max(1, options.threads - 1));
  for (let i = 0; i < theirs.length; i += perThread) {
    threads.push(new NodeThread({ work, names: theirs.slice(i, i + perThread), partitions: options.partitions, seed, builder: builder.peerId }));
  }
  await Promise.all([
    ...names.slice(0, mine).map(async (name) => {
      nodes.push(await joinNode(work, name, options.partitions, seed, builder.peerId));
    }),
    ...threads.map((thread) => thread.next('started')),
  ]);
  const startS = lap();
  const { cid } = await builder.supply(RELEASE);
  const buildS = lap();
  for (const thread of threads) thread.send({ type: 'supply', cid });
  await Promise.all([
    supplyFromBuilder(nodes.slice(1), builder.peerId, cid, signal),
    ...threads.map((thread) => thread.next('supplied')),
  ]);
  const supplyS = lap();
  const everyone = [...nodes.map((node) => node.peerId), ...threads.flatMap((thread) => thread.nodes.map((node) => node.peerId))];
  await Promise.all(nodes.slice(0, options.requesters).flatMap((requester) =>
    everyone.filter((peer) => peer !== requester.peerId).map((peer) => seesRelease(requester, peer, cid, signal))));
  const advertsS = lap();
  const settled = await settle(threads);
  return { startS, buildS, supplyS, advertsS, settleS: lap(), settled, cid };
}

/** Waits until this thread and every thread of nodes is idle (see SETTLED_BUSY_SHARE); false after SETTLE_MAX_MS. */
async function settle(threads: readonly NodeThread[]): Promise<boolean> {
  const loops = [performance, ...threads.map((thread) => thread.worker.performance)];
  let last = loops.map((loop) => loop.eventLoopUtilization());
  for (let waited = 0; waited < SETTLE_MAX_MS; waited += SETTLE_STEP_MS) {
    await sleep(SETTLE_STEP_MS);
    const now = loops.map((loop) => loop.eventLoopUtilization());
    const busiest = Math.max(...now.map((elu, i) => loops[i]!.eventLoopUtilization(elu, last[i]).utilization));
    last = now;
    if (busiest < SETTLED_BUSY_SHARE) return true;
  }
  return false;
}

// ---- the requests ----

interface Outcome {
  reference: string;
  name: string;
  requester: string;
  /** ms from the moment the request was due; undefined until it happened. */
  acceptedMs?: number;
  readyMs?: number;
  /** Why it was refused, failed or is in error. */
  failure?: string;
  host?: string;
  url?: string;
}

/** Watches each requester's owned instances: records the moment a request's instance becomes ready (or fails). */
function watchReadiness(requesters: SlapmeshNode[], pending: Map<string, { outcome: Outcome; due: number }>, allDone: () => void): () => void {
  const listeners = requesters.map((node) => {
    const listener = (event: CustomEvent<StoredOwned>) => {
      const entry = pending.get(`${node.peerId}/${event.detail.reference}`);
      if (!entry || entry.outcome.readyMs !== undefined || entry.outcome.failure) return;
      const { status, message, connection } = event.detail;
      if (status === 'ready') {
        entry.outcome.readyMs = performance.now() - entry.due;
        if (connection['url']) entry.outcome.url = connection['url'];
      } else if (status === 'failed' || status === 'error' || status === 'refused') {
        entry.outcome.failure = `${status}${message ? `: ${message}` : ''}`;
      } else return;
      allDone();
    };
    node.instances!.owned.addEventListener('instance:changed', listener);
    return () => node.instances!.owned.removeEventListener('instance:changed', listener);
  });
  return () => listeners.forEach((remove) => remove());
}

interface Fired { outcomes: Outcome[]; firstAt: number; lastDueAt: number; maxLateMs: number; timedOut: boolean }

/** Fires the requests open-loop on their schedule; resolves once each is ready, failed, or the timeout passed. */
async function fire(options: Options, nodes: SlapmeshNode[], cid: string, abort: AbortController): Promise<Fired> {
  const requesters = nodes.slice(0, options.requesters);
  const pending = new Map<string, { outcome: Outcome; due: number }>();
  let settled = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const settle = () => { if (++settled === options.requests) finish(); };
  const unwatch = watchReadiness(requesters, pending, settle);
  const outcomes: Outcome[] = [];
  const start = performance.now() + 100;
  let maxLateMs = 0;
  for (let i = 0; i < options.requests; i++) {
    const requester = requesters[i % requesters.length]!;
    const outcome: Outcome = { reference: `bench-${i}`, name: `bench${i}`, requester: requester.peerId };
    const due = start + (i * 1000) / options.rate;
    outcomes.push(outcome);
    pending.set(`${requester.peerId}/${outcome.reference}`, { outcome, due });
    setTimeout(() => {
      maxLateMs = Math.max(maxLateMs, performance.now() - due);
      void request(requester, outcome, cid, due).then((refused) => { if (refused) settle(); });
    }, Math.max(0, due - performance.now()));
  }
  const lastDueAt = start + ((options.requests - 1) * 1000) / options.rate;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), lastDueAt - performance.now() + options.timeoutS * 1000);
    abort.signal.addEventListener('abort', () => resolve('timeout'), { once: true });
  });
  const timedOut = (await Promise.race([finished, timeout])) === 'timeout';
  clearTimeout(timer); // else it keeps the process alive after the run
  unwatch();
  return { outcomes, firstAt: start, lastDueAt, maxLateMs, timedOut };
}

/** One request through the control socket, as `slapmesh request` makes it; true when it was refused. */
async function request(requester: SlapmeshNode, outcome: Outcome, cid: string, due: number): Promise<boolean> {
  try {
    const { instance } = (await callControl(requester.options.dataDir, 'request', {
      reference: outcome.reference, release: cid, type: 'default', parameters: { name: outcome.name }, state: 'started',
    }, { idleTimeoutMs: 120_000 })) as { instance: InstanceJson };
    outcome.acceptedMs = performance.now() - due;
    if (instance.host) outcome.host = instance.host;
    return false;
  } catch (error) {
    // A failure event may have come first (a refused placement records nothing): count it once.
    if (outcome.failure) return false;
    outcome.failure = `refused: ${(error as Error).message}`;
    return true;
  }
}

// ---- checks ----

interface Checks { perNode: number[]; overCapacity: number; hostedTotal: number; hostedReady: number; urlsChecked: number; urlsWrong: string[] }

async function check(options: Options, dataDirs: string[], outcomes: Outcome[]): Promise<Checks> {
  const lists = await Promise.all(dataDirs.map((dataDir) => callControl(dataDir, 'instance.list', { hosted: true }) as Promise<InstanceJson[]>));
  const perNode = lists.map((list) => list.length);
  const ready = outcomes.filter((o) => o.url);
  const sample = ready.filter((_, i) => i % Math.max(1, Math.floor(ready.length / options.check)) === 0).slice(0, options.check);
  const urlsWrong: string[] = [];
  for (const outcome of sample) {
    try {
      const text = await (await fetch(outcome.url!, { signal: AbortSignal.timeout(5000) })).text();
      if (!text.includes(outcome.name)) urlsWrong.push(`${outcome.url}: ${text.trim().slice(0, 80)}`);
    } catch (error) {
      urlsWrong.push(`${outcome.url}: ${(error as Error).message}`);
    }
  }
  return {
    perNode, overCapacity: perNode.filter((n) => n > options.partitions).length, hostedTotal: perNode.reduce((a, b) => a + b, 0),
    hostedReady: lists.flat().filter((h) => h.status === 'ready').length, urlsChecked: sample.length, urlsWrong,
  };
}

// ---- CPU, processes, memory ----

/** CPU seconds from a /proc stat line: its own (utime + stime) and its waited-for children's (cutime + cstime). */
function statSeconds(stat: string): { own: number; waited: number } {
  const fields = stat.split(') ')[1]!.split(' ');
  const tick = (i: number) => Number(fields[i - 3]) / CLOCK_TICKS; // fields numbered from 1, after pid and comm
  return { own: tick(14) + tick(15), waited: tick(16) + tick(17) };
}

/** The pids of this process's children with their command lines. */
function childProcesses(): { pid: string; command: string }[] {
  const found: { pid: string; command: string }[] = [];
  for (const task of readdirSync('/proc/self/task')) {
    let list = '';
    try { list = readFileSync(`/proc/self/task/${task}/children`, 'utf8'); } catch { continue; }
    for (const pid of list.split(' ').filter(Boolean)) {
      try { found.push({ pid, command: readFileSync(`/proc/${pid}/cmdline`, 'utf8') }); } catch { continue; }
    }
  }
  return found;
}

const isRunner = (command: string) => command.includes('buildout-runner.js');
/** The nodes' long-lived helpers: buildout runners and program launchers (their CPU is the nodes' work). */
const isHelper = (command: string) => isRunner(command) || command.includes('launcher-process.js');

/**
 * CPU seconds of this process (the nodes), of its waited-for children (promise scripts, services that
 * exited), and of the helpers alive now, buildout runners and program launchers (with the commands they waited
 * for, the services a launcher started that exited).
 */
function cpuSeconds(): { self: number; children: number; helpers: number } {
  const self = statSeconds(readFileSync('/proc/self/stat', 'utf8'));
  let helpers = 0;
  for (const { pid, command } of childProcesses()) {
    if (!isHelper(command)) continue;
    try {
      const helper = statSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      helpers += helper.own + helper.waited;
    } catch { continue; }
  }
  return { self: self.own, children: self.waited, helpers };
}

/** Children of this process now: buildout runners, and the rest (program launchers, promises). */
function children(): { buildouts: number; others: number } {
  const all = childProcesses();
  const buildouts = all.filter(({ command }) => isRunner(command)).length;
  return { buildouts, others: all.length - buildouts };
}

function availableBytes(): number {
  return Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024;
}

interface Sampler { stop(): { peakBuildouts: number; peakOthers: number; minAvailableGiB: number } }

/** Samples the children and the memory every 250 ms; aborts when memory runs low. */
function sample(abort: AbortController): Sampler {
  let peakBuildouts = 0;
  let peakOthers = 0;
  let minAvailable = Infinity;
  const timer = setInterval(() => {
    const now = children();
    peakBuildouts = Math.max(peakBuildouts, now.buildouts);
    peakOthers = Math.max(peakOthers, now.others);
    minAvailable = Math.min(minAvailable, availableBytes());
    if (minAvailable < MIN_AVAILABLE_BYTES) abort.abort(new Error('memory ran low'));
  }, 250);
  return {
    stop: () => {
      clearInterval(timer);
      return { peakBuildouts, peakOthers, minAvailableGiB: minAvailable / 2 ** 30 };
    },
  };
}

// ---- figures ----

/** Nearest-rank percentile; a request that never got there counts as infinitely slow. */
function percentile(values: (number | undefined)[], p: number): number {
  const sorted = values.map((v) => v ?? Infinity).sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function summary(values: (number | undefined)[]) {
  return { p50: percentile(values, 50), p99: percentile(values, 99), max: percentile(values, 100), count: values.filter((v) => v !== undefined).length };
}

function spread(perNode: number[]) {
  const sorted = [...perNode].sort((a, b) => a - b);
  return { min: sorted[0] ?? 0, median: sorted[Math.floor(sorted.length / 2)] ?? 0, max: sorted[sorted.length - 1] ?? 0 };
}

const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(0)} ms` : 'never');
const s = (v: number) => (Number.isFinite(v) ? `${(v / 1000).toFixed(2)} s` : 'never');

// ---- main ----

async function main(): Promise<void> {
  const options = parseOptions();
  const work = mkdtempSync(join(tmpdir(), 'slapmesh-bench-placement-'));
  const nodes: SlapmeshNode[] = [];
  const threads: NodeThread[] = [];
  const abort = new AbortController();
  try {
    const setup = await setUp(options, work, nodes, threads);
    const sampler = sample(abort);
    const cpuBefore = cpuSeconds();
    const ticksBefore = machineTicks();
    const fired = await fire(options, nodes, setup.cid, abort);
    const wallS = (performance.now() - fired.firstAt) / 1000;
    const cpuAfter = cpuSeconds();
    const ticksAfter = machineTicks();
    const processes = sampler.stop();
    const dataDirs = [...nodes.map((node) => node.options.dataDir), ...threads.flatMap((thread) => thread.nodes.map((node) => node.dataDir))];
    const checks = await check(options, dataDirs, fired.outcomes);
    const { outcomes } = fired;
    const accepted = summary(outcomes.map((o) => o.acceptedMs));
    const ready = summary(outcomes.map((o) => o.readyMs));
    const failures = outcomes.filter((o) => o.failure).map((o) => `${o.reference}: ${o.failure}`);
    const result = {
      options, setup: { ...setup, cid: undefined }, accepted, ready, failures: failures.length, notReady: outcomes.length - ready.count - failures.length,
      stoppedEarly: abort.signal.aborted ? String((abort.signal.reason as Error).message) : undefined, timedOut: fired.timedOut,
      maxLateMs: fired.maxLateMs, spread: spread(checks.perNode), checks,
      cpu: {
        wallS, selfS: cpuAfter.self - cpuBefore.self, childrenS: cpuAfter.children - cpuBefore.children, helpersS: cpuAfter.helpers - cpuBefore.helpers,
        stealShare: stealShare(ticksBefore, ticksAfter),
      }, processes,
      failureSamples: failures.slice(0, 5),
    };
    if (options.json) console.log(JSON.stringify(result));
    else print(result);
  } finally {
    for (const thread of threads) thread.send({ type: 'stop' });
    await Promise.allSettled([...nodes.map((node) => node.stop()), ...threads.map((thread) => thread.next('stopped'))]);
    rmSync(work, { recursive: true, force: true });
  }
}

type Result = {
  options: Options; setup: Omit<Setup, 'cid'>; accepted: ReturnType<typeof summary>; ready: ReturnType<typeof summary>; failures: number; notReady: number;
  stoppedEarly: string | undefined; timedOut: boolean; maxLateMs: number; spread: ReturnType<typeof spread>; checks: Checks;
  cpu: { wallS: number; selfS: number; childrenS: number; helpersS: number; stealShare: number }; processes: ReturnType<Sampler['stop']>; failureSamples: string[];
};

function print(r: Result): void {
  const { options: o, setup, accepted, ready, cpu, processes: p, checks } = r;
  console.log(`bench:placement: ${o.nodes} nodes × ${o.partitions} partitions in one process, ${o.threads} thread${o.threads === 1 ? '' : 's'}; ${o.requests} requests at ${o.rate}/s from ${o.requesters} requesters`);
  console.log(`  setup: ${setup.startS.toFixed(1)} s to start the nodes, ${setup.buildS.toFixed(1)} s to build hello, ${setup.supplyS.toFixed(1)} s to supply it on the others, ${setup.advertsS.toFixed(1)} s for the adverts, ${setup.settleS.toFixed(1)} s for the nodes to settle${setup.settled ? '' : ' (they did not: timed anyway)'}`);
  console.log(`  accepted ${accepted.count}/${o.requests}: p50 ${ms(accepted.p50)}, p99 ${ms(accepted.p99)}, max ${ms(accepted.max)} (targets p50 < 50 ms, p99 < 250 ms)`);
  console.log(`  ready    ${ready.count}/${o.requests}: p50 ${s(ready.p50)}, p99 ${s(ready.p99)}, max ${s(ready.max)} (targets p50 < 1.5 s, p99 < 3 s)`);
  console.log(`  failures ${r.failures}, not ready in time ${r.notReady}${r.timedOut ? ` (gave up ${o.timeoutS} s after the last request)` : ''}${r.stoppedEarly ? `; stopped early: ${r.stoppedEarly}` : ''}`);
  for (const line of r.failureSamples) console.log(`    ${line}`);
  console.log(`  requests fired at most ${r.maxLateMs.toFixed(0)} ms late`);
  console.log(`  instances per node: min ${r.spread.min}, median ${r.spread.median}, max ${r.spread.max} [${checks.perNode.join(' ')}]; hosted ${checks.hostedTotal} (${checks.hostedReady} ready); nodes over capacity: ${checks.overCapacity}`);
  console.log(`  urls checked: ${checks.urlsChecked}, wrong: ${checks.urlsWrong.length}${checks.urlsWrong.map((w) => `\n    ${w}`).join('')}`);
  const deployments = Math.max(1, ready.count);
  const total = cpu.selfS + cpu.childrenS + cpu.helpersS;
  console.log(`  CPU over ${cpu.wallS.toFixed(1)} s: nodes ${cpu.selfS.toFixed(1)} s, runners and launchers ${cpu.helpersS.toFixed(1)} s, exited children ${cpu.childrenS.toFixed(1)} s; ${(total / deployments).toFixed(3)} s per ready instance; ${(total / cpu.wallS).toFixed(2)} cores busy; stolen by the hypervisor: ${(100 * cpu.stealShare).toFixed(0)}% of the machine's CPU time`);
  console.log(`  at most ${p.peakBuildouts} buildout runners and ${p.peakOthers} other child processes at once; memory available at least ${p.minAvailableGiB.toFixed(1)} GiB`);
}

if (isMainThread) await main();
else await serveNodes(workerData as NodesInit);
