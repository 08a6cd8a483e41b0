import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { NodeStore, SCHEMA_VERSION, STORE_FILE, StoreCorruptError, StoreVersionError, type StoredPeer, type StoredRelease } from '../../node/store.js';
import { removeTree, writeTree } from '../helpers/files.js';

function peer(peerId: string, lastSeen: number): StoredPeer {
  return { peerId, addresses: [`/ip4/127.0.0.1/tcp/4001/p2p/${peerId}`], advert: `{"peerId":"${peerId}"}`, lastSeen };
}

/** Reads a pragma through a connection of its own, as another process would. */
function pragma(path: string, name: string): unknown {
  const db = new DatabaseSync(path);
  try {
    return db.prepare(`PRAGMA ${name}`).get()?.[name];
  } finally {
    db.close();
  }
}

describe('node/store', () => {
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

  describe('schema', () => {
    it('migrates an empty file to the current version, in WAL mode', () => {
      assert.ok(SCHEMA_VERSION >= 1);
      assert.equal(store.schemaVersion, SCHEMA_VERSION);
      assert.equal(pragma(path, 'user_version'), SCHEMA_VERSION);
      assert.equal(pragma(path, 'journal_mode'), 'wal');
    });

    it('keeps the data across a reopen', () => {
      store.upsertPeers([peer('a', 1)]);
      store.addTrust('a');
      store.setMeta('seq', '7');
      store.close();
      store.close();
      store = NodeStore.open(path);
      assert.equal(store.schemaVersion, SCHEMA_VERSION);
      assert.deepEqual(store.getPeer('a'), peer('a', 1));
      assert.deepEqual(store.listTrust(), ['a']);
      assert.equal(store.getMeta('seq'), '7');
    });

    it('refuses a database from a newer slapmesh and changes nothing in it', () => {
      const newer = join(dir, 'newer.db');
      const db = new DatabaseSync(newer);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
      db.close();
      const before = readFileSync(newer);
      assert.throws(() => NodeStore.open(newer), (error: unknown) => {
        assert.ok(error instanceof StoreVersionError);
        assert.equal(error.name, 'StoreVersionError');
        assert.equal(error.version, SCHEMA_VERSION + 1);
        assert.equal(error.message, `${newer} has schema version ${SCHEMA_VERSION + 1}, but this slapmesh knows versions up to ${SCHEMA_VERSION}: run a newer slapmesh with this data directory`);
        return true;
      });
      assert.deepEqual(readFileSync(newer), before);
      assert.equal(pragma(newer, 'journal_mode'), 'delete');
    });

    it('refuses a file that is not a database and leaves it as it is', () => {
      const garbage = join(dir, 'garbage.db');
      const bytes = Buffer.alloc(4096, 'slapmesh');
      writeFileSync(garbage, bytes);
      assert.throws(() => NodeStore.open(garbage), (error: unknown) => {
        assert.ok(error instanceof StoreCorruptError);
        assert.equal(error.name, 'StoreCorruptError');
        assert.match(error.message, new RegExp(`^${garbage} is not an SQLite database`));
        return true;
      });
      assert.deepEqual(readFileSync(garbage), bytes);
    });

    it('shares the file with a second store: each sees what the other wrote', () => {
      const second = NodeStore.open(path);
      try {
        assert.equal(second.schemaVersion, SCHEMA_VERSION);
        store.upsertPeers([peer('a', 1)]);
        assert.deepEqual(second.listPeers(), [peer('a', 1)]);
        second.upsertRelease({ cid: 'bafy1', name: 'hello', state: 'building', updatedAt: 5 });
        assert.deepEqual(store.listReleases(), [{ cid: 'bafy1', name: 'hello', state: 'building', updatedAt: 5 }]);
        store.deletePeer('a');
        assert.equal(second.getPeer('a'), undefined);
      } finally {
        second.close();
      }
    });

    it('rolls back a write that fails, and stays usable', () => {
      const bad = { cid: 'bafy1', name: 'hello', state: 'lost', updatedAt: 1 } as unknown as StoredRelease;
      assert.throws(() => store.upsertRelease(bad), /CHECK constraint failed/);
      assert.deepEqual(store.listReleases(), []);
      store.setMeta('still', 'works');
      assert.equal(store.getMeta('still'), 'works');
    });
  });

  describe('peers', () => {
    it('upserts, gets, lists sorted by peerId and deletes', () => {
      assert.equal(store.getPeer('b'), undefined);
      assert.deepEqual(store.listPeers(), []);
      store.upsertPeers([peer('b', 10)]);
      store.upsertPeers([peer('a', 20)]);
      store.upsertPeers([peer('c', 30)]);
      const moved: StoredPeer = { peerId: 'b', addresses: ['/ip4/10.0.0.2/tcp/1', '/ip4/10.0.0.3/tcp/2'], advert: '{"v":2}', lastSeen: 40 };
      store.upsertPeers([moved]);
      assert.deepEqual(store.getPeer('b'), moved);
      assert.deepEqual(store.listPeers(), [peer('a', 20), moved, peer('c', 30)]);
      store.deletePeer('a');
      store.deletePeer('nobody');
      assert.deepEqual(store.listPeers().map((p) => p.peerId), ['b', 'c']);
    });

    it('forgets the peers not seen since a time and says which', () => {
      for (const [id, seen] of [['d', 5], ['a', 1], ['c', 10], ['b', 9]] as const) store.upsertPeers([peer(id, seen)]);
      assert.deepEqual(store.deletePeersSeenBefore(10), ['a', 'b', 'd']);
      assert.deepEqual(store.listPeers(), [peer('c', 10)]);
      assert.deepEqual(store.deletePeersSeenBefore(10), []);
    });

    it('keeps a large ms timestamp exactly', () => {
      const now = Date.UTC(2030, 0, 1, 12, 0, 0, 123);
      store.upsertPeers([peer('a', now)]);
      assert.equal(store.getPeer('a')?.lastSeen, now);
    });
  });

  describe('trust', () => {
    it('adds, lists sorted, tells and removes trusted peers', () => {
      assert.equal(store.isTrusted('b'), false);
      assert.equal(store.addTrust('b'), true);
      assert.equal(store.addTrust('a', 1000), true);
      assert.equal(store.addTrust('b'), false);
      assert.deepEqual(store.listTrust(), ['a', 'b']);
      assert.equal(store.isTrusted('b'), true);
      assert.equal(store.removeTrust('b'), true);
      assert.equal(store.removeTrust('b'), false);
      assert.equal(store.isTrusted('b'), false);
      assert.deepEqual(store.listTrust(), ['a']);
    });

    it('is independent of the peer table', () => {
      store.upsertPeers([peer('a', 1)]);
      store.addTrust('a');
      store.deletePeer('a');
      assert.equal(store.isTrusted('a'), true);
    });
  });

  describe('releases', () => {
    it('upserts, gets and lists releases, by state too', () => {
      const building: StoredRelease = { cid: 'bafy2', name: 'hello', state: 'building', updatedAt: 1 };
      const failed: StoredRelease = { cid: 'bafy3', name: 'erp5', state: 'error', error: 'cmmi: make exited with 2', updatedAt: 2 };
      store.upsertRelease(building);
      store.upsertRelease(failed);
      assert.deepEqual(store.getRelease('bafy2'), building);
      assert.equal(store.getRelease('nope'), undefined);
      assert.deepEqual(store.listReleases(), [failed, building]);
      assert.deepEqual(store.listReleases('error'), [failed]);
      assert.deepEqual(store.listReleases('available'), []);

      const built: StoredRelease = { cid: 'bafy2', name: 'hello', state: 'available', path: '/data/software/bafy2', source: 'peer', peer: '12D3KooWpeer', updatedAt: 3 };
      store.upsertRelease(built);
      const retried: StoredRelease = { cid: 'bafy3', name: 'erp5', state: 'building', updatedAt: 4 };
      store.upsertRelease(retried);
      assert.deepEqual(store.listReleases(), [retried, built]);
      assert.deepEqual(store.listReleases('available'), [built]);
      assert.deepEqual(store.listReleases('error'), []);
    });
  });

  describe('cache entries', () => {
    it('keeps the newest entry per key and builder, lists by key, and forgets those of a blob', () => {
      const entry = (builder: string, cid: string, time: number) => ({ key: 'release/bafyR/linux', builder, cid, time, wire: `{"t":${time}}` });
      assert.equal(store.putCacheEntry(entry('A', 'bafy1', 10)), true);
      assert.equal(store.putCacheEntry(entry('A', 'bafy0', 5)), false, 'an older entry of the same builder is not kept');
      assert.equal(store.putCacheEntry(entry('B', 'bafy2', 20)), true);
      store.putCacheEntry({ ...entry('A', 'bafy3', 1), key: 'part/sig/linux' });
      assert.deepEqual(store.listCacheEntries('release/bafyR/linux'), [entry('B', 'bafy2', 20), entry('A', 'bafy1', 10)]);
      assert.equal(store.listCacheEntries().length, 3);
      assert.equal(store.deleteCacheEntriesOf('bafy2'), 1);
      assert.deepEqual(store.listCacheEntries('release/bafyR/linux'), [entry('A', 'bafy1', 10)]);
    });

    it('upgrades a version 1 database and keeps its releases', () => {
      store.close();
      const old = join(dir, 'v1.db');
      const db = new DatabaseSync(old);
      db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
        CREATE TABLE releases (cid TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('building', 'available', 'error')), path TEXT, error TEXT, updated_at INTEGER NOT NULL) STRICT;
        INSERT INTO releases VALUES ('bafy1', 'hello', 'available', '/x', NULL, 7);
        PRAGMA user_version = 1;`);
      db.close();
      store = NodeStore.open(old);
      assert.equal(store.schemaVersion, SCHEMA_VERSION);
      assert.deepEqual(store.listReleases(), [{ cid: 'bafy1', name: 'hello', state: 'available', path: '/x', updatedAt: 7 }]);
    });
  });

  describe('meta', () => {
    it('gets, sets and overwrites', () => {
      assert.equal(store.getMeta('k'), undefined);
      store.setMeta('k', 'v1');
      store.setMeta('k', 'v2');
      store.setMeta('empty', '');
      assert.equal(store.getMeta('k'), 'v2');
      assert.equal(store.getMeta('empty'), '');
    });
  });
});
