// Partitions with a real node.db and real bind tests on loopback addresses.
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { derivedLoopback, Partitions, PortRangeError, type PartitionsInit } from '../../node/partitions.js';
import { NodeStore } from '../../node/store.js';
import { removeTree, writeTree } from '../helpers/files.js';
import { recordingLogger } from '../helpers/nodes.js';

const OWNER = '12D3KooWOwner';

async function listen(host: string, port: number): Promise<Server> {
  const server = createServer().listen({ host, port, exclusive: true });
  await once(server, 'listening');
  return server;
}

async function close(server: Server): Promise<void> {
  server.close();
  await once(server, 'close');
}

/** A range of ports below the OS's ephemeral ones, different for every run. */
function someRange(length: number): { from: number; to: number } {
  const from = 20_000 + Math.floor(Math.random() * 10_000);
  return { from, to: from + length - 1 };
}

describe('node/partitions', () => {
  let dir: string;
  let root: string;
  let store: NodeStore;
  let lines: string[];

  beforeEach(() => {
    dir = writeTree({});
    root = join(dir, 'instances');
    store = NodeStore.open(join(dir, 'node.db'));
    lines = [];
  });

  afterEach(() => {
    store.close();
    removeTree(dir);
  });

  const partitions = (init: Partial<PartitionsInit> = {}) => new Partitions({ store, root, capacity: 3, log: recordingLogger(lines), ...init });

  it('creates partitions on demand: ids from 0, a folder of mode 0750, an address of their own, ports, a token', async () => {
    const slots = partitions();
    assert.equal(existsSync(root), false, 'the constructor does no I/O');
    const a = await slots.claim(OWNER, 'a');
    const b = await slots.claim(OWNER, 'b');
    assert.deepEqual([a?.id, a?.owner, a?.reference, b?.id, b?.reference], [0, OWNER, 'a', 1, 'b']);
    for (const p of [a!, b!]) {
      assert.equal(slots.folder(p.id), join(root, String(p.id)));
      const folder = statSync(slots.folder(p.id));
      assert.ok(folder.isDirectory());
      assert.equal(folder.mode & 0o777, 0o750);
      assert.match(p.address, /^127\.([0-9]+)\.([0-9]+)\.([0-9]+)$/);
      const [, x, , last] = p.address.split('.').map(Number);
      assert.ok(x !== 0 && last !== 0 && last !== 255, p.address);
      assert.equal(p.ports.length, 5);
      assert.match(p.token, /^[0-9a-f]{64}$/);
    }
    assert.notEqual(a!.address, b!.address);
    assert.notEqual(a!.token, b!.token);
    assert.equal(a!.address, derivedLoopback(root, 0), 'derived from the root and the id');
    assert.deepEqual(store.listPartitions(), [a, b]);
    assert.deepEqual(slots.counts(), { total: 3, free: 1 });
    assert.deepEqual(await slots.claim(OWNER, 'a'), a, 'claiming again gives the same partition');
    assert.deepEqual(slots.counts(), { total: 3, free: 1 });
  });

  it('never exceeds its capacity, nor creates an id twice, under concurrent claims', async () => {
    const slots = partitions({ capacity: 4, portsPerPartition: 2 });
    const claimed = await Promise.all(Array.from({ length: 12 }, (_, i) => slots.claim(OWNER, `r${i}`)));
    const given = claimed.filter((p) => p !== undefined);
    assert.deepEqual(given.map((p) => p.id).sort(), [0, 1, 2, 3]);
    assert.equal(new Set(given.map((p) => p.reference)).size, 4);
    assert.equal(claimed.filter((p) => p === undefined).length, 8);
    assert.equal(store.listPartitions().length, 4);
    assert.deepEqual(slots.counts(), { total: 4, free: 0 });
    assert.deepEqual(readdirSync(root).sort(), ['0', '1', '2', '3']);
  });

  it('gives ports that are free, distinct, and its own address for each', async () => {
    const slots = partitions({ capacity: 3, portsPerPartition: 4 });
    const all = [await slots.claim(OWNER, 'a'), await slots.claim(OWNER, 'b'), await slots.claim(OWNER, 'c')];
    const pairs = new Set<string>();
    for (const p of all) {
      assert.equal(new Set(p!.ports).size, 4, `distinct ports in ${p!.ports.join(', ')}`);
      for (const port of p!.ports) {
        pairs.add(`${p!.address}:${port}`);
        await close(await listen(p!.address, port)); // free: a service can listen on it
      }
    }
    assert.equal(pairs.size, 12);
  });

  it('takes ports within --ports, skipping those in use, and names the range when it runs out', async () => {
    const range = someRange(6);
    // Taken on every address: the partition's own cannot be bound on that port either.
    const busy = await listen('0.0.0.0', range.from + 1);
    try {
      const slots = partitions({ ports: range, portsPerPartition: 3 });
      const a = await slots.claim(OWNER, 'a');
      assert.deepEqual(a!.ports, [range.from, range.from + 2, range.from + 3]);
      // Another partition has an address of its own: the same ports are free there.
      const b = await slots.claim(OWNER, 'b');
      assert.deepEqual(b!.ports, a!.ports);
      const tight = new Partitions({ store, root, capacity: 5, ports: range, portsPerPartition: 6, log: recordingLogger(lines) });
      await assert.rejects(tight.claim(OWNER, 'c'), (error: Error) => {
        assert.ok(error instanceof PortRangeError);
        assert.equal(error.name, 'PortRangeError');
        assert.match(error.message, new RegExp(`port range ${range.from}-${range.to} has 5 free ports`));
        return true;
      });
      assert.equal(store.listPartitions().length, 2, 'nothing recorded for the failed one');
    } finally {
      await close(busy);
    }
  });

  it('free() empties the folder (read-only trees too), keeps it, and the slot is claimed again', async () => {
    const slots = partitions();
    const a = await slots.claim(OWNER, 'a');
    await slots.claim(OWNER, 'b');
    const folder = slots.folder(a!.id);
    mkdirSync(join(folder, 'parts', 'locked', 'deep'), { recursive: true });
    writeFileSync(join(folder, 'parts', 'locked', 'deep', 'file'), 'x');
    writeFileSync(join(folder, '.hidden'), 'x');
    chmodSync(join(folder, 'parts', 'locked', 'deep'), 0o500);
    chmodSync(join(folder, 'parts', 'locked'), 0o500);
    await slots.free(a!.id);
    assert.deepEqual(readdirSync(folder), []);
    assert.equal(statSync(folder).mode & 0o777, 0o750);
    assert.deepEqual(slots.counts(), { total: 3, free: 2 });
    const again = await slots.claim(OWNER, 'c');
    assert.deepEqual(again, { ...a, reference: 'c' }, 'same slot: same address, ports and token');
    assert.equal(store.listPartitions().length, 2);
  });

  it('fills the lowest unused id, empties a folder left unrecorded, and refuses once capacity is claimed', async () => {
    store.addPartition({ id: 0, address: '127.9.9.1', ports: [1], token: 't0' });
    store.addPartition({ id: 2, address: '127.9.9.2', ports: [2], token: 't2' });
    store.claimPartition('someone', 'x');
    store.claimPartition('someone', 'y');
    mkdirSync(join(root, '1', 'etc'), { recursive: true });
    writeFileSync(join(root, '1', 'etc', 'stale'), 'left by a crash');
    const slots = partitions();
    const created = await slots.claim(OWNER, 'a');
    assert.equal(created?.id, 1);
    assert.deepEqual(readdirSync(slots.folder(1)), []);
    assert.equal(await slots.claim(OWNER, 'b'), undefined);
    assert.deepEqual(slots.counts(), { total: 3, free: 0 });
  });

  it('counts a lowered capacity: free partitions beyond it are not given', async () => {
    const big = partitions({ capacity: 3, portsPerPartition: 1 });
    for (const reference of ['a', 'b', 'c']) await big.claim(OWNER, reference);
    await big.free(2);
    const small = partitions({ capacity: 2, portsPerPartition: 1 });
    assert.equal(await small.claim(OWNER, 'd'), undefined);
    assert.deepEqual(small.counts(), { total: 2, free: 0 });
    await small.free(1);
    assert.equal((await small.claim(OWNER, 'd'))?.id, 1);
  });

  it('derives spread addresses, never in 127.0/16 nor ending in .0 or .255', () => {
    assert.notEqual(derivedLoopback('/a/root', 0).startsWith('127.0.'), true);
    const addresses = new Set(Array.from({ length: 200 }, (_, id) => derivedLoopback('/a/root', id)));
    assert.ok(addresses.size > 195, 'spread');
    for (const address of addresses) {
      const bytes = address.split('.').map(Number);
      assert.ok(bytes[1] !== 0 && bytes[3] !== 0 && bytes[3] !== 255, address);
    }
    assert.notEqual(derivedLoopback('/a/root', 0), derivedLoopback('/another/root', 0));
  });
});
