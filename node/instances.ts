// Instances on a node (docs/instances.md): the owner side (OwnedInstances) and the host side
// (HostedInstances) wired to the instance protocol, the placement index fed by adverts, the partitions,
// the supervisor and the promises; and the control socket's `request` and `instance.*` methods.
import { peerIdFromString } from '@libp2p/peer-id';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import type { ControlHandler } from './control.js';
import type { Host } from './host.js';
import { HostedInstances, type OwnerApi } from './hosting.js';
import type { LogSink } from './log.js';
import { OwnedInstances, reached, UnknownInstanceError, type HostApi } from './owned.js';
import type { ChildAnswer, ChildRequest } from './partition-socket.js';
import { Partitions } from './partitions.js';
import type { KnownPeer, PeerTable } from './peer-table.js';
import { PlacementIndex } from './placement.js';
import { PromiseRunner } from './promises.js';
import { SupplyActivity, type Releases, type SupplyEvent } from './releases.js';
import type { InstanceRequest, NodeStore, RequestedState, StoredHosted, StoredOwned } from './store.js';
import { Supervisor } from './supervisor.js';
import { isBlobCid } from './cache/cid.js';
import { instanceProtocol, type InstanceProtocol, type InstanceService } from '../protocols/instance/index.js';

export interface InstancesInit {
  dataDir: string;
  store: NodeStore;
  libp2p: Host;
  table: PeerTable;
  releases: Releases;
  /** Untrusted peers may request the releases this node already supplies. */
  open: boolean;
  /** How many partitions this node hosts at most. */
  capacity: number;
  ports?: { from: number; to: number };
  logs: LogSink;
  signal: AbortSignal;
  /** How long a host may stay unreachable before the instances this node owns there move. */
  hostingLeaseMs?: number;
  progressReportGapMs?: number;
}

/** What `request`, `instance show` and `instance list` answer (docs/cli.md). */
export interface InstanceJson {
  reference: string;
  owner: string;
  host: string | null;
  state: RequestedState;
  status: string;
  message?: string;
  connection: Record<string, string>;
  release: string;
  type: string;
  epoch: number;
}

/** A control request that is not well formed. */
export class InvalidRequestError extends Error {
  override name = 'InvalidRequestError';
}

export class Instances {
  readonly index = new PlacementIndex();
  readonly partitions: Partitions;
  readonly owned: OwnedInstances;
  readonly hosted: HostedInstances;
  private readonly protocol: InstanceProtocol;
  private readonly self: string;
  /** Per child reference: whether it was ready and its connection, as its parent's last deployment saw them. */
  private readonly childSeen = new Map<string, string>();

  constructor(private readonly init: InstancesInit) {
    const { store, logs } = init;
    this.self = init.libp2p.peerId.toString();
    this.partitions = new Partitions({
      store, root: join(init.dataDir, 'instances'), capacity: init.capacity, log: logs.forComponent('partitions'),
      ...(init.ports ? { ports: init.ports } : {}),
    });
    this.protocol = instanceProtocol({ service: this.service() })({ libp2p: init.libp2p, logger: logs.forComponent('instance') });
    this.owned = new OwnedInstances({
      store, index: this.index, host: (peer) => this.hostApi(peer), log: logs.forComponent('owner'),
      ...(init.hostingLeaseMs ? { leaseMs: init.hostingLeaseMs } : {}),
    });
    this.hosted = new HostedInstances({
      store, self: this.self, partitions: this.partitions,
      ...(init.hostingLeaseMs ? { leaseMs: init.hostingLeaseMs } : {}),
      ...(init.progressReportGapMs !== undefined ? { progressReportGapMs: init.progressReportGapMs } : {}),
      supervisor: new Supervisor({ store, log: logs.forComponent('supervisor') }),
      promises: new PromiseRunner({ log: logs.forComponent('promises') }),
      supply: async (release, signal, onStep) => {
        const activity = new SupplyActivity();
        const onEvent = (event: SupplyEvent) => {
          const step = activity.after(event);
          if (step !== undefined) onStep?.(step);
        };
        return (await init.releases.supply(release, { signal, onEvent })).path;
      },
      refusal: (from, release) => this.refusal(from, release),
      owner: (peer) => this.ownerApi(peer),
      requestChild: (parent, child) => this.requestChild(parent, child),
      destroyChildren: async (parent) => {
        await Promise.allSettled(this.owned.list().filter((o) => o.parent === parent).map((o) => this.owned.setState(o.reference, 'destroyed')));
      },
      log: logs.forComponent('host'),
    });
    this.owned.addEventListener('instance:changed', (event) => this.childMayHaveChanged(event.detail));
  }

  async start(): Promise<void> {
    for (const peer of this.init.table.list()) this.indexPeer(peer);
    this.init.table.addEventListener('peer:updated', (event) => this.indexPeer(event.detail));
    this.init.table.addEventListener('peer:expired', (event) => this.index.remove(event.detail));
    await this.protocol.start();
    await this.hosted.start();
    this.owned.start();
  }

  async stop(): Promise<void> {
    this.owned.stop();
    await this.hosted.stop();
    await this.protocol.stop();
  }

  /** This node has a release to deploy: get ready to host its instances. */
  prepareToHost(): void {
    this.hosted.prepare();
  }

  /** Partitions for the advert: how many this node has, and how many are free. */
  capacity(): { total: number; free: number } {
    return this.partitions.counts();
  }

  controlHandlers(): [string, ControlHandler][] {
    return [
      ['request', async (params, emit) => {
        const { request, peer, waitMs } = this.parseRequest(params);
        // A path or URL is bundled here: the request carries the CID, hosts fetch the bundle from this node.
        if (!isBlobCid(request.release)) request.release = (await this.init.releases.bundle(request.release, this.init.signal)).cid;
        this.indexSelf();
        const onChange = (event: CustomEvent<StoredOwned>) => {
          if (event.detail.reference === request.reference) emit({ status: event.detail.status, ...(event.detail.message ? { message: event.detail.message } : {}) });
        };
        this.owned.addEventListener('instance:changed', onChange);
        try {
          const placed = await this.owned.request(request, { ...(peer ? { peer } : {}), signal: this.init.signal });
          const final = waitMs > 0 ? (await this.owned.waitReached(request.reference, AbortSignal.any([AbortSignal.timeout(waitMs), this.init.signal]))) ?? placed : placed;
          return { instance: this.ownedJson(final), reached: reached(final) };
        } finally {
          this.owned.removeEventListener('instance:changed', onChange);
        }
      }],
      ['instance.list', (params) => ((params as { hosted?: unknown } | null)?.hosted === true
        ? this.hosted.list().filter((h) => h.epoch > 0).map((h) => this.hostedJson(h))
        : this.owned.list().map((o) => this.ownedJson(o)))],
      ['instance.show', (params) => {
        const reference = referenceParam(params);
        const owned = this.owned.get(reference);
        if (!owned) throw new UnknownInstanceError(`this node owns no instance ${reference}`);
        return this.ownedJson(owned);
      }],
      ...(['started', 'stopped', 'destroyed'] as const).map((state): [string, ControlHandler] => [
        `instance.${{ started: 'start', stopped: 'stop', destroyed: 'destroy' }[state]}`,
        async (params) => this.ownedJson(await this.owned.setState(referenceParam(params), state, this.init.signal)),
      ]),
    ];
  }

  private parseRequest(params: unknown): { request: InstanceRequest; peer?: string; waitMs: number } {
    const p = (params ?? {}) as Record<string, unknown>;
    const reference = referenceParam(p);
    const release = p['release'];
    if (typeof release !== 'string' || release === '') throw new InvalidRequestError('a release is needed: a profile path, its URL or a CID');
    const type = p['type'] ?? 'default';
    if (typeof type !== 'string') throw new InvalidRequestError(`not a software type: ${JSON.stringify(type)}`);
    const parameters = p['parameters'] ?? {};
    if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) throw new InvalidRequestError('parameters must be a JSON object');
    const state = p['state'] ?? 'started';
    if (state !== 'started' && state !== 'stopped' && state !== 'destroyed') throw new InvalidRequestError(`not a state: ${JSON.stringify(state)}`);
    const waitMs = p['waitMs'] ?? 0;
    if (typeof waitMs !== 'number' || !(waitMs >= 0)) throw new InvalidRequestError('waitMs must be a number of milliseconds');
    const peer = p['peer'];
    if (peer !== undefined && (typeof peer !== 'string' || !isPeerId(peer))) throw new InvalidRequestError(`not a PeerId: ${JSON.stringify(peer)}`);
    return {
      request: { reference, release, type, parameters: parameters as Record<string, unknown>, state },
      ...(peer ? { peer } : {}), waitMs,
    };
  }

  private service(): InstanceService {
    return {
      reserve: async (from, request) => this.hosted.reserve(from, request),
      confirm: async (from, reference, epoch) => this.hosted.confirm(from, reference, epoch),
      update: async (from, request) => this.hosted.update(from, request),
      status: async (from, reference) => this.hosted.status(from, reference),
      renew: async (from, instances) => this.hosted.renew(from, instances),
      list: async (from) => this.hosted.listFor(from),
      report: async (from, report) => this.owned.report(from, report),
      check: async (from, reference, epoch) => this.owned.check(from, reference, epoch),
    };
  }

  /** This node's own host side, or a peer's through the instance protocol. */
  private hostApi(peer: string): HostApi {
    if (peer === this.self) {
      return {
        reserve: (request) => this.hosted.reserve(this.self, request),
        confirm: (reference, epoch) => this.hosted.confirm(this.self, reference, epoch),
        update: (request) => this.hosted.update(this.self, request),
        renew: async (instances) => this.hosted.renew(this.self, instances),
      };
    }
    const id = peerIdFromString(peer);
    return {
      reserve: (request, signal) => this.protocol.reserve(id, request, { signal }),
      confirm: (reference, epoch, signal) => this.protocol.confirm(id, reference, epoch, { signal }),
      update: (request, signal) => this.protocol.update(id, request, { signal }),
      renew: (instances, signal) => this.protocol.renew(id, instances, { signal }),
    };
  }

  private ownerApi(peer: string): OwnerApi {
    if (peer === this.self) {
      return {
        report: async (report) => this.owned.report(this.self, report),
        check: async (reference, epoch) => this.owned.check(this.self, reference, epoch),
      };
    }
    const id = peerIdFromString(peer);
    return {
      report: (report, signal) => this.protocol.report(id, report, { signal }),
      check: (reference, epoch, signal) => this.protocol.check(id, reference, epoch, { signal }),
    };
  }

  /** Trusted peers may have any release here; with --open, others only those this node already supplies. */
  private refusal(from: string, release: string): string | undefined {
    const { store } = this.init;
    if (from === this.self || store.isTrusted(from)) return undefined;
    if (this.init.open && store.getRelease(release)?.state === 'available') return undefined;
    return this.init.open
      ? `${from} is not trusted here, and release ${release} is not supplied on this node (--open admits only those)`
      : `${from} is not trusted by this node (it may run instances for peers in its trust list, or with --open for the releases it supplies)`;
  }

  /** A child instance, owned by this node, recorded with its parent; its reference is made unique by the parent's. */
  private async requestChild(parent: string, child: ChildRequest): Promise<ChildAnswer> {
    const release = isBlobCid(child.release) ? child.release : (await this.init.releases.bundle(child.release, this.init.signal)).cid;
    this.indexSelf();
    const owned = await this.owned.request({
      reference: `${parent}/${child.name}`, release, type: child.type || 'default', parameters: child.parameters, state: child.state ?? 'started',
    }, { parent, signal: this.init.signal });
    this.childSeen.set(owned.reference, childState(owned));
    return { ready: reached(owned), connection: owned.connection, status: owned.status, ...(owned.message ? { message: owned.message } : {}) };
  }

  /** A child's readiness or connection changed since its parent last saw it: the parent deploys again. */
  private childMayHaveChanged(owned: StoredOwned): void {
    if (!owned.parent) return;
    const seen = this.childSeen.get(owned.reference);
    const now = childState(owned);
    if (seen === undefined || seen === now) return;
    this.childSeen.set(owned.reference, now);
    this.hosted.childChanged(owned.parent);
  }

  /** This node may host what it requests too: it is ranked with the others, from what it knows of itself now. */
  private indexSelf(): void {
    const { total, free } = this.partitions.counts();
    const releases = this.init.store.listReleases('available').map((release) => release.cid);
    this.index.update({ peerId: this.self, releases, free, total, load: loadavg()[0]! / availableParallelism() });
  }

  private indexPeer(peer: KnownPeer): void {
    const { hardware, releases } = peer.advert;
    this.index.update({
      peerId: peer.peerId, releases: releases.map((r) => r.cid), free: hardware.partitions.free, total: hardware.partitions.total,
      load: hardware.load[0] / Math.max(1, hardware.cpus),
    });
  }

  private ownedJson(owned: StoredOwned): InstanceJson {
    return {
      reference: owned.reference, owner: this.self, host: owned.host ?? null, state: owned.state, status: owned.status,
      ...(owned.message ? { message: owned.message } : {}), connection: owned.connection, release: owned.release, type: owned.type, epoch: owned.epoch,
    };
  }

  private hostedJson(hosted: StoredHosted): InstanceJson {
    return {
      reference: hosted.reference, owner: hosted.owner, host: this.self, state: hosted.state, status: hosted.status,
      ...(hosted.message ? { message: hosted.message } : {}), connection: hosted.connection, release: hosted.release, type: hosted.type, epoch: hosted.epoch,
    };
  }
}

function referenceParam(params: unknown): string {
  const reference = (params as { reference?: unknown } | null)?.reference;
  if (typeof reference !== 'string' || reference === '' || reference.length > 256 || /[\x00-\x1f]/.test(reference)) {
    throw new InvalidRequestError(`a reference is a name of 1 to 256 printable characters, not ${JSON.stringify(reference)}`);
  }
  return reference;
}

function childState(owned: StoredOwned): string {
  return JSON.stringify([reached(owned), owned.connection]);
}

function isPeerId(text: string): boolean {
  try {
    peerIdFromString(text);
    return true;
  } catch {
    return false;
  }
}
