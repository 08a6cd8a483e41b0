// One slapmesh node: its data directory (lock, identity, node.db), its libp2p host, the adverts it
// sends and receives, and the control socket the CLI uses. Constructing it does no I/O.
import type { PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Multiaddr } from '@multiformats/multiaddr';
import { AdvertService, DEFAULT_ADVERT_INTERVAL_MS } from './adverts.js';
import type { BlobInfo } from './cache/blob-store.js';
import type { Advert } from './advert.js';
import { ControlServer, type ControlHandler } from './control.js';
import { lockDataDir, prepareDataDir, type DataDirLock } from './data-dir.js';
import { probeHardware, type Hardware } from './hardware.js';
import { cpus } from 'node:os';
import { createHost, DHT_PROTOCOL, parseMultiaddr, type Host } from './host.js';
import { loadOrCreateIdentity } from './identity.js';
import { fileLog, type LogSink } from './log.js';
import { PeerTable, type KnownPeer } from './peer-table.js';
import { NodeStore } from './store.js';
import { BlobStore } from './cache/blob-store.js';
import { MeshCache } from './cache/remote.js';
import { Releases, SupplyError, type SupplyEvent, type SupplyResult } from './releases.js';
import { Instances } from './instances.js';
import { platform } from './hardware.js';
import { infoProtocol, type InfoProtocol } from '../protocols/info/index.js';
import { cacheProtocol, type CacheProtocol } from '../protocols/cache/index.js';

export interface NodeOptions {
  readonly dataDir: string;
  readonly listen: readonly string[];
  readonly bootstrap: readonly string[];
  readonly trust: readonly string[];
  /** Untrusted peers may request releases this node already supplies. */
  readonly open: boolean;
  /** Only trusted peers may connect at all. */
  readonly private: boolean;
  readonly trustAnyBuilder: boolean;
  /** The build cache's size limit in bytes: least recently used blobs are evicted beyond it. */
  readonly cacheQuota?: number;
  readonly partitions: number;
  /** The local TCP ports partitions take theirs from (default: any the OS gives). */
  readonly ports?: { from: number; to: number };
  readonly verbose: boolean;
  readonly advertIntervalMs?: number;
  /** How long a host may stay unreachable before the instances this node owns there move (default 60 s). */
  readonly hostingLeaseMs?: number;
  /** How often a host tells an owner of a deployment's progress at most (default PROGRESS_REPORT_GAP_MS). */
  readonly progressReportGapMs?: number;
  /** How long a silent peer stays in the table. */
  readonly peerTtlMs?: number;
  readonly stderr?: (line: string) => void;
  /** How long a node without connections waits before dialling its bootstrap peers again (it doubles each time). */
  readonly rejoinDelayMs?: number;
}

export { DEFAULT_ADVERT_INTERVAL_MS };
export const DIAL_TIMEOUT_MS = 10_000;
const PERSIST_PEERS_EVERY_MS = 30_000;
/** A node without connections dials its bootstrap peers again after this, then twice as long each time. */
const REJOIN_FIRST_DELAY_MS = 10_000;
const REJOIN_MAX_DELAY_MS = 60_000;
/** A node dials discovered peers until it has this many connections (it still accepts more). */
const WANTED_CONNECTIONS = 4;
const MAX_DIALS_IN_FLIGHT = 2;

/** What `slapmesh peers --json` prints for each peer (design.md §8). */
export interface PeerView {
  peerId: string;
  addresses: string[];
  hardware: { cpus: number; memory: number; disk: number; arch: string; os: string };
  releases: { cid: string; name: string }[];
  lastSeen: string;
}

/** A release this node supplied, or is building (`node status`): its state, how it was had, its build's log. */
export interface ReleaseView {
  cid: string;
  name: string;
  state: 'building' | 'available' | 'error';
  source?: 'built' | 'peer';
  peer?: string;
  error?: string;
  /** The build's output, when it was built (or is being built) here. */
  log?: string;
  updatedAt: string;
}

/** What `slapmesh cache list --json` prints for each blob. */
export interface CachedBlob {
  cid: string;
  size: number;
  lastUsed: string;
  kind: 'artifact' | 'bundle' | 'blob';
  /** An artifact's cache key. */
  key?: string;
  /** A bundle's release name. */
  name?: string;
}

export class InvalidPeerIdError extends Error {
  override name = 'InvalidPeerIdError';
}

export function parsePeerId(text: string): PeerId {
  try {
    return peerIdFromString(text);
  } catch {
    throw new InvalidPeerIdError(`not a PeerId: ${JSON.stringify(text)}`);
  }
}

export class SlapmeshNode {
  private lock?: DataDirLock;
  private store?: NodeStore;
  private host?: Host;
  private info?: InfoProtocol;
  private cache?: CacheProtocol;
  private blobs?: BlobStore;
  private releases?: Releases;
  private remote?: MeshCache;
  private instancesOf?: Instances;
  /** Whether what the cache held at start has been announced in the DHT (once there was a peer to tell). */
  private announcedHeld = false;
  /** Aborts what runs on behalf of the CLI (supplies) when the node stops. */
  private stopping = new AbortController();
  private adverts?: AdvertService;
  private control?: ControlServer;
  private logs?: LogSink;
  /** The peers this node knows; its events say when one is updated or expires. */
  readonly table: PeerTable;
  /** `connection:open` / `connection:close` with the remote PeerId, as libp2p reports them. */
  readonly connections = new EventTarget();
  private startedAt = 0;
  private persistTimer?: NodeJS.Timeout;
  private rejoinTimer?: NodeJS.Timeout;
  /** Peers whose advert changed since node.db last got them. */
  private readonly unsavedPeers = new Set<string>();

  constructor(readonly options: NodeOptions) {
    const advertInterval = options.advertIntervalMs ?? DEFAULT_ADVERT_INTERVAL_MS;
    this.table = new PeerTable({ ttlMs: options.peerTtlMs ?? advertInterval * 4 });
  }

  /** Instances this node owns and hosts (while started). */
  get instances(): Instances | undefined {
    return this.instancesOf;
  }

  get peerId(): string {
    return this.requireHost().peerId.toString();
  }

  /** Full addresses (`…/p2p/<PeerId>`) others can dial. */
  addresses(): string[] {
    return this.requireHost().getMultiaddrs().map((ma) => ma.toString());
  }

  async start(): Promise<void> {
    const { dataDir } = this.options;
    for (const peer of this.options.trust) parsePeerId(peer);
    for (const address of this.options.bootstrap) parseMultiaddr(address, '--bootstrap', true);
    prepareDataDir(dataDir);
    this.lock = lockDataDir(dataDir);
    try {
      this.logs = fileLog(dataDir, { verbose: this.options.verbose, ...(this.options.stderr ? { stderr: this.options.stderr } : {}) });
      const log = this.logs.forComponent('node');
      const privateKey = await loadOrCreateIdentity(dataDir);
      const store = (this.store = NodeStore.open(join(dataDir, 'node.db')));
      for (const peer of this.options.trust) store.addTrust(peer);

      const host = (this.host = await createHost({
        privateKey, listen: this.options.listen, bootstrap: this.options.bootstrap,
        isTrusted: (peer) => store.isTrusted(peer.toString()), privateMesh: this.options.private,
      }));
      this.info = infoProtocol({ getAdvert: () => this.adverts!.signed(), getOthers: (max) => this.adverts!.known(max) })({ libp2p: host, logger: this.logs.forComponent('info') });
      this.adverts = new AdvertService({
        key: privateKey, peerId: host.peerId.toString(), table: this.table,
        intervalMs: this.options.advertIntervalMs ?? DEFAULT_ADVERT_INTERVAL_MS,
        build: async () => this.advertContent(),
        log: this.logs.forComponent('adverts'),
      }, { pubsub: host.services.pubsub, info: this.info });

      const blobs = (this.blobs = new BlobStore(join(dataDir, 'cache')));
      await blobs.init();
      const encoder = new TextEncoder();
      this.cache = cacheProtocol({ blobs, lookup: (key) => store.listCacheEntries(key).map((entry) => encoder.encode(entry.wire)) })({ libp2p: host, logger: this.logs.forComponent('cache') });
      const self = host.peerId.toString();
      const remote = (this.remote = new MeshCache({
        routing: host.contentRouting, cache: this.cache, blobs, self, log: this.logs.forComponent('cache'),
        advertisers: (release) => this.advertising(release).map((peer) => peer.peerId),
        connected: () => [...new Set(host.getConnections().map((connection) => connection.remotePeer.toString()))],
      }));
      store.interruptBuilds();
      this.releases = new Releases({
        dataDir, store, blobs, key: privateKey, peerId: self, platform: platform(), remote,
        trusts: (builder) => this.options.trustAnyBuilder || store.isTrusted(builder),
        log: this.logs.forComponent('releases'), jobs: cpus().length,
        nameOf: (cid) => this.advertising(cid)[0]?.advert.releases.find((r) => r.cid === cid)?.name,
        onAvailable: () => {
          void this.adverts?.refresh().catch((error: Error) => log.error(`advert: ${error.message}`));
          this.instancesOf?.prepareToHost();
        },
      });

      this.instancesOf = new Instances({
        dataDir, store, libp2p: host, table: this.table, releases: this.releases, open: this.options.open,
        capacity: this.options.partitions, logs: this.logs, signal: this.stopping.signal,
        ...(this.options.ports ? { ports: this.options.ports } : {}),
        ...(this.options.hostingLeaseMs ? { hostingLeaseMs: this.options.hostingLeaseMs } : {}),
        ...(this.options.progressReportGapMs !== undefined ? { progressReportGapMs: this.options.progressReportGapMs } : {}),
      });

      this.table.addEventListener('peer:updated', (event) => {
        this.unsavedPeers.add(event.detail.peerId);
        this.dialIfUnknown(event.detail.advert);
      });
      // Adverts change every interval (load, free memory): node.db gets them in one transaction now and then.
      this.persistTimer = setInterval(() => this.savePeers(), PERSIST_PEERS_EVERY_MS);
      this.persistTimer.unref();
      this.table.addEventListener('peer:expired', (event) => {
        this.unsavedPeers.delete(event.detail);
        store.deletePeer(event.detail);
        log(`peer ${event.detail} expired`);
      });
      host.addEventListener('peer:discovery', (event) => {
        const id = event.detail.id;
        if (host.getConnections(id).length === 0) this.dialSome(id.toString(), id);
      });
      host.addEventListener('connection:open', (event) => {
        this.connections.dispatchEvent(new CustomEvent('connection:open', { detail: event.detail.remotePeer.toString() }));
      });
      host.addEventListener('connection:close', (event) => {
        this.connections.dispatchEvent(new CustomEvent('connection:close', { detail: event.detail.remotePeer.toString() }));
      });
      host.addEventListener('peer:connect', (event) => {
        const id = event.detail;
        if (!this.table.get(id.toString())) this.adverts!.ask(id.toString()).catch((error: Error) => log.debug(`ask ${id}: ${error.message}`));
      });
      // Once a DHT peer is connected (identified as one), what the cache holds is announced again.
      await host.register(DHT_PROTOCOL, {
        onConnect: () => {
          if (this.announcedHeld) return;
          this.announcedHeld = true;
          void this.announceHeld();
        },
      });

      await this.info.start();
      await this.cache.start();
      await this.instancesOf.start();
      await this.adverts.start();
      this.control = new ControlServer(dataDir, this.controlHandlers());
      await this.control.start();
      this.startedAt = Date.now();
      // Peers known before a restart: dial them back (they expire as usual if they are gone).
      for (const peer of store.listPeers()) this.dialIfUnknown({ peerId: peer.peerId, addresses: peer.addresses });
      this.keepJoined(this.rejoinDelay);
      log(`started ${host.peerId} on ${this.addresses().join(' ')}`);
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.persistTimer);
    clearTimeout(this.rejoinTimer);
    this.stopping.abort(new Error('the node is stopping'));
    if (this.store) this.savePeers();
    await this.control?.stop();
    await this.instancesOf?.stop();
    await this.adverts?.stop();
    await this.info?.stop();
    await this.cache?.stop();
    await this.releases?.idle();
    await this.host?.stop();
    this.store?.close();
    this.lock?.release();
    this.instancesOf = undefined;
    this.control = this.adverts = this.info = this.cache = this.releases = this.remote = this.blobs = this.host = this.store = this.lock = undefined;
    this.announcedHeld = false;
    this.stopping = new AbortController();
  }

  status(): Record<string, unknown> {
    const host = this.requireHost();
    return {
      peerId: this.peerId, addresses: this.addresses(), dataDir: this.options.dataDir,
      peers: this.table.list().length, connections: host.getConnections().length,
      trusted: this.requireStore().listTrust().length, private: this.options.private, open: this.options.open,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      releases: this.releaseViews(),
    };
  }

  private releaseViews(): ReleaseView[] {
    const releases = this.releases;
    if (!releases) throw new Error('the node is not started');
    return this.requireStore().listReleases().map(({ cid, name, state, source, peer, error, updatedAt }) => {
      const log = releases.buildLog(cid);
      return {
        cid, name, state, ...(source ? { source } : {}), ...(peer ? { peer } : {}), ...(error ? { error } : {}),
        ...(existsSync(log) ? { log } : {}), updatedAt: new Date(updatedAt).toISOString(),
      };
    });
  }

  peers(): PeerView[] {
    return this.table.list().map(({ advert, lastSeen }) => ({
      peerId: advert.peerId, addresses: advert.addresses,
      hardware: { cpus: advert.hardware.cpus, memory: advert.hardware.memory, disk: advert.hardware.disk, arch: advert.hardware.arch, os: advert.hardware.os },
      releases: advert.releases, lastSeen: new Date(lastSeen).toISOString(),
    }));
  }

  /** Supplies a release (design.md §6): a profile path, or a bundle's CID. */
  async supply(release: string, onEvent?: (event: SupplyEvent) => void): Promise<SupplyResult> {
    if (!this.releases) throw new Error('the node is not started');
    const result = await this.releases.supply(release, { signal: this.stopping.signal, ...(onEvent ? { onEvent } : {}) });
    await this.collectGarbage();
    return result;
  }

  /** Evicts least recently used blobs beyond the quota (none without one), except those a supply uses now. */
  async collectGarbage(quota = this.options.cacheQuota): Promise<BlobInfo[]> {
    if (quota === undefined || !this.blobs) return [];
    const busy = new Set(this.requireStore().listReleases('building').map((release) => release.cid));
    const evicted = await this.blobs.gc(quota, busy);
    if (evicted.length) this.logs?.forComponent('cache')(`evicted ${evicted.length} blobs (${evicted.reduce((sum, blob) => sum + blob.size, 0)} bytes) to stay within ${quota} bytes`);
    return evicted;
  }

  /** Connects to a peer by its full address (e.g. to join at run time). */
  async dial(address: string, signal: AbortSignal = AbortSignal.timeout(DIAL_TIMEOUT_MS)): Promise<void> {
    await this.requireHost().dial(parseMultiaddr(address, 'peer', true), { signal });
  }

  /** Whether this node has a connection to `peer` now. */
  isConnected(peer: string): boolean {
    return this.requireHost().getConnections(parsePeerId(peer)).length > 0;
  }

  private async advertContent(): Promise<Omit<Advert, 'peerId' | 'seq' | 'time'>> {
    const { total, free } = this.instancesOf?.capacity() ?? { total: this.options.partitions, free: this.options.partitions };
    const hardware: Hardware = await probeHardware(this.options.dataDir, { total, used: total - free });
    const releases = this.requireStore().listReleases('available').map(({ cid, name }) => ({ cid, name }));
    return { addresses: this.addresses(), hardware, releases };
  }

  /** The DHT keeps provider records in memory only: after a start, the blobs held and their keys are announced again. */
  private async announceHeld(): Promise<void> {
    const log = this.logs!.forComponent('cache');
    try {
      const held = new Set((await this.requireBlobs().list()).map((blob) => blob.cid));
      const keys = new Set(this.requireStore().listCacheEntries().filter((entry) => held.has(entry.cid)).map((entry) => entry.key));
      if (held.size === 0) return;
      await this.remote?.provide([...held], [...keys]);
      log(`announced ${held.size} blobs and ${keys.size} cache keys in the DHT`);
    } catch (error) {
      log.debug(`announcing the cache: ${(error as Error).message}`);
    }
  }

  /** Peers whose adverts list a release: they have built or fetched it. */
  private advertising(release: string): KnownPeer[] {
    return this.table.list().filter((peer) => peer.advert.releases.some((r) => r.cid === release));
  }

  private get rejoinDelay(): number {
    return this.options.rejoinDelayMs ?? REJOIN_FIRST_DELAY_MS;
  }

  /**
   * The bootstrap module dials its peers once. A node left with no connection at all (its bootstrap
   * peers were down, busy or slow to answer, or every peer went away) dials them again, waiting twice
   * as long each time it fails, up to REJOIN_MAX_DELAY_MS.
   */
  private keepJoined(delay: number): void {
    const host = this.host;
    if (!host || this.options.bootstrap.length === 0) return;
    this.rejoinTimer = setTimeout(() => {
      if (host.getConnections().length > 0) return this.keepJoined(this.rejoinDelay);
      const log = this.logs!.forComponent('node');
      void Promise.allSettled(this.options.bootstrap.map((address) => this.dial(address))).then((results) => {
        const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`${this.options.bootstrap[i]}: ${(r.reason as Error).message}`] : []));
        if (failures.length < results.length) return this.keepJoined(this.rejoinDelay);
        log.error(`no bootstrap peer reachable, trying again in ${Math.min(delay * 2, REJOIN_MAX_DELAY_MS) / 1000} s (${failures.join('; ')})`);
        this.keepJoined(Math.min(delay * 2, REJOIN_MAX_DELAY_MS));
      });
    }, delay);
    this.rejoinTimer.unref();
  }

  private savePeers(): void {
    const peers = [...this.unsavedPeers].flatMap((peerId) => this.table.get(peerId) ?? []);
    this.unsavedPeers.clear();
    const decoder = new TextDecoder();
    this.requireStore().upsertPeers(peers.map((peer) => ({ peerId: peer.peerId, addresses: peer.advert.addresses, advert: decoder.decode(peer.wire), lastSeen: peer.lastSeen })));
  }

  private dialIfUnknown(peer: { peerId: string; addresses: readonly string[] }): void {
    const host = this.host;
    // Of two nodes that learn of each other, the one with the smaller PeerId dials: one connection, not two.
    // (String checks first: this runs for every advert received.)
    if (!host || peer.addresses.length === 0 || peer.peerId <= host.peerId.toString()) return;
    if (host.getConnections(parsePeerId(peer.peerId)).length > 0) return;
    this.dialSome(peer.peerId, peer.addresses.map((a) => parseMultiaddr(a, 'advertised')));
  }

  /** Peers being dialled by dialSome(), which count towards WANTED_CONNECTIONS until they connect or fail. */
  private readonly dialling = new Set<string>();

  /**
   * Dials a discovered peer while this node has fewer than WANTED_CONNECTIONS, dials in flight
   * included, and at most MAX_DIALS_IN_FLIGHT at a time: gossip reaches everyone through a few
   * connections each, and connecting every pair costs N² handshakes. When nodes join together, each
   * learns tens of peers at once: dialling them a few at a time lets the connections others open to it
   * count before it dials more.
   */
  private dialSome(peerId: string, target: PeerId | Multiaddr[]): void {
    const host = this.host;
    if (!host || this.dialling.has(peerId) || this.dialling.size >= MAX_DIALS_IN_FLIGHT) return;
    if (host.getConnections().length + this.dialling.size >= WANTED_CONNECTIONS) return;
    this.dialling.add(peerId);
    host.dial(target).then(() => {
      this.dialling.delete(peerId);
      // Still short of connections: the peers heard of while this dial was in flight.
      for (const peer of this.table.list()) this.dialIfUnknown(peer.advert);
    }, (error: Error) => {
      this.dialling.delete(peerId);
      this.logs?.forComponent('node').debug(`dial ${peerId}: ${error.message}`);
    });
  }

  private controlHandlers(): Map<string, ControlHandler> {
    const store = () => this.requireStore();
    const peerParam = (params: unknown): string => {
      const peer = (params as { peer?: unknown } | null)?.peer;
      if (typeof peer !== 'string') throw new InvalidPeerIdError('a PeerId is needed');
      return parsePeerId(peer).toString();
    };
    return new Map<string, ControlHandler>([
      ['status', () => this.status()],
      ['peers', () => this.peers()],
      ['trust.add', (params) => ({ peer: peerParam(params), added: store().addTrust(peerParam(params)) })],
      ['trust.remove', async (params) => {
        const peer = peerParam(params);
        const removed = store().removeTrust(peer);
        // Under --private an untrusted peer may not stay connected either.
        if (removed && this.options.private) await this.requireHost().hangUp(parsePeerId(peer));
        return { peer, removed };
      }],
      ['trust.list', () => store().listTrust()],
      ['supply', async (params, emit) => {
        const release = (params as { release?: unknown } | null)?.release;
        if (typeof release !== 'string' || release === '') throw new SupplyError('a release is needed: a profile path or a CID');
        const { path: _path, ...result } = await this.supply(release, (event) => emit(event.type === 'failed' ? { ...event, error: event.error.message } : event));
        return result;
      }],
      ['cache.list', () => this.cacheList()],
      ...(this.instancesOf?.controlHandlers() ?? []),
      ['cache.stats', async () => ({ ...(await this.requireBlobs().stats()), quota: this.options.cacheQuota ?? null, entries: store().listCacheEntries().length })],
      ['cache.verify', async () => {
        const bad = await this.requireBlobs().verify();
        if (bad.length) this.logs?.forComponent('cache').error(`removed ${bad.length} corrupt blobs: ${bad.join(' ')}`);
        return { checked: (await this.requireBlobs().list()).length + bad.length, removed: bad };
      }],
      ['cache.gc', async (params) => {
        const quota = (params as { quota?: unknown } | null)?.quota ?? this.options.cacheQuota;
        if (quota === undefined) return { evicted: [], freedBytes: 0, quota: null };
        if (typeof quota !== 'number' || !Number.isSafeInteger(quota) || quota < 0) throw new RangeError(`a quota is a number of bytes, not ${JSON.stringify(quota)}`);
        const evicted = await this.collectGarbage(quota);
        return { evicted: evicted.map((blob) => blob.cid), freedBytes: evicted.reduce((sum, blob) => sum + blob.size, 0), quota };
      }],
    ]);
  }

  private requireHost(): Host {
    if (!this.host) throw new Error('the node is not started');
    return this.host;
  }

  /** Every blob with what it is: a release's bundle, an artifact (with its cache key), or neither. */
  private async cacheList(): Promise<CachedBlob[]> {
    const store = this.requireStore();
    const keys = new Map<string, string>();
    for (const entry of store.listCacheEntries()) keys.set(entry.cid, entry.key);
    const blobs = await this.requireBlobs().list();
    return blobs.sort((a, b) => b.lastUsed - a.lastUsed).map(({ cid, size, lastUsed }) => {
      const key = keys.get(cid);
      const release = store.getRelease(cid);
      return {
        cid, size, lastUsed: new Date(lastUsed).toISOString(),
        ...(key ? { kind: 'artifact' as const, key } : release ? { kind: 'bundle' as const, name: release.name } : { kind: 'blob' as const }),
      };
    });
  }

  private requireBlobs(): BlobStore {
    if (!this.blobs) throw new Error('the node is not started');
    return this.blobs;
  }

  private requireStore(): NodeStore {
    if (!this.store) throw new Error('the node is not started');
    return this.store;
  }
}
