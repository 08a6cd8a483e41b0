// The node's durable state in `<dataDir>/node.db` (node:sqlite): peers and their adverts, trusted peers,
// software releases, and small settings. One writer node per file (the data directory lock), but other
// connections (a second store, the sqlite3 shell) may read it at the same time: WAL lets them.
import { DatabaseSync, type SQLInputValue, type SQLOutputValue, type StatementSync } from 'node:sqlite';

export const STORE_FILE = 'node.db';
/** How long a statement waits for another connection's write lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5_000;

export interface StoredPeer {
  peerId: string;
  addresses: string[];
  /** The signed advert as received, JSON text. */
  advert: string;
  /** ms since the epoch. */
  lastSeen: number;
}

export interface StoredRelease {
  cid: string;
  name: string;
  state: 'building' | 'available' | 'error';
  path?: string;
  error?: string;
  /** How an available release was had: built here, or fetched from `peer`'s artifact. */
  source?: 'built' | 'peer';
  peer?: string;
  updatedAt: number;
}

export interface StoredCacheEntry {
  key: string;
  builder: string;
  cid: string;
  time: number;
  /** The signed entry, JSON text. */
  wire: string;
}

export type RequestedState = 'started' | 'stopped' | 'destroyed';

/** A partition slot (docs/instances.md); `owner`/`reference` name the hosted instance in it. */
export interface StoredPartition {
  id: number;
  address: string;
  ports: number[];
  /** What a request on the partition socket must carry. */
  token: string;
  owner?: string;
  reference?: string;
}

/** What an instance request says, on both sides. */
export interface InstanceRequest {
  reference: string;
  release: string;
  type: string;
  parameters: Record<string, unknown>;
  state: RequestedState;
}

export type HostedStatus = 'reserved' | 'deploying' | 'ready' | 'error' | 'failed' | 'stopped';

/** An instance this node hosts. */
export interface StoredHosted extends InstanceRequest {
  owner: string;
  /** 0 while only reserved. */
  epoch: number;
  /** `failed`: the release or the profile could not be deployed; `error`: a promise fails. */
  status: HostedStatus;
  message?: string;
  connection: Record<string, string>;
  partition: number;
  /** A reservation's end (ms epoch); undefined once confirmed. */
  leaseUntil?: number;
  /** False for an instance revived while its owner could not be asked. */
  confirmed: boolean;
  updatedAt: number;
}

/** An instance this node requested. */
export interface StoredOwned extends InstanceRequest {
  /** `<owner>/<reference>` of the hosted instance that requested it (instance trees). */
  parent?: string;
  host?: string;
  epoch: number;
  /** As the host last reported it, or `placing` / `refused` / `unreachable` as the owner knows it. */
  status: string;
  message?: string;
  connection: Record<string, string>;
  updatedAt: number;
}

export interface StoredService {
  partition: number;
  name: string;
  pgid: number;
  startedAt: number;
}

/**
 * The schema, one migration per version: `PRAGMA user_version` is the number applied. Append only; never edit
 * one that has shipped. STRICT tables refuse values of the wrong type instead of storing them.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
   CREATE TABLE peers (
     peer_id TEXT PRIMARY KEY,
     addresses TEXT NOT NULL, -- JSON array of multiaddrs
     advert TEXT NOT NULL,
     last_seen INTEGER NOT NULL
   ) STRICT;
   CREATE INDEX peers_by_last_seen ON peers (last_seen);
   CREATE TABLE trust (peer_id TEXT PRIMARY KEY, added_at INTEGER NOT NULL) STRICT;
   CREATE TABLE releases (
     cid TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('building', 'available', 'error')),
     path TEXT,
     error TEXT,
     updated_at INTEGER NOT NULL
   ) STRICT;
   CREATE INDEX releases_by_state ON releases (state);`,
  // 2: where a release came from; signed cache entries (node/cache/entry.ts), newest per key and builder.
  `ALTER TABLE releases ADD COLUMN source TEXT CHECK (source IN ('built', 'peer'));
   ALTER TABLE releases ADD COLUMN peer TEXT;
   CREATE TABLE cache_entries (
     key TEXT NOT NULL,
     builder TEXT NOT NULL,
     cid TEXT NOT NULL,
     time INTEGER NOT NULL,
     wire TEXT NOT NULL, -- the signed entry as received
     PRIMARY KEY (key, builder)
   ) STRICT;
   CREATE INDEX cache_entries_by_cid ON cache_entries (cid);`,
  // 3: instances (docs/instances.md): partitions, the instances this node hosts and those it owns, and the
  // process groups of their services.
  `CREATE TABLE partitions (
     id INTEGER PRIMARY KEY, -- slot n: folder instances/<n>
     address TEXT NOT NULL,
     ports TEXT NOT NULL, -- JSON array
     token TEXT NOT NULL,
     owner TEXT, -- the hosted instance in it, NULL when free
     reference TEXT,
     UNIQUE (owner, reference)
   ) STRICT;
   CREATE TABLE hosted (
     owner TEXT NOT NULL,
     reference TEXT NOT NULL,
     epoch INTEGER NOT NULL, -- 0 while reserved
     release TEXT NOT NULL,
     type TEXT NOT NULL,
     parameters TEXT NOT NULL, -- JSON object
     state TEXT NOT NULL CHECK (state IN ('started', 'stopped', 'destroyed')),
     status TEXT NOT NULL CHECK (status IN ('reserved', 'deploying', 'ready', 'error', 'failed', 'stopped')),
     message TEXT,
     connection TEXT NOT NULL, -- JSON object
     partition INTEGER NOT NULL,
     lease_until INTEGER, -- a reservation's end; NULL once confirmed
     confirmed INTEGER NOT NULL DEFAULT 1, -- 0: revived while the owner was unreachable
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (owner, reference)
   ) STRICT;
   CREATE TABLE owned (
     reference TEXT PRIMARY KEY,
     parent TEXT, -- '<owner>/<reference>' of the hosted instance that requested it
     release TEXT NOT NULL,
     type TEXT NOT NULL,
     parameters TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('started', 'stopped', 'destroyed')),
     host TEXT,
     epoch INTEGER NOT NULL,
     status TEXT NOT NULL,
     message TEXT,
     connection TEXT NOT NULL,
     updated_at INTEGER NOT NULL
   ) STRICT;
   CREATE INDEX owned_by_parent ON owned (parent);
   CREATE TABLE services (
     partition INTEGER NOT NULL,
     name TEXT NOT NULL,
     pgid INTEGER NOT NULL,
     started_at INTEGER NOT NULL,
     PRIMARY KEY (partition, name)
   ) STRICT;`,
];

/** The schema version this code writes and understands. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** The database was written by a newer slapmesh: this one would not know its tables. */
export class StoreVersionError extends Error {
  override name = 'StoreVersionError';

  constructor(readonly path: string, readonly version: number, readonly supported: number) {
    super(`${path} has schema version ${version}, but this slapmesh knows versions up to ${supported}: ` +
      'run a newer slapmesh with this data directory');
  }
}

const SQLITE_NOTADB = 26;

/** The file is not an SQLite database (or its header is damaged); it is left as it is. */
export class StoreCorruptError extends Error {
  override name = 'StoreCorruptError';

  constructor(readonly path: string) {
    super(`${path} is not an SQLite database: restore it from a backup, or move it away to start afresh`);
  }
}

export class NodeStore {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Opens (creating if needed) and migrates the database at `path`. */
  static open(path: string): NodeStore {
    const db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT_MS, enableForeignKeyConstraints: true });
    try {
      // Refuse a newer database before changing anything in it, even its journal mode.
      const version = readVersion(db, path);
      if (version > SCHEMA_VERSION) throw new StoreVersionError(path, version, SCHEMA_VERSION);
      db.exec('PRAGMA journal_mode = WAL');
      // NORMAL: a committed transaction survives the process being killed (it is in the WAL, written); a
      // power cut may undo the last ones, never corrupt the file. FULL would fsync at every commit — an
      // instance's deployment makes a dozen, each blocking the event loop for milliseconds (bench:placement).
      // What a lost record means is handled by the protocols: a host that forgot an instance is told so by
      // its owner's renewal, an owner that forgot one makes the host destroy its copy (docs/instances.md).
      db.exec('PRAGMA synchronous = NORMAL');
      const store = new NodeStore(db);
      store.#migrate(path);
      return store;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  close(): void {
    if (!this.#db.isOpen) return;
    this.#statements.clear();
    this.#db.close();
  }

  get schemaVersion(): number {
    return readVersion(this.#db);
  }

  /** Several peers in one transaction (one fsync). */
  upsertPeers(peers: readonly StoredPeer[]): void {
    this.#write(() => {
      for (const peer of peers) {
        this.#run(
          `INSERT INTO peers (peer_id, addresses, advert, last_seen) VALUES (?, ?, ?, ?)
           ON CONFLICT (peer_id) DO UPDATE SET
             addresses = excluded.addresses, advert = excluded.advert, last_seen = excluded.last_seen`,
          peer.peerId, JSON.stringify(peer.addresses), peer.advert, peer.lastSeen,
        );
      }
    });
  }

  getPeer(peerId: string): StoredPeer | undefined {
    const row = this.#statement(`${SELECT_PEER} WHERE peer_id = ?`).get(peerId);
    return row && toPeer(row);
  }

  /** Sorted by peerId. */
  listPeers(): StoredPeer[] {
    return this.#statement(`${SELECT_PEER} ORDER BY peer_id`).all().map(toPeer);
  }

  deletePeer(peerId: string): void {
    this.#write(() => this.#run('DELETE FROM peers WHERE peer_id = ?', peerId));
  }

  /** Forgets the peers not seen since `time` (ms epoch); returns their ids, sorted. */
  deletePeersSeenBefore(time: number): string[] {
    const rows = this.#write(() => this.#statement('DELETE FROM peers WHERE last_seen < ? RETURNING peer_id').all(time));
    return rows.map((row) => text(row, 'peer_id')).sort();
  }

  /** False if the peer was already trusted (its first date is kept). */
  addTrust(peerId: string, at: number = Date.now()): boolean {
    return this.#write(() => this.#run('INSERT INTO trust (peer_id, added_at) VALUES (?, ?) ON CONFLICT DO NOTHING', peerId, at)) > 0;
  }

  /** False if the peer was not trusted. */
  removeTrust(peerId: string): boolean {
    return this.#write(() => this.#run('DELETE FROM trust WHERE peer_id = ?', peerId)) > 0;
  }

  /** Sorted. */
  listTrust(): string[] {
    return this.#statement('SELECT peer_id FROM trust ORDER BY peer_id').all().map((row) => text(row, 'peer_id'));
  }

  isTrusted(peerId: string): boolean {
    return this.#statement('SELECT 1 AS found FROM trust WHERE peer_id = ?').get(peerId) !== undefined;
  }

  upsertRelease(release: StoredRelease): void {
    this.#write(() => this.#run(
      `INSERT INTO releases (cid, name, state, path, error, source, peer, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (cid) DO UPDATE SET
         name = excluded.name, state = excluded.state, path = excluded.path, error = excluded.error,
         source = excluded.source, peer = excluded.peer, updated_at = excluded.updated_at`,
      release.cid, release.name, release.state, release.path ?? null, release.error ?? null,
      release.source ?? null, release.peer ?? null, release.updatedAt,
    ));
  }

  /** Marks builds a stopped or killed node left unfinished as failed (a supply starts them again). */
  interruptBuilds(now = Date.now()): number {
    return this.#write(() => this.#run(
      `UPDATE releases SET state = 'error', error = 'interrupted: the node stopped during the build', updated_at = ? WHERE state = 'building'`, now,
    ));
  }

  /** Keeps a signed cache entry, unless an entry of the same key and builder at least as recent is kept. */
  putCacheEntry(entry: StoredCacheEntry): boolean {
    return this.#write(() => this.#run(
      `INSERT INTO cache_entries (key, builder, cid, time, wire) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (key, builder) DO UPDATE SET cid = excluded.cid, time = excluded.time, wire = excluded.wire
       WHERE excluded.time > cache_entries.time`,
      entry.key, entry.builder, entry.cid, entry.time, entry.wire,
    )) > 0;
  }

  /** The entries of `key` (newest first), or all of them. */
  listCacheEntries(key?: string): StoredCacheEntry[] {
    const rows = key === undefined
      ? this.#statement(`${SELECT_ENTRY} ORDER BY key, time DESC`).all()
      : this.#statement(`${SELECT_ENTRY} WHERE key = ? ORDER BY time DESC`).all(key);
    return rows.map((row) => ({ key: text(row, 'key'), builder: text(row, 'builder'), cid: text(row, 'cid'), time: integer(row, 'time'), wire: text(row, 'wire') }));
  }

  /** Forgets the entries naming a blob (evicted, or found corrupt). */
  deleteCacheEntriesOf(cid: string): number {
    return this.#write(() => this.#run('DELETE FROM cache_entries WHERE cid = ?', cid));
  }

  getRelease(cid: string): StoredRelease | undefined {
    const row = this.#statement(`${SELECT_RELEASE} WHERE cid = ?`).get(cid);
    return row && toRelease(row);
  }

  /** All releases, or those in `state`; sorted by name, then cid. */
  listReleases(state?: StoredRelease['state']): StoredRelease[] {
    const rows = state === undefined
      ? this.#statement(`${SELECT_RELEASE} ORDER BY name, cid`).all()
      : this.#statement(`${SELECT_RELEASE} WHERE state = ? ORDER BY name, cid`).all(state);
    return rows.map(toRelease);
  }

  getMeta(key: string): string | undefined {
    const row = this.#statement('SELECT value FROM meta WHERE key = ?').get(key);
    return row && text(row, 'value');
  }

  setMeta(key: string, value: string): void {
    this.#write(() => this.#run(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', key, value,
    ));
  }

  /** Runs `work` in one transaction (nested calls join the outer one). */
  transaction<T>(work: () => T): T {
    return this.#write(work);
  }

  // ---- partitions ----

  /** Sorted by id. */
  listPartitions(): StoredPartition[] {
    return this.#statement(`${SELECT_PARTITION} ORDER BY id`).all().map(toPartition);
  }

  addPartition(partition: Omit<StoredPartition, 'owner' | 'reference'>): void {
    this.#write(() => this.#run('INSERT INTO partitions (id, address, ports, token) VALUES (?, ?, ?, ?)',
      partition.id, partition.address, JSON.stringify(partition.ports), partition.token));
  }

  /** Gives the free partition of lowest id to (owner, reference); undefined when none is free. */
  claimPartition(owner: string, reference: string): StoredPartition | undefined {
    return this.#write(() => {
      const row = this.#statement(`${SELECT_PARTITION} WHERE owner IS NULL ORDER BY id LIMIT 1`).get();
      if (row === undefined) return undefined;
      const partition = toPartition(row);
      this.#run('UPDATE partitions SET owner = ?, reference = ? WHERE id = ?', owner, reference, partition.id);
      return { ...partition, owner, reference };
    });
  }

  releasePartition(id: number): void {
    this.#write(() => this.#run('UPDATE partitions SET owner = NULL, reference = NULL WHERE id = ?', id));
  }

  // ---- hosted instances ----

  putHosted(hosted: StoredHosted): void {
    this.#write(() => this.#run(
      `INSERT INTO hosted (owner, reference, epoch, release, type, parameters, state, status, message, connection, partition, lease_until, confirmed, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (owner, reference) DO UPDATE SET
         epoch = excluded.epoch, release = excluded.release, type = excluded.type, parameters = excluded.parameters,
         state = excluded.state, status = excluded.status, message = excluded.message, connection = excluded.connection,
         partition = excluded.partition, lease_until = excluded.lease_until, confirmed = excluded.confirmed,
         updated_at = excluded.updated_at`,
      hosted.owner, hosted.reference, hosted.epoch, hosted.release, hosted.type, JSON.stringify(hosted.parameters),
      hosted.state, hosted.status, hosted.message ?? null, JSON.stringify(hosted.connection), hosted.partition,
      hosted.leaseUntil ?? null, hosted.confirmed ? 1 : 0, hosted.updatedAt,
    ));
  }

  getHosted(owner: string, reference: string): StoredHosted | undefined {
    const row = this.#statement(`${SELECT_HOSTED} WHERE owner = ? AND reference = ?`).get(owner, reference);
    return row && toHosted(row);
  }

  /** All hosted instances, or those of one owner; sorted by owner, then reference. */
  listHosted(owner?: string): StoredHosted[] {
    const rows = owner === undefined
      ? this.#statement(`${SELECT_HOSTED} ORDER BY owner, reference`).all()
      : this.#statement(`${SELECT_HOSTED} WHERE owner = ? ORDER BY reference`).all(owner);
    return rows.map(toHosted);
  }

  deleteHosted(owner: string, reference: string): void {
    this.#write(() => this.#run('DELETE FROM hosted WHERE owner = ? AND reference = ?', owner, reference));
  }

  // ---- owned instances ----

  putOwned(owned: StoredOwned): void {
    this.#write(() => this.#run(
      `INSERT INTO owned (reference, parent, release, type, parameters, state, host, epoch, status, message, connection, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (reference) DO UPDATE SET
         parent = excluded.parent, release = excluded.release, type = excluded.type, parameters = excluded.parameters,
         state = excluded.state, host = excluded.host, epoch = excluded.epoch, status = excluded.status,
         message = excluded.message, connection = excluded.connection, updated_at = excluded.updated_at`,
      owned.reference, owned.parent ?? null, owned.release, owned.type, JSON.stringify(owned.parameters), owned.state,
      owned.host ?? null, owned.epoch, owned.status, owned.message ?? null, JSON.stringify(owned.connection), owned.updatedAt,
    ));
  }

  getOwned(reference: string): StoredOwned | undefined {
    const row = this.#statement(`${SELECT_OWNED} WHERE reference = ?`).get(reference);
    return row && toOwned(row);
  }

  /** All owned instances, or the children of `parent`; sorted by reference. */
  listOwned(parent?: string): StoredOwned[] {
    const rows = parent === undefined
      ? this.#statement(`${SELECT_OWNED} ORDER BY reference`).all()
      : this.#statement(`${SELECT_OWNED} WHERE parent = ? ORDER BY reference`).all(parent);
    return rows.map(toOwned);
  }

  deleteOwned(reference: string): void {
    this.#write(() => this.#run('DELETE FROM owned WHERE reference = ?', reference));
  }

  // ---- services ----

  putService(service: StoredService): void {
    this.#write(() => this.#run(
      `INSERT INTO services (partition, name, pgid, started_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (partition, name) DO UPDATE SET pgid = excluded.pgid, started_at = excluded.started_at`,
      service.partition, service.name, service.pgid, service.startedAt,
    ));
  }

  deleteService(partition: number, name: string): void {
    this.#write(() => this.#run('DELETE FROM services WHERE partition = ? AND name = ?', partition, name));
  }

  /** All recorded services, or a partition's; sorted by partition, then name. */
  listServices(partition?: number): StoredService[] {
    const rows = partition === undefined
      ? this.#statement('SELECT partition, name, pgid, started_at FROM services ORDER BY partition, name').all()
      : this.#statement('SELECT partition, name, pgid, started_at FROM services WHERE partition = ? ORDER BY name').all(partition);
    return rows.map((row) => ({ partition: integer(row, 'partition'), name: text(row, 'name'), pgid: integer(row, 'pgid'), startedAt: integer(row, 'started_at') }));
  }

  /**
   * Applies the missing migrations, each in its own transaction with the version it sets. The version is read
   * inside the transaction: a second process opening the same new file waits, then finds the work done.
   */
  #migrate(path: string): void {
    for (;;) {
      const done = this.#write(() => {
        const version = readVersion(this.#db);
        if (version > SCHEMA_VERSION) throw new StoreVersionError(path, version, SCHEMA_VERSION);
        const migration = MIGRATIONS[version];
        if (migration === undefined) return true;
        this.#db.exec(migration);
        this.#db.exec(`PRAGMA user_version = ${version + 1}`);
        return false;
      });
      if (done) return;
    }
  }

  /**
   * Runs `work` in a transaction, rolled back if it throws. IMMEDIATE takes the write lock up front (waiting up
   * to the busy timeout), so that a transaction never fails half-way on a lock another connection holds.
   */
  #write<T>(work: () => T): T {
    if (this.#db.isTransaction) return work();
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const result = work();
      this.#db.exec('COMMIT');
      return result;
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  /** Runs a write statement; returns the number of rows it changed. */
  #run(sql: string, ...values: SQLInputValue[]): number {
    return Number(this.#statement(sql).run(...values).changes);
  }

  /** Statements are compiled once per store and reused. */
  #statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }
}

const SELECT_PEER = 'SELECT peer_id, addresses, advert, last_seen FROM peers';
const SELECT_RELEASE = 'SELECT cid, name, state, path, error, source, peer, updated_at FROM releases';
const SELECT_ENTRY = 'SELECT key, builder, cid, time, wire FROM cache_entries';
const SELECT_PARTITION = 'SELECT id, address, ports, token, owner, reference FROM partitions';
const SELECT_HOSTED = `SELECT owner, reference, epoch, release, type, parameters, state, status, message, connection,
  partition, lease_until, confirmed, updated_at FROM hosted`;
const SELECT_OWNED = `SELECT reference, parent, release, type, parameters, state, host, epoch, status, message, connection,
  updated_at FROM owned`;

type Row = Record<string, SQLOutputValue>;

function readVersion(db: DatabaseSync, path?: string): number {
  let row: Row | undefined;
  try {
    row = db.prepare('PRAGMA user_version').get();
  } catch (error) {
    if (path !== undefined && (error as { errcode?: number }).errcode === SQLITE_NOTADB) throw new StoreCorruptError(path);
    throw error;
  }
  return row === undefined ? 0 : integer(row, 'user_version');
}

function toPeer(row: Row): StoredPeer {
  return {
    peerId: text(row, 'peer_id'),
    addresses: JSON.parse(text(row, 'addresses')) as string[],
    advert: text(row, 'advert'),
    lastSeen: integer(row, 'last_seen'),
  };
}

function toRelease(row: Row): StoredRelease {
  const release: StoredRelease = {
    cid: text(row, 'cid'),
    name: text(row, 'name'),
    state: text(row, 'state') as StoredRelease['state'], // the CHECK constraint keeps it one of the three
    updatedAt: integer(row, 'updated_at'),
  };
  const { path, error, source, peer } = row;
  if (typeof path === 'string') release.path = path;
  if (typeof error === 'string') release.error = error;
  if (source === 'built' || source === 'peer') release.source = source;
  if (typeof peer === 'string') release.peer = peer;
  return release;
}

// The STRICT schema guarantees the column types; these narrow them for TypeScript.
function text(row: Row, column: string): string {
  const value = row[column];
  if (typeof value !== 'string') throw new TypeError(`column ${column} is not text`);
  return value;
}

function integer(row: Row, column: string): number {
  const value = row[column];
  if (typeof value !== 'number') throw new TypeError(`column ${column} is not a number`);
  return value;
}

function toPartition(row: Row): StoredPartition {
  const owner = optionalText(row, 'owner');
  const reference = optionalText(row, 'reference');
  return {
    id: integer(row, 'id'),
    address: text(row, 'address'),
    ports: JSON.parse(text(row, 'ports')) as number[],
    token: text(row, 'token'),
    ...(owner !== undefined ? { owner } : {}),
    ...(reference !== undefined ? { reference } : {}),
  };
}

function toRequest(row: Row): InstanceRequest {
  return {
    reference: text(row, 'reference'),
    release: text(row, 'release'),
    type: text(row, 'type'),
    parameters: JSON.parse(text(row, 'parameters')) as Record<string, unknown>,
    state: text(row, 'state') as RequestedState,
  };
}

function toHosted(row: Row): StoredHosted {
  const message = optionalText(row, 'message');
  const leaseUntil = row['lease_until'];
  return {
    ...toRequest(row),
    owner: text(row, 'owner'),
    epoch: integer(row, 'epoch'),
    status: text(row, 'status') as StoredHosted['status'],
    ...(message !== undefined ? { message } : {}),
    connection: JSON.parse(text(row, 'connection')) as Record<string, string>,
    partition: integer(row, 'partition'),
    ...(leaseUntil !== null && leaseUntil !== undefined ? { leaseUntil: Number(leaseUntil) } : {}),
    confirmed: integer(row, 'confirmed') === 1,
    updatedAt: integer(row, 'updated_at'),
  };
}

function toOwned(row: Row): StoredOwned {
  const parent = optionalText(row, 'parent');
  const host = optionalText(row, 'host');
  const message = optionalText(row, 'message');
  return {
    ...toRequest(row),
    ...(parent !== undefined ? { parent } : {}),
    ...(host !== undefined ? { host } : {}),
    epoch: integer(row, 'epoch'),
    status: text(row, 'status'),
    ...(message !== undefined ? { message } : {}),
    connection: JSON.parse(text(row, 'connection')) as Record<string, string>,
    updatedAt: integer(row, 'updated_at'),
  };
}

function optionalText(row: Row, column: string): string | undefined {
  const value = row[column];
  return typeof value === 'string' ? value : undefined;
}
