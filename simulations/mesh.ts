// The harness of the scenarios (design.md §9): N real nodes, each a `slapmesh node start` process of its own
// with its own data directory under one temporary folder, listening on loopback TCP and joining through the
// first nodes (the seeds). It talks to them through their control sockets, exactly as the CLI does, can kill
// one with SIGKILL and start it again on the same data directory (and address), and stops everything — and
// removes the folder — whatever happened to the run.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { callControl, type CallOptions } from '../node/control.js';
import { prepareDataDir } from '../node/data-dir.js';
import { loadOrCreateIdentity } from '../node/identity.js';
import { STORE_FILE } from '../node/store.js';
import { isRecordedGroup, terminateGroup } from '../node/supervisor.js';

/** The bin the nodes run: the one built beside this module. */
export const BIN = fileURLToPath(new URL('../cli/bin.js', import.meta.url));

/** How a node is started; PeerIds of the whole mesh are known before any node starts. */
export interface NodeSpec {
  /** Untrusted peers may request the releases this node supplies. */
  open?: boolean;
  /** Instances this node hosts at most (`--partitions`, default 50). */
  partitions?: number;
  /** PeerIds this node trusts (`--trust`). */
  trust?: readonly string[];
  trustAnyBuilder?: boolean;
  private?: boolean;
}

export interface MeshOptions {
  nodes: number;
  /** Each node's flags, given its index and the PeerIds of every node. */
  spec?: (index: number, peerIds: readonly string[]) => NodeSpec;
  /** Nodes the others bootstrap from (default 2, at most `nodes`). */
  seeds?: number;
  /** Nodes started at once after the seeds (default 10): start-up is CPU-bound, a few at a time is fastest. */
  batchSize?: number;
  /**
   * SLAPMESH_ADVERT_INTERVAL_MS of every node (default the node's, 15 s). Shorter costs: on 2 cores, 20 idle nodes
   * took 0.3 cores with adverts every 15 s, 0.76 with every 3 s (gossip forwarding and signature checks).
   */
  advertIntervalMs?: number;
  /** SLAPMESH_HOSTING_LEASE_MS of every node: how long an owner waits before moving an instance off a silent host. */
  hostingLeaseMs?: number;
  progress?: (line: string) => void;
  signal?: AbortSignal;
}

/** A node that exited before it printed its address, or did not print it in time. */
export class NodeStartError extends Error {
  override name = 'NodeStartError';
}

/** Gives up on a node that has not printed its address after this long. */
export const NODE_START_TIMEOUT_MS = 180_000;
/** A node stopped with SIGTERM is killed after this long. */
const STOP_GRACE_MS = 15_000;
/** Lines of a node's stderr kept to explain a failure. */
const STDERR_TAIL_LINES = 20;

export class MeshNode {
  /** The running process; undefined while the node is down. */
  child: ChildProcess | undefined;
  addresses: string[] = [];
  /** Milliseconds from spawn to the address line, one per start. */
  readonly startMs: number[] = [];
  /** Times it was killed with SIGKILL. */
  kills = 0;
  private stderrTail: string[] = [];

  constructor(
    readonly index: number,
    readonly name: string,
    readonly dataDir: string,
    readonly peerId: string,
    readonly args: readonly string[],
  ) {}

  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The listening TCP port (kept across restarts, so that peers can reach the node where they knew it). */
  get port(): number | undefined {
    const match = /\/tcp\/(\d+)/.exec(this.addresses[0] ?? '');
    return match ? Number(match[1]) : undefined;
  }

  /** One request to the node's control socket, as the CLI sends it. */
  call<T = unknown>(method: string, params: unknown = {}, options: CallOptions = {}): Promise<T> {
    return callControl(this.dataDir, method, params, options) as Promise<T>;
  }

  /** The last lines the node wrote on stderr (its log), to say why it failed. */
  stderr(): string {
    return this.stderrTail.join('\n');
  }

  /** @internal the mesh's */
  keepStderr(child: ChildProcess): void {
    this.stderrTail = [];
    createInterface({ input: child.stderr! }).on('line', (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
    });
  }
}

/** One change of the number of nodes alive: ms since the mesh was created, and the count. */
export type AliveSample = [ms: number, alive: number];

export class Mesh {
  readonly nodes: MeshNode[];
  /** Nodes alive over time, from 0 (one sample per change). */
  readonly alive: AliveSample[] = [[0, 0]];
  private readonly createdAt = performance.now();
  private stopped = false;
  private readonly onExit = () => this.killAllNow();

  private constructor(readonly root: string, nodes: MeshNode[], private readonly options: MeshOptions) {
    this.nodes = nodes;
    // Should the run end without stop() (an uncaught error), no node outlives it.
    process.once('exit', this.onExit);
  }

  /** Prepares the data directories and the identities (so that every PeerId is known), starting nothing. */
  static async create(options: MeshOptions): Promise<Mesh> {
    if (!Number.isInteger(options.nodes) || options.nodes < 1) throw new RangeError(`a mesh needs a positive number of nodes, not ${options.nodes}`);
    const root = mkdtempSync(join(tmpdir(), 'slapmesh-sim-'));
    try {
      const width = String(options.nodes - 1).length;
      const dirs = Array.from({ length: options.nodes }, (_, i) => join(root, `n${String(i).padStart(width, '0')}`));
      const peerIds = await Promise.all(dirs.map(async (dir) => {
        prepareDataDir(dir);
        return peerIdFromPrivateKey(await loadOrCreateIdentity(dir)).toString();
      }));
      const nodes = dirs.map((dir, i) => {
        const spec = options.spec?.(i, peerIds) ?? {};
        return new MeshNode(i, `n${String(i).padStart(width, '0')}`, dir, peerIds[i]!, flagsOf(spec));
      });
      return new Mesh(root, nodes, options);
    } catch (error) {
      rmSync(root, { recursive: true, force: true });
      throw error;
    }
  }

  /** Milliseconds since the mesh was created: the time axis of every scenario. */
  now(): number {
    return performance.now() - this.createdAt;
  }

  get seeds(): MeshNode[] {
    return this.nodes.slice(0, Math.max(1, Math.min(this.options.seeds ?? 2, this.nodes.length)));
  }

  aliveNodes(): MeshNode[] {
    return this.nodes.filter((node) => node.alive);
  }

  /** Starts the first seed, then the other seeds through it, then everyone else in batches through the seeds. */
  async start(): Promise<void> {
    await this.warmCompileCache();
    const [first, ...otherSeeds] = this.seeds;
    await this.startNode(first!);
    await Promise.all(otherSeeds.map((node) => this.startNode(node)));
    const rest = this.nodes.slice(this.seeds.length);
    const batch = Math.max(1, this.options.batchSize ?? 10);
    for (let at = 0; at < rest.length; at += batch) {
      this.options.signal?.throwIfAborted();
      await Promise.all(rest.slice(at, at + batch).map((node) => this.startNode(node)));
      this.options.progress?.(`started ${this.seeds.length + Math.min(at + batch, rest.length)}/${this.nodes.length} nodes`);
    }
  }

  /** Starts (or starts again, on its data directory and port) one node; resolves once it printed its address. */
  async startNode(node: MeshNode): Promise<void> {
    if (node.alive) return;
    if (this.stopped) throw new NodeStartError('the mesh is stopped');
    const bootstrap = node.index < this.seeds.length
      ? this.seeds.slice(0, node.index).flatMap((seed) => seed.addresses.slice(0, 1))
      : this.seeds.flatMap((seed) => seed.addresses.slice(0, 1));
    const port = node.port ?? 0;
    try {
      await this.spawnNode(node, bootstrap, port);
    } catch (error) {
      // Its old port was taken meanwhile: any port will do (peers learn the new address from its advert).
      if (port === 0 || !/cannot listen/.test((error as Error).message)) throw error;
      await this.spawnNode(node, bootstrap, 0);
    }
  }

  /**
   * Every node process compiles the same modules (most of its 1.3 s of CPU to start); V8's code cache, written
   * by a process that loads them all and exits, spares each node and each deployment's buildout some of that.
   */
  private async warmCompileCache(): Promise<void> {
    const child = spawn(process.execPath, [BIN, '--version'], { env: this.env(), stdio: 'ignore' });
    await new Promise((resolve) => child.once('exit', resolve).once('error', resolve));
  }

  private env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { NODE_COMPILE_CACHE: join(this.root, '.compile-cache'), ...process.env };
    if (this.options.advertIntervalMs) env['SLAPMESH_ADVERT_INTERVAL_MS'] = String(this.options.advertIntervalMs);
    if (this.options.hostingLeaseMs) env['SLAPMESH_HOSTING_LEASE_MS'] = String(this.options.hostingLeaseMs);
    return env;
  }

  private async spawnNode(node: MeshNode, bootstrap: string[], port: number): Promise<void> {
    const env = this.env();
    const args = [
      BIN, 'node', 'start', '--data-dir', node.dataDir, '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--json',
      ...bootstrap.flatMap((address) => ['--bootstrap', address]), ...node.args,
    ];
    const spawned = performance.now();
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    node.child = child;
    node.keepStderr(child);
    child.once('exit', () => this.recordAlive());
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new NodeStartError(`${node.name} printed no address within ${NODE_START_TIMEOUT_MS / 1000} s: ${node.stderr()}`));
      }, NODE_START_TIMEOUT_MS);
      const lines = createInterface({ input: child.stdout! });
      lines.once('line', (text) => {
        clearTimeout(timer);
        resolve(text);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new NodeStartError(`${node.name} exited (${signal ?? code}) before it listened: ${node.stderr()}`));
      });
    });
    const printed = JSON.parse(line) as { peerId: string; addresses: string[] };
    if (printed.peerId !== node.peerId) throw new NodeStartError(`${node.name} started as ${printed.peerId}, not ${node.peerId}`);
    node.addresses = printed.addresses;
    node.startMs.push(performance.now() - spawned);
    this.recordAlive();
  }

  /** Kills a node with SIGKILL (its services keep running, as after a crash); resolves once it is gone. */
  async kill(node: MeshNode): Promise<void> {
    const child = node.child;
    if (!child || !node.alive) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    node.kills++;
  }

  /** Stops every node (SIGTERM, SIGKILL after a grace period), stops the services of nodes left killed, removes the folder. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.nodes.map((node) => stopChild(node)));
    // A node killed and not started again left its services running: stop them as its restart would have.
    await Promise.all(this.nodes.map((node) => reapServices(node.dataDir)));
    process.off('exit', this.onExit);
    rmSync(this.root, { recursive: true, force: true });
  }

  private recordAlive(): void {
    const count = this.nodes.filter((node) => node.alive).length;
    const last = this.alive[this.alive.length - 1];
    if (last?.[1] !== count) this.alive.push([Math.round(this.now()), count]);
  }

  /** On process exit (no time for anything asynchronous): SIGKILL to every node still running. */
  private killAllNow(): void {
    for (const node of this.nodes) if (node.alive) node.child!.kill('SIGKILL');
  }
}

function flagsOf(spec: NodeSpec): string[] {
  return [
    ...(spec.open ? ['--open'] : []),
    ...(spec.private ? ['--private'] : []),
    ...(spec.trustAnyBuilder ? ['--trust-any-builder'] : []),
    ...(spec.partitions !== undefined ? ['--partitions', String(spec.partitions)] : []),
    ...(spec.trust ?? []).flatMap((peer) => ['--trust', peer]),
  ];
}

async function stopChild(node: MeshNode): Promise<void> {
  const child = node.child;
  if (!child || !node.alive) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

/** Stops the process groups a node recorded for its services, if they still run (read as another process would). */
async function reapServices(dataDir: string): Promise<void> {
  let groups: { pgid: number; startedAt: number }[];
  try {
    const db = new DatabaseSync(join(dataDir, STORE_FILE), { readOnly: true });
    try {
      groups = db.prepare('SELECT pgid, started_at FROM services').all().map((row) => ({ pgid: Number(row['pgid']), startedAt: Number(row['started_at']) }));
    } finally {
      db.close();
    }
  } catch {
    return; // no node.db (never started), or no services table yet
  }
  await Promise.all(groups.filter(({ pgid, startedAt }) => isRecordedGroup(pgid, startedAt)).map(({ pgid }) => terminateGroup(pgid, 2_000)));
}
