// One slapmesh node: its data directory (lock, identity, node.db), its libp2p host, the adverts it
// sends and receives, and the control socket the CLI uses. Constructing it does no I/O.
import type { PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { join } from 'node:path';
import { AdvertService } from './adverts.js';
import type { Advert } from './advert.js';
import { ControlServer, type ControlHandler } from './control.js';
import { lockDataDir, prepareDataDir, type DataDirLock } from './data-dir.js';
import { probeHardware, type Hardware } from './hardware.js';
import { createHost, parseMultiaddr, type Host } from './host.js';
import { loadOrCreateIdentity } from './identity.js';
import { fileLog, type LogSink } from './log.js';
import { PeerTable } from './peer-table.js';
import { NodeStore } from './store.js';
import { infoProtocol, type InfoProtocol } from '../protocols/info/index.js';

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
  readonly partitions: number;
  readonly verbose: boolean;
  readonly advertIntervalMs?: number;
  /** How long a silent peer stays in the table. */
  readonly peerTtlMs?: number;
  readonly stderr?: (line: string) => void;
}

export const DEFAULT_ADVERT_INTERVAL_MS = 5_000;
export const DIAL_TIMEOUT_MS = 10_000;
const PERSIST_PEER_EVERY_MS = 30_000;
/** A node dials discovered peers until it has this many connections (it still accepts more). */
const WANTED_CONNECTIONS = 12;

/** What `slapmesh peers --json` prints for each peer (design.md §8). */
export interface PeerView {
  peerId: string;
  addresses: string[];
  hardware: { cpus: number; memory: number; disk: number; arch: string; os: string };
  releases: { cid: string; name: string }[];
  lastSeen: string;
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
  private adverts?: AdvertService;
  private control?: ControlServer;
  private logs?: LogSink;
  /** The peers this node knows; its events say when one is updated or expires. */
  readonly table: PeerTable;
  /** `connection:open` / `connection:close` with the remote PeerId, as libp2p reports them. */
  readonly connections = new EventTarget();
  private startedAt = 0;

  constructor(readonly options: NodeOptions) {
    const advertInterval = options.advertIntervalMs ?? DEFAULT_ADVERT_INTERVAL_MS;
    this.table = new PeerTable({ ttlMs: options.peerTtlMs ?? advertInterval * 4 });
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
      this.info = infoProtocol({ getAdvert: () => this.adverts!.signed() })({ libp2p: host, logger: this.logs.forComponent('info') });
      this.adverts = new AdvertService({
        key: privateKey, peerId: host.peerId.toString(), table: this.table,
        intervalMs: this.options.advertIntervalMs ?? DEFAULT_ADVERT_INTERVAL_MS,
        build: async () => this.advertContent(),
        log: this.logs.forComponent('adverts'),
      }, { pubsub: host.services.pubsub, info: this.info });

      const persisted = new Map<string, number>();
      this.table.addEventListener('peer:updated', (event) => {
        const peer = event.detail;
        // Adverts change every few seconds (load, free memory): keep node.db writes to one per peer now and then.
        if (peer.lastSeen - (persisted.get(peer.peerId) ?? -Infinity) >= PERSIST_PEER_EVERY_MS) {
          persisted.set(peer.peerId, peer.lastSeen);
          store.upsertPeer({ peerId: peer.peerId, addresses: peer.advert.addresses, advert: new TextDecoder().decode(peer.wire), lastSeen: peer.lastSeen });
        }
        this.dialIfUnknown(peer.advert);
      });
      this.table.addEventListener('peer:expired', (event) => {
        persisted.delete(event.detail);
        store.deletePeer(event.detail);
        log(`peer ${event.detail} expired`);
      });
      host.addEventListener('peer:discovery', (event) => {
        const id = event.detail.id;
        if (host.getConnections(id).length === 0 && host.getConnections().length < WANTED_CONNECTIONS) host.dial(id).catch((error: Error) => log.debug(`dial ${id}: ${error.message}`));
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

      await this.info.start();
      await this.adverts.start();
      this.control = new ControlServer(dataDir, this.controlHandlers());
      await this.control.start();
      this.startedAt = Date.now();
      // Peers known before a restart: dial them back (they expire as usual if they are gone).
      for (const peer of store.listPeers()) this.dialIfUnknown({ peerId: peer.peerId, addresses: peer.addresses });
      log(`started ${host.peerId} on ${this.addresses().join(' ')}`);
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  async stop(): Promise<void> {
    await this.control?.stop();
    await this.adverts?.stop();
    await this.info?.stop();
    await this.host?.stop();
    this.store?.close();
    this.lock?.release();
    this.control = this.adverts = this.info = this.host = this.store = this.lock = undefined;
  }

  status(): Record<string, unknown> {
    const host = this.requireHost();
    return {
      peerId: this.peerId, addresses: this.addresses(), dataDir: this.options.dataDir,
      peers: this.table.list().length, connections: host.getConnections().length,
      trusted: this.requireStore().listTrust().length, private: this.options.private, open: this.options.open,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
    };
  }

  peers(): PeerView[] {
    return this.table.list().map(({ advert, lastSeen }) => ({
      peerId: advert.peerId, addresses: advert.addresses,
      hardware: { cpus: advert.hardware.cpus, memory: advert.hardware.memory, disk: advert.hardware.disk, arch: advert.hardware.arch, os: advert.hardware.os },
      releases: advert.releases, lastSeen: new Date(lastSeen).toISOString(),
    }));
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
    const hardware: Hardware = await probeHardware(this.options.dataDir, { total: this.options.partitions, used: 0 });
    const releases = this.requireStore().listReleases('available').map(({ cid, name }) => ({ cid, name }));
    return { addresses: this.addresses(), hardware, releases };
  }

  private dialIfUnknown(peer: { peerId: string; addresses: readonly string[] }): void {
    const host = this.host;
    if (!host || peer.peerId === host.peerId.toString()) return;
    const id = parsePeerId(peer.peerId);
    // Of two nodes that learn of each other, the one with the smaller PeerId dials: one connection, not two.
    if (host.getConnections(id).length > 0 || peer.addresses.length === 0 || peer.peerId < host.peerId.toString()) return;
    // Gossip reaches everyone through a few connections each; connecting every pair costs N² handshakes.
    if (host.getConnections().length >= WANTED_CONNECTIONS) return;
    host.dial(peer.addresses.map((a) => parseMultiaddr(a, 'advertised'))).catch(() => undefined);
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
    ]);
  }

  private requireHost(): Host {
    if (!this.host) throw new Error('the node is not started');
    return this.host;
  }

  private requireStore(): NodeStore {
    if (!this.store) throw new Error('the node is not started');
    return this.store;
  }
}
