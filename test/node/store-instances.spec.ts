import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { NodeStore, STORE_FILE, type StoredHosted, type StoredOwned } from '../../node/store.js';
import { removeTree, writeTree } from '../helpers/files.js';

const OWNER = '12D3KooWOwner';

function hosted(reference: string, partition: number, changes: Partial<StoredHosted> = {}): StoredHosted {
  return {
    owner: OWNER, reference, epoch: 0, release: 'bafkrelease', type: 'default', parameters: { name: 'World' },
    state: 'started', status: 'reserved', connection: {}, partition, leaseUntil: 1_000, confirmed: true, updatedAt: 1, ...changes,
  };
}

function owned(reference: string, changes: Partial<StoredOwned> = {}): StoredOwned {
  return {
    reference, release: 'bafkrelease', type: 'default', parameters: {}, state: 'started', epoch: 1, status: 'placing',
    connection: {}, updatedAt: 1, ...changes,
  };
}

describe('node/store: partitions, instances, services', () => {
  let dir: string;
  let path: string;
  let store: NodeStore;

  beforeEach(() => {
    dir = writeTree({});
    path = join(dir, STORE_FILE);
    store = NodeStore.open(path);
  });

  afterEach(() => {
    store.close();
    removeTree(dir);
  });

  it('claims the free partition of lowest id, once, and frees it', () => {
    store.addPartition({ id: 1, address: '127.1.2.3', ports: [4000, 4001], token: 't1' });
    store.addPartition({ id: 0, address: '127.1.2.4', ports: [4002], token: 't0' });
    assert.deepEqual(store.claimPartition(OWNER, 'a'), { id: 0, address: '127.1.2.4', ports: [4002], token: 't0', owner: OWNER, reference: 'a' });
    assert.equal(store.claimPartition(OWNER, 'b')?.id, 1);
    assert.equal(store.claimPartition(OWNER, 'c'), undefined);
    store.releasePartition(0);
    assert.deepEqual(store.listPartitions().map((p) => [p.id, p.reference]), [[0, undefined], [1, 'b']]);
    assert.equal(store.claimPartition(OWNER, 'c')?.id, 0);
  });

  it('keeps hosted instances across a reopen, with their lease and connection', () => {
    store.putHosted(hosted('a', 0));
    store.putHosted(hosted('a', 0, { epoch: 2, status: 'ready', connection: { url: 'http://127.0.0.1:1/' }, message: 'fine', confirmed: false, updatedAt: 5 }));
    const { leaseUntil: _lease, ...withoutLease } = hosted('b', 1, { epoch: 1 });
    store.putHosted(withoutLease);
    store.close();
    store = NodeStore.open(path);
    const [a, b] = store.listHosted();
    assert.deepEqual(a, hosted('a', 0, { epoch: 2, status: 'ready', connection: { url: 'http://127.0.0.1:1/' }, message: 'fine', confirmed: false, updatedAt: 5 }));
    assert.deepEqual(b, withoutLease);
    assert.deepEqual(store.listHosted('someone else'), []);
    store.deleteHosted(OWNER, 'a');
    assert.equal(store.getHosted(OWNER, 'a'), undefined);
  });

  it('refuses a status outside the schema and changes nothing', () => {
    assert.throws(() => store.putHosted(hosted('a', 0, { status: 'lost' as StoredHosted['status'] })), /CHECK constraint/);
    assert.deepEqual(store.listHosted(), []);
  });

  it('lists owned instances, and the children of a parent', () => {
    store.putOwned(owned('root', { host: 'peerB', epoch: 3, status: 'ready', connection: { url: 'u' } }));
    store.putOwned(owned('peerA/root/child', { parent: 'peerA/root' }));
    assert.deepEqual(store.getOwned('root'), owned('root', { host: 'peerB', epoch: 3, status: 'ready', connection: { url: 'u' } }));
    assert.deepEqual(store.listOwned('peerA/root').map((o) => o.reference), ['peerA/root/child']);
    assert.equal(store.listOwned().length, 2);
    store.deleteOwned('root');
    assert.equal(store.getOwned('root'), undefined);
  });

  it('records services by partition and name', () => {
    store.putService({ partition: 0, name: 'hello', pgid: 100, startedAt: 1 });
    store.putService({ partition: 0, name: 'hello', pgid: 101, startedAt: 2 });
    store.putService({ partition: 1, name: 'db', pgid: 200, startedAt: 3 });
    assert.deepEqual(store.listServices(0), [{ partition: 0, name: 'hello', pgid: 101, startedAt: 2 }]);
    store.deleteService(0, 'hello');
    assert.deepEqual(store.listServices().map((s) => s.name), ['db']);
  });

  it('a transaction is all or nothing, and nested writes join it', () => {
    assert.throws(() => store.transaction(() => {
      store.putOwned(owned('x'));
      store.putService({ partition: 0, name: 'hello', pgid: 1, startedAt: 1 });
      throw new Error('abandon');
    }), /abandon/);
    assert.deepEqual(store.listOwned(), []);
    assert.deepEqual(store.listServices(), []);
  });
});
