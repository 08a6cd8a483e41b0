// Partitions (docs/instances.md): numbered slots `<dataDir>/instances/<n>/` that host one instance each, with
// a loopback address of their own (on Linux all of 127/8 is local), a few TCP ports found free by a bind test,
// and the token the partition socket asks for. They are created on demand up to the node's capacity, and
// emptied and given back when an instance is destroyed; node.db records them (store.ts).
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, mkdirSync, readdirSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import type { Logger } from './log.js';
import type { NodeStore, StoredPartition } from './store.js';

export interface PartitionsInit {
  store: NodeStore;
  /** `<dataDir>/instances`. */
  root: string;
  /** At most this many partitions are claimed (and created). */
  capacity: number;
  /** Ports are taken from this range (inclusive) when given, else the OS picks them. */
  ports?: { from: number; to: number };
  /** Default 5. */
  portsPerPartition?: number;
  log: Logger;
}

export const DEFAULT_PORTS_PER_PARTITION = 5;
/** Where every partition listens when the OS has no loopback addresses but this one. */
export const SHARED_LOOPBACK = '127.0.0.1';
/** Folders of partitions: the node's user and group only (services may run under a partition's own group). */
const FOLDER_MODE = 0o750;
/** Tries at finding a derived address no other partition of this node has, and at an OS-picked port. */
const MAX_TRIES = 64;

/** The port range (--ports) has fewer free ports than a new partition needs. */
export class PortRangeError extends Error {
  override name = 'PortRangeError';
}

export class Partitions {
  readonly #init: PartitionsInit;
  readonly #root: string;
  readonly #portsPerPartition: number;
  /** Partitions are created one at a time: two concurrent claims must not pick the same id or overshoot. */
  #creating: Promise<unknown> = Promise.resolve();
  /** Learnt at the first bind test: false where 127.x.y.z other than 127.0.0.1 cannot be bound. */
  #ownAddresses = true;
  /** Whether that test was made: where one derived address binds, every one does (all of 127/8 is local). */
  #addressesTested = false;

  constructor(init: PartitionsInit) {
    this.#init = init;
    this.#root = resolve(init.root);
    this.#portsPerPartition = init.portsPerPartition ?? DEFAULT_PORTS_PER_PARTITION;
  }

  folder(id: number): string {
    return join(this.#root, String(id));
  }

  /** total = capacity; free = capacity − claimed (never below 0, should the capacity have been lowered). */
  counts(): { total: number; free: number } {
    const claimed = this.#init.store.listPartitions().filter((p) => p.owner !== undefined).length;
    return { total: this.#init.capacity, free: Math.max(0, this.#init.capacity - claimed) };
  }

  /**
   * Gives (owner, reference) the free partition of lowest id, else a new one while fewer than `capacity`
   * exist; undefined when `capacity` partitions are claimed. Claiming again gives the partition it has.
   */
  async claim(owner: string, reference: string): Promise<StoredPartition | undefined> {
    const existing = this.#claimExisting(owner, reference);
    if (existing !== 'none') return existing;
    const next = this.#creating.then(() => this.#claimOrCreate(owner, reference));
    this.#creating = next.catch(() => undefined);
    return next;
  }

  /** Empties the partition's folder (kept) and frees the slot; its processes must be stopped already. */
  async free(id: number): Promise<void> {
    const folder = this.folder(id);
    await mkdir(folder, { recursive: true, mode: FOLDER_MODE });
    await emptyFolder(folder);
    this.#init.store.releasePartition(id);
    this.#init.log.debug(`partition ${id} emptied and freed`);
  }

  /**
   * The partition (owner, reference) has already (a claim repeated after a crash), else a free one claimed in
   * one transaction with the capacity check; 'none' when none is free.
   */
  #claimExisting(owner: string, reference: string): StoredPartition | undefined | 'none' {
    const { store, capacity } = this.#init;
    return store.transaction(() => {
      const partitions = store.listPartitions();
      const held = partitions.find((p) => p.owner === owner && p.reference === reference);
      if (held) return held;
      if (partitions.filter((p) => p.owner !== undefined).length >= capacity) return undefined;
      if (partitions.every((p) => p.owner !== undefined)) return 'none';
      return store.claimPartition(owner, reference);
    });
  }

  async #claimOrCreate(owner: string, reference: string): Promise<StoredPartition | undefined> {
    // One may have been freed while this claim waited for its turn.
    const existing = this.#claimExisting(owner, reference);
    if (existing !== 'none') return existing;
    const partitions = this.#init.store.listPartitions();
    if (partitions.length >= this.#init.capacity) return undefined;
    const created = await this.#create(partitions);
    const { store } = this.#init;
    return store.transaction(() => {
      store.addPartition(created);
      return store.claimPartition(owner, reference);
    });
  }

  async #create(partitions: readonly StoredPartition[]): Promise<Omit<StoredPartition, 'owner' | 'reference'>> {
    const id = lowestUnusedId(partitions);
    const address = await this.#address(id, partitions);
    const taken = new Set(partitions.filter((p) => p.address === address).flatMap((p) => p.ports));
    const ports = await this.#findPorts(address, taken);
    await this.#prepareFolder(id);
    this.#init.log.debug(`partition ${id} created: ${address}, ports ${ports.join(', ')}`);
    return { id, address, ports, token: randomBytes(32).toString('hex') };
  }

  /** A derived address no other partition here has and that binds; 127.0.0.1 where only it binds. */
  async #address(id: number, partitions: readonly StoredPartition[]): Promise<string> {
    if (!this.#ownAddresses) return SHARED_LOOPBACK;
    const used = new Set(partitions.map((p) => p.address));
    for (let attempt = 0; attempt < MAX_TRIES; attempt++) {
      const address = derivedLoopback(this.#root, id, attempt);
      if (used.has(address)) continue;
      if (this.#addressesTested) return address;
      this.#addressesTested = true;
      if (await bindable(address)) return address;
      this.#ownAddresses = false;
      this.#init.log(`cannot listen on ${address}: every partition will share ${SHARED_LOOPBACK}`);
      return SHARED_LOOPBACK;
    }
    return SHARED_LOOPBACK;
  }

  async #findPorts(address: string, taken: ReadonlySet<number>): Promise<number[]> {
    const count = this.#portsPerPartition;
    // Held open until all are found, so the OS cannot hand out the same port twice.
    const held: Server[] = [];
    try {
      const { ports: range } = this.#init;
      return range ? await portsInRange(address, range, count, taken, held) : await portsFromOs(address, count, taken, held);
    } finally {
      await Promise.all(held.map(async (server) => {
        server.close();
        await once(server, 'close');
      }));
    }
  }

  /**
   * A new folder, or one a crash left behind before it was recorded (emptied): mode 0750 either way. Made
   * with synchronous calls (tens of microseconds each on a local disk): partitions are created one at a time
   * on the way to answering a `reserve`, and in a burst every await is a turn of a crowded event loop.
   */
  async #prepareFolder(id: number): Promise<void> {
    const folder = this.folder(id);
    mkdirSync(folder, { recursive: true, mode: FOLDER_MODE });
    if (readdirSync(folder).length > 0) await emptyFolder(folder);
    chmodSync(folder, FOLDER_MODE); // the umask may have cleared bits, and a leftover may have others
  }
}

function lowestUnusedId(partitions: readonly StoredPartition[]): number {
  const ids = new Set(partitions.map((p) => p.id));
  let id = 0;
  while (ids.has(id)) id++;
  return id;
}

/**
 * `127.a.b.c` from a hash of the partitions' root and the id: stable for a partition, and two nodes on one
 * host (different roots) rarely pick the same. Never 127.0.x.x (where everything else listens), never a
 * last byte of 0 or 255.
 */
export function derivedLoopback(root: string, id: number, attempt = 0): string {
  const hash = createHash('sha256').update(`${root}\0${id}\0${attempt}`).digest();
  const a = 1 + (hash[0]! % 255);
  const b = hash[1]!;
  const c = 1 + (hash[2]! % 254);
  return `127.${a}.${b}.${c}`;
}

/** Whether a socket can listen on `address` (false only when the OS says it is not an address of ours). */
async function bindable(address: string): Promise<boolean> {
  const server = await listen(address, 0);
  if (typeof server === 'string') return server !== 'not-local';
  server.close();
  await once(server, 'close');
  return true;
}

async function portsInRange(address: string, range: { from: number; to: number }, count: number, taken: ReadonlySet<number>, held: Server[]): Promise<number[]> {
  const ports: number[] = [];
  for (let port = range.from; port <= range.to && ports.length < count; port++) {
    if (taken.has(port)) continue;
    const server = await listen(address, port);
    if (typeof server === 'string') continue;
    held.push(server);
    ports.push(port);
  }
  if (ports.length < count) {
    throw new PortRangeError(`the port range ${range.from}-${range.to} has ${ports.length} free ports on ${address}, a partition needs ${count}: widen --ports`);
  }
  return ports;
}

async function portsFromOs(address: string, count: number, taken: ReadonlySet<number>, held: Server[]): Promise<number[]> {
  const ports: number[] = [];
  // Asked for all at once: the OS never gives one port to two sockets open together.
  for (let tries = 0; ports.length < count; tries += count) {
    if (tries >= MAX_TRIES + count) throw new PortRangeError(`no ${count} free ports found on ${address}`);
    const servers = await Promise.all(Array.from({ length: count - ports.length }, () => listen(address, 0)));
    for (const server of servers) {
      if (typeof server === 'string') continue;
      held.push(server); // kept open even when taken, so that the OS picks another next time
      const { port } = server.address() as AddressInfo;
      if (!taken.has(port)) ports.push(port);
    }
  }
  return ports;
}

/** A listening server, or why not: the port is used ('in-use'), or the address is not local ('not-local'). */
async function listen(address: string, port: number): Promise<Server | 'in-use' | 'not-local'> {
  const server = createServer();
  try {
    server.listen({ host: address, port, exclusive: true });
    await once(server, 'listening');
    return server;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') return 'in-use';
    if (code === 'EADDRNOTAVAIL') return 'not-local';
    throw error;
  }
}

/** Removes what a folder holds, including trees a build made read-only. */
async function emptyFolder(folder: string): Promise<void> {
  for (const entry of await readdir(folder)) {
    const path = join(folder, entry);
    try {
      await rm(path, { recursive: true, force: true });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EACCES' && code !== 'EPERM') throw error;
      await makeWritable(path);
      await rm(path, { recursive: true, force: true });
    }
  }
}

async function makeWritable(path: string): Promise<void> {
  const stat = await lstat(path);
  if (!stat.isDirectory()) return;
  await chmod(path, (stat.mode & 0o7777) | 0o700);
  for (const entry of await readdir(path)) await makeWritable(join(path, entry));
}
