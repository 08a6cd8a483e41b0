// The host's side of instances (docs/instances.md): admitting reservations atomically, deploying confirmed
// instances into partitions (supply the release, run its instance profile, start its services, run its
// promises), reporting status and connection parameters to the owner, and bringing instances back after a
// restart — asking each owner first whether its copy is still the one placed. The same question is asked of
// an owner that stopped renewing an instance's lease while this node kept running (it was frozen, or cut off,
// and the owner moved the instance meanwhile): so a split heals to one copy.
import { join } from 'node:path';
import { deployInstance, prepareDeployments } from './deploy.js';
import { KeyedQueue } from './keyed-queue.js';
import type { Logger } from './log.js';
import { HOSTING_LEASE_MS } from './owned.js';
import { PartitionSocket, type ChildAnswer, type ChildRequest, type PartitionParameters } from './partition-socket.js';
import type { Partitions } from './partitions.js';
import type { PromiseResult, PromiseRunner } from './promises.js';
import type { InstanceRequest, NodeStore, StoredHosted } from './store.js';
import type { Supervisor } from './supervisor.js';
import { toMessage, type Answer, type InstanceReport, type InstanceView } from '../protocols/instance/index.js';

/** How long a reservation waits for its confirmation. */
export const RESERVE_LEASE_MS = 10_000;
/** After a deployment, promises are run again after this, then twice as long each time up to the max, until they pass… */
export const PROMISE_RETRY_MS = 200;
export const PROMISE_RETRY_MAX_MS = 2_000;
/** …for at most this long; then the instance is in error with the promise's message. */
export const PROMISE_READY_TIMEOUT_MS = 60_000;
/** Once ready, promises run this often. */
export const PROMISE_INTERVAL_MS = 30_000;
/** A report the owner did not take is sent again after this (doubling up to a minute). */
export const REPORT_RETRY_MS = 2_000;
/**
 * A deployment's progress (a new message, or connection parameters, while the status the owner knows stays)
 * reaches the owner at most this often: a quick deployment costs one report (`ready`), not one per step.
 */
export const PROGRESS_REPORT_GAP_MS = 2_000;
/** A failed deployment is tried again after this long, then twice as long each time, up to the maximum. */
export const DEPLOY_RETRY_MS = 5_000;
export const DEPLOY_RETRY_MAX_MS = 5 * 60_000;
/** Bound of one call to an owner. */
export const OWNER_CALL_TIMEOUT_MS = 10_000;
/** An owner renews every third of a lease: after this many leases without a word, the host asks it. */
export const SILENT_OWNER_LEASES = 2;

/** What a host asks an owner: the instance protocol's client, or this node's own owner side. */
export interface OwnerApi {
  report(report: InstanceReport, signal: AbortSignal): Promise<Answer<object>>;
  check(reference: string, epoch: number, signal: AbortSignal): Promise<Answer<{ current: boolean }>>;
}

export interface HostingInit {
  store: NodeStore;
  /** This node's PeerId (the computer id of its partitions). */
  self: string;
  partitions: Partitions;
  supervisor: Supervisor;
  promises: PromiseRunner;
  /** Makes a release available here; resolves with its software root. `onStep`: what it is doing (node/releases.ts SupplyActivity). */
  supply: (release: string, signal: AbortSignal, onStep?: (step: string) => void) => Promise<string>;
  /** Why `from` may not have an instance of `release` here, or undefined when it may. */
  refusal: (from: string, release: string) => string | undefined;
  owner: (peerId: string) => OwnerApi;
  /** Requests a child instance for the hosted instance `parent` (`<owner>/<reference>`), as its owner. */
  requestChild: (parent: string, child: ChildRequest) => Promise<ChildAnswer>;
  /** Destroys the children the hosted instance `parent` requested. */
  destroyChildren: (parent: string) => Promise<void>;
  log: Logger;
  /** The owners' hosting lease (default HOSTING_LEASE_MS). */
  leaseMs?: number;
  /** Default PROGRESS_REPORT_GAP_MS. */
  progressReportGapMs?: number;
  now?: () => number;
}

/** `<owner>/<reference>`: the key of a hosted instance in logs and for its children. */
export const hostedKey = (owner: string, reference: string) => `${owner}/${reference}`;

export class HostedInstances {
  private readonly now: () => number;
  private readonly sockets = new Map<number, PartitionSocket>();
  private readonly reservationTimers = new Map<string, NodeJS.Timeout>();
  private readonly reportTimers = new Map<string, NodeJS.Timeout>();
  /** Per instance whose deployment failed, when it is tried again and the delay before that. */
  private readonly deployRetries = new Map<string, { timer: NodeJS.Timeout; delay: number }>();
  /** Per instance, the report on its way to the owner, and the one to send after it. */
  private readonly reportsInFlight = new Map<string, { next?: { hosted: StoredHosted; status: string } }>();
  /** Per instance, the status its owner knows (from a report, or its confirm or update answered), and since when. */
  private readonly ownerKnows = new Map<string, { status: string; at: number }>();
  /** One deployment at a time per instance; a change asked meanwhile runs once after it. */
  private readonly queue = new KeyedQueue();
  private readonly queued = new Set<string>();
  private readonly stopping = new AbortController();
  /** Per instance, when its owner last renewed or confirmed it (or this node started). */
  private readonly heardAt = new Map<string, number>();
  private ownersTimer: NodeJS.Timeout | undefined;

  constructor(private readonly init: HostingInit) {
    this.now = init.now ?? Date.now;
  }

  /**
   * After a restart: kills the services a killed node left running, drops unconfirmed reservations, and
   * asks each owner whether its copies are current — destroying superseded ones, reviving the others.
   */
  async start(): Promise<void> {
    const reaped = await this.init.supervisor.reap();
    if (reaped > 0) this.init.log(`stopped ${reaped} services left running by the previous run`);
    for (const hosted of this.init.store.listHosted()) {
      if (hosted.epoch === 0) await this.drop(hosted, 'its reservation was not confirmed before the node stopped');
      else void this.askOwner(hosted, 'revive');
    }
    this.ownersTimer = setInterval(() => this.askSilentOwners(), this.leaseMs);
    this.ownersTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopping.abort(new Error('the node is stopping'));
    clearInterval(this.ownersTimer);
    for (const timer of [...this.reservationTimers.values(), ...this.reportTimers.values()]) clearTimeout(timer);
    for (const { timer } of this.deployRetries.values()) clearTimeout(timer);
    await this.queue.idle();
    this.init.promises.stopAll();
    await this.init.supervisor.stopAll();
    await Promise.all([...this.sockets.values()].map((socket) => socket.stop()));
    this.sockets.clear();
  }

  /**
   * Starts the processes deployments use (the program launcher, the buildout runners) ahead of the first
   * deployment, which would otherwise wait for them — and every node's first ones in a burst would stall
   * their event loop with the spawns (each a fork of this large process).
   */
  prepare(): void {
    if (this.stopping.signal.aborted) return; // a release made available while the node stops
    this.init.supervisor.prepare();
    prepareDeployments();
  }

  list(): StoredHosted[] {
    return this.init.store.listHosted();
  }

  // ---- the instance protocol, host side: `from` is the connection's PeerId ----

  async reserve(from: string, request: InstanceRequest): Promise<Answer<{ lease: number; free: number }>> {
    const refusal = this.init.refusal(from, request.release);
    if (refusal) return { ok: false, code: 'refused', reason: refusal };
    const existing = this.init.store.getHosted(from, request.reference);
    if (existing) return { ok: true, lease: RESERVE_LEASE_MS, free: this.init.partitions.counts().free };
    const partition = await this.init.partitions.claim(from, request.reference);
    if (!partition) {
      const { total } = this.init.partitions.counts();
      return { ok: false, code: 'refused', reason: `no free partition (all ${total} in use)` };
    }
    const leaseUntil = this.now() + RESERVE_LEASE_MS;
    this.init.store.putHosted({
      ...request, owner: from, epoch: 0, status: 'reserved', connection: {}, partition: partition.id, leaseUntil, confirmed: true, updatedAt: this.now(),
    });
    this.expireLater(from, request.reference);
    return { ok: true, lease: RESERVE_LEASE_MS, free: this.init.partitions.counts().free };
  }

  async confirm(from: string, reference: string, epoch: number): Promise<Answer<object>> {
    const hosted = this.init.store.getHosted(from, reference);
    if (!hosted) return { ok: false, code: 'not-found', reason: `no reservation of ${reference} (it may have expired)` };
    if (epoch < hosted.epoch) return { ok: false, code: 'stale', reason: `${reference} is at epoch ${hosted.epoch} here` };
    this.clearReservation(from, reference);
    const confirmed: StoredHosted = { ...hosted, epoch, confirmed: true, updatedAt: this.now() };
    delete confirmed.leaseUntil;
    this.init.store.putHosted(confirmed);
    this.heardAt.set(hostedKey(from, reference), this.now());
    // The owner takes a confirmed placement as on its way: the first steps of the deployment are progress.
    this.ownerKnows.set(hostedKey(from, reference), { status: 'deploying', at: this.now() });
    this.schedule(from, reference);
    return { ok: true };
  }

  async update(from: string, request: InstanceRequest & { epoch: number }): Promise<Answer<{ instance: InstanceView }>> {
    const hosted = this.init.store.getHosted(from, request.reference);
    if (!hosted || hosted.epoch === 0) return { ok: false, code: 'not-found', reason: `no instance ${request.reference} of yours here` };
    if (request.epoch < hosted.epoch) return { ok: false, code: 'stale', reason: `${request.reference} is at epoch ${hosted.epoch} here` };
    const { epoch, ...fields } = request;
    const changed = JSON.stringify(requestOf(hosted)) !== JSON.stringify(fields) || epoch !== hosted.epoch;
    // A change is deployed again: until then the instance is not what the owner asked for.
    const updated: StoredHosted = { ...hosted, ...fields, epoch, updatedAt: this.now(), ...(changed ? { status: 'deploying' as const } : {}) };
    if (request.state === 'destroyed') {
      await this.queue.run(hostedKey(from, request.reference), () => this.destroy(updated, false));
      return { ok: true, instance: { ...view(updated), status: 'destroyed' } };
    }
    if (changed) {
      this.init.store.putHosted(updated);
      this.ownerKnows.set(hostedKey(from, request.reference), { status: updated.status, at: this.now() });
      this.schedule(from, request.reference);
    }
    return { ok: true, instance: view(updated) };
  }

  status(from: string, reference: string): Answer<{ instance: InstanceView }> {
    const hosted = this.init.store.getHosted(from, reference);
    if (!hosted) return { ok: false, code: 'not-found', reason: `no instance ${reference} of yours here` };
    return { ok: true, instance: view(hosted) };
  }

  renew(from: string, instances: readonly { reference: string; epoch: number }[]): Answer<{ unknown: string[] }> {
    const unknown = instances.filter(({ reference, epoch }) => {
      const hosted = this.init.store.getHosted(from, reference);
      return !hosted || hosted.epoch === 0 || hosted.epoch < epoch;
    }).map(({ reference }) => reference);
    // The owner answers: instances revived while it was away are confirmed by this.
    for (const { reference, epoch } of instances) {
      const hosted = this.init.store.getHosted(from, reference);
      if (!hosted || hosted.epoch !== epoch) continue;
      this.heardAt.set(hostedKey(from, reference), this.now());
      if (!hosted.confirmed) this.init.store.putHosted({ ...hosted, confirmed: true, updatedAt: this.now() });
    }
    return { ok: true, unknown };
  }

  listFor(from: string): Answer<{ instances: InstanceView[] }> {
    return { ok: true, instances: this.init.store.listHosted(from).filter((hosted) => hosted.epoch > 0).map(view) };
  }

  /** A child of a hosted instance changed (its connection, or whether it is ready): deploy the parent again. */
  childChanged(parent: string): void {
    const hosted = this.init.store.listHosted().find((h) => hostedKey(h.owner, h.reference) === parent);
    if (hosted && hosted.epoch > 0) this.schedule(hosted.owner, hosted.reference);
  }

  // ---- deployment ----

  /** Deploys an instance again after what it runs changed; coalesces requests made while one is queued. */
  private schedule(owner: string, reference: string): void {
    const key = hostedKey(owner, reference);
    if (this.queued.has(key)) return;
    this.queued.add(key);
    void this.queue.run(key, async () => {
      this.queued.delete(key);
      await this.reconcile(owner, reference);
    });
  }

  /** Brings a hosted instance to its requested state. */
  private async reconcile(owner: string, reference: string): Promise<void> {
    let hosted = this.init.store.getHosted(owner, reference);
    if (!hosted || hosted.epoch === 0 || this.stopping.signal.aborted) return;
    if (hosted.state === 'destroyed') return this.destroy(hosted, true);
    const signal = this.stopping.signal;
    try {
      const supplying = `supplying release ${hosted.release}`;
      const supplyingRow = this.setStatus(hosted, 'deploying', supplying);
      hosted = supplyingRow;
      // Each build step and download reaches the owner as progress (reportProgress): `request --wait` shows
      // them. setStatus changes the instance's latest row, whichever row it is handed.
      const softwareRoot = await this.init.supply(hosted.release, signal, (step) => this.setStatus(supplyingRow, 'deploying', `${supplying}: ${step}`));
      hosted = this.setStatus(hosted, 'deploying', 'running the instance profile');
      const socket = await this.socketOf(hosted);
      const folder = this.init.partitions.folder(hosted.partition);
      const { partition, type, state, release } = hosted;
      // One per core at once, whatever the burst of requests (node/buildout-runners.ts).
      await deployInstance({
        folder, partitionId: partition, softwareRoot, type, requestedState: state,
        computerId: this.init.self, releaseCid: release, token: socket.token, socketPath: socket.path, signal, log: this.init.log,
        parameters: await socket.parameters(),
      });
      this.forgetRetry(owner, reference);
      if (hosted.state === 'stopped') {
        this.init.promises.unwatch(hosted.partition);
        await this.init.supervisor.stop(hosted.partition);
        this.setStatus(hosted, 'stopped');
        return;
      }
      await this.init.supervisor.start(hosted.partition, folder);
      hosted = this.setStatus(hosted, 'deploying', 'waiting for the promises');
      const failing = await this.untilPromisesPass(hosted.partition, signal);
      hosted = this.current(hosted);
      if (failing) this.setStatus(hosted, 'error', failing);
      else this.setStatus(hosted, 'ready');
      this.init.promises.watch(hosted.partition, folder, PROMISE_INTERVAL_MS, (results) => this.promisesRan(owner, reference, results));
    } catch (error) {
      if (signal.aborted) return;
      this.init.log.error(`${hostedKey(owner, reference)}: ${(error as Error).message}`);
      const latest = this.init.store.getHosted(owner, reference);
      if (latest) this.setStatus(latest, 'failed', `${(error as Error).message} (trying again in ${this.retryLater(owner, reference) / 1000} s)`);
    }
  }

  /** A deployment went through (or the instance is gone): no retry planned, and the back-off starts afresh. */
  private forgetRetry(owner: string, reference: string): void {
    const key = hostedKey(owner, reference);
    clearTimeout(this.deployRetries.get(key)?.timer);
    this.deployRetries.delete(key);
  }

  /**
   * A deployment that failed is tried again later, as slapgrid does at each run: what failed is often
   * passing — a provider too busy to answer, a port taken — and giving up would leave the instance failed
   * for good. Back-off from DEPLOY_RETRY_MS, doubling up to DEPLOY_RETRY_MAX_MS; returns the delay.
   */
  private retryLater(owner: string, reference: string): number {
    const key = hostedKey(owner, reference);
    const previous = this.deployRetries.get(key);
    clearTimeout(previous?.timer);
    const delay = previous ? Math.min(previous.delay * 2, DEPLOY_RETRY_MAX_MS) : DEPLOY_RETRY_MS;
    const timer = setTimeout(() => this.schedule(owner, reference), delay);
    timer.unref();
    this.deployRetries.set(key, { timer, delay });
    return delay;
  }

  /** Runs the promises until all pass (undefined) or PROMISE_READY_TIMEOUT_MS passed (the first failure). */
  private async untilPromisesPass(partition: number, signal: AbortSignal): Promise<string | undefined> {
    const deadline = this.now() + PROMISE_READY_TIMEOUT_MS;
    for (let delay = PROMISE_RETRY_MS; ; delay = Math.min(delay * 2, PROMISE_RETRY_MAX_MS)) {
      const failure = firstFailure(await this.init.promises.checkNow(partition, this.init.partitions.folder(partition)));
      if (!failure || this.now() >= deadline) return failure;
      await new Promise((resolve) => setTimeout(resolve, delay).unref());
      signal.throwIfAborted();
    }
  }

  private promisesRan(owner: string, reference: string, results: readonly PromiseResult[]): void {
    const hosted = this.init.store.getHosted(owner, reference);
    if (!hosted || this.queued.has(hostedKey(owner, reference))) return;
    const failure = firstFailure(results);
    if (failure && hosted.status === 'ready') this.setStatus(hosted, 'error', failure);
    else if (!failure && hosted.status === 'error') this.setStatus(hosted, 'ready');
  }

  /** The partition's socket, started on first use. */
  private async socketOf(hosted: StoredHosted): Promise<PartitionSocket> {
    let socket = this.sockets.get(hosted.partition);
    if (socket) return socket;
    const partition = this.init.store.listPartitions().find((p) => p.id === hosted.partition)!;
    const path = join(this.init.partitions.folder(hosted.partition), '.slapmesh', 'slap.sock');
    const key = hostedKey(hosted.owner, hosted.reference);
    socket = new PartitionSocket({
      path, token: partition.token, log: this.init.log,
      backend: {
        parameters: (): PartitionParameters => {
          const current = this.init.store.getHosted(hosted.owner, hosted.reference) ?? hosted;
          return {
            parameters: current.parameters, softwareType: current.type, partitionId: `slappart${partition.id}`, computerId: this.init.self,
            instanceTitle: current.reference, rootInstanceTitle: current.reference, ipv4: [partition.address], ipv6: [], ports: partition.ports,
          };
        },
        publish: async (connection) => {
          const current = this.init.store.getHosted(hosted.owner, hosted.reference);
          if (current) this.init.store.putHosted({ ...current, connection, updatedAt: this.now() });
        },
        request: (child) => this.init.requestChild(key, child),
      },
    });
    await socket.start();
    this.sockets.set(hosted.partition, socket);
    return socket;
  }

  /** Stops and removes everything of an instance, frees its partition, and tells the owner (`notify`). */
  private async destroy(hosted: StoredHosted, notify: boolean): Promise<void> {
    const key = hostedKey(hosted.owner, hosted.reference);
    this.init.promises.unwatch(hosted.partition);
    await this.init.supervisor.stop(hosted.partition);
    await this.sockets.get(hosted.partition)?.stop();
    this.sockets.delete(hosted.partition);
    await this.init.destroyChildren(key).catch((error: Error) => this.init.log.error(`${key}: destroying its children: ${error.message}`));
    await this.init.partitions.free(hosted.partition);
    this.init.store.deleteHosted(hosted.owner, hosted.reference);
    this.forgetRetry(hosted.owner, hosted.reference);
    this.heardAt.delete(key);
    clearTimeout(this.reportTimers.get(key));
    this.reportTimers.delete(key);
    this.init.log(`${key} destroyed`);
    if (notify) this.sendReport({ ...hosted, status: 'stopped' }, 'destroyed');
    this.ownerKnows.delete(key);
  }

  /** A reservation that was never confirmed: its partition goes back. */
  private async drop(hosted: StoredHosted, why: string): Promise<void> {
    await this.init.partitions.free(hosted.partition);
    this.init.store.deleteHosted(hosted.owner, hosted.reference);
    this.forgetRetry(hosted.owner, hosted.reference);
    this.init.log.debug(`dropped the reservation of ${hostedKey(hosted.owner, hosted.reference)}: ${why}`);
  }

  private expireLater(owner: string, reference: string): void {
    const key = hostedKey(owner, reference);
    const timer = setTimeout(() => {
      this.reservationTimers.delete(key);
      void this.queue.run(key, async () => {
        const hosted = this.init.store.getHosted(owner, reference);
        if (hosted && hosted.epoch === 0) await this.drop(hosted, 'not confirmed in time');
      });
    }, RESERVE_LEASE_MS);
    timer.unref();
    this.reservationTimers.set(key, timer);
  }

  private clearReservation(owner: string, reference: string): void {
    const key = hostedKey(owner, reference);
    clearTimeout(this.reservationTimers.get(key));
    this.reservationTimers.delete(key);
  }

  /**
   * Is this copy still the one its owner placed? Asked after a restart (`revive`: then deployed again) and of an
   * owner silent for SILENT_OWNER_LEASES leases (`keep`: it runs on). A superseded copy is destroyed; while the
   * owner cannot be asked, the copy keeps running, marked unconfirmed, until the owner renews it.
   */
  private async askOwner(hosted: StoredHosted, then: 'revive' | 'keep'): Promise<void> {
    const key = hostedKey(hosted.owner, hosted.reference);
    let answer: Answer<{ current: boolean }>;
    try {
      answer = await this.init.owner(hosted.owner).check(hosted.reference, hosted.epoch, AbortSignal.any([this.stopping.signal, AbortSignal.timeout(OWNER_CALL_TIMEOUT_MS)]));
    } catch (error) {
      if (this.stopping.signal.aborted) return;
      if (then === 'revive' || hosted.confirmed) this.init.log(`${key}: its owner cannot be reached (${(error as Error).message}); ${then === 'revive' ? 'revived' : 'kept running'} unconfirmed`);
      const latest = this.init.store.getHosted(hosted.owner, hosted.reference);
      if (latest?.epoch === hosted.epoch) this.init.store.putHosted({ ...latest, confirmed: false, updatedAt: this.now() });
      if (then === 'revive') this.schedule(hosted.owner, hosted.reference);
      return;
    }
    if (answer.ok && answer.current) {
      this.heardAt.set(key, this.now());
      if (then === 'revive') this.schedule(hosted.owner, hosted.reference);
      return;
    }
    this.init.log(`${key} epoch ${hosted.epoch} was superseded: destroying this copy`);
    await this.destroySuperseded(hosted);
  }

  /** Destroys this copy (without telling the owner, who placed it elsewhere) unless it was placed again meanwhile. */
  private destroySuperseded(hosted: StoredHosted): Promise<void> {
    return this.queue.run(hostedKey(hosted.owner, hosted.reference), async () => {
      const latest = this.init.store.getHosted(hosted.owner, hosted.reference);
      if (latest && latest.epoch === hosted.epoch) await this.destroy(latest, false);
    });
  }

  /** Asks the owners that renewed nothing for SILENT_OWNER_LEASES leases about their instances here (once per such period). */
  private askSilentOwners(): void {
    const now = this.now();
    for (const hosted of this.init.store.listHosted()) {
      if (hosted.epoch === 0 || hosted.owner === this.init.self) continue;
      const key = hostedKey(hosted.owner, hosted.reference);
      const heard = this.heardAt.get(key);
      if (heard === undefined) this.heardAt.set(key, now);
      if (heard === undefined || now - heard <= SILENT_OWNER_LEASES * this.leaseMs) continue;
      this.heardAt.set(key, now);
      void this.askOwner(hosted, 'keep');
    }
  }

  private get leaseMs(): number {
    return this.init.leaseMs ?? HOSTING_LEASE_MS;
  }

  // ---- status and reports ----

  private setStatus(hosted: StoredHosted, status: StoredHosted['status'], message?: string): StoredHosted {
    const latest = this.current(hosted);
    const updated: StoredHosted = { ...latest, status, updatedAt: this.now() };
    // Promise output and build logs may hold any bytes: the owner gets printable text of bounded size.
    if (message === undefined) delete updated.message;
    else updated.message = toMessage(message);
    this.init.store.putHosted(updated);
    if (status !== latest.status) this.init.log(`${hostedKey(updated.owner, updated.reference)} ${status}${message ? `: ${message}` : ''}`);
    if (this.ownerKnows.get(hostedKey(updated.owner, updated.reference))?.status === status) this.reportProgress(updated);
    else this.sendReport(updated);
    return updated;
  }

  /**
   * Sends a change the owner may learn late (see PROGRESS_REPORT_GAP_MS): now if the last report is that old,
   * else when it is — the instance's latest row then. A report already due or on its way carries it too.
   */
  private reportProgress(hosted: StoredHosted): void {
    const key = hostedKey(hosted.owner, hosted.reference);
    if (this.reportTimers.has(key)) return;
    const flight = this.reportsInFlight.get(key);
    if (flight) {
      flight.next = { hosted, status: hosted.status };
      return;
    }
    const wait = (this.ownerKnows.get(key)?.at ?? 0) + (this.init.progressReportGapMs ?? PROGRESS_REPORT_GAP_MS) - this.now();
    if (wait <= 0) this.sendReport(hosted);
    else this.reportLater(hosted, wait, REPORT_RETRY_MS);
  }

  /** The row as stored now (connection parameters may have been published meanwhile). */
  private current(hosted: StoredHosted): StoredHosted {
    return this.init.store.getHosted(hosted.owner, hosted.reference) ?? hosted;
  }

  /**
   * Tells the owner the instance's status, retried with back-off until it answers; a `stale` answer destroys
   * this copy. One report in flight per instance: a change meanwhile is sent when it ends, the latest only.
   */
  private sendReport(hosted: StoredHosted, status: string = hosted.status, delay = REPORT_RETRY_MS): void {
    const key = hostedKey(hosted.owner, hosted.reference);
    clearTimeout(this.reportTimers.get(key));
    this.reportTimers.delete(key);
    const flight = this.reportsInFlight.get(key);
    if (flight) {
      flight.next = { hosted, status };
      return;
    }
    const current: { next?: { hosted: StoredHosted; status: string } } = {};
    this.reportsInFlight.set(key, current);
    const report: InstanceReport = {
      reference: hosted.reference, epoch: hosted.epoch, status, connection: hosted.connection,
      ...(hosted.message !== undefined ? { message: hosted.message } : {}),
    };
    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(OWNER_CALL_TIMEOUT_MS)]);
    this.ownerKnows.set(key, { status, at: this.now() });
    const retry = () => this.reportLater(hosted, delay, Math.min(delay * 2, 60_000));
    this.init.owner(hosted.owner).report(report, signal).then((answer) => {
      if (answer.ok || status === 'destroyed') return;
      if (answer.code === 'stale') {
        this.init.log(`${key}: its owner placed it elsewhere (epoch ${hosted.epoch} is stale): destroying this copy`);
        void this.destroySuperseded(hosted);
      } else if (!current.next) retry();
    }, () => {
      if (!this.stopping.signal.aborted && !current.next) retry();
    }).finally(() => {
      this.reportsInFlight.delete(key);
      if (current.next && !this.stopping.signal.aborted) this.sendReport(current.next.hosted, current.next.status);
    });
  }

  /** Sends the instance's latest row after `wait` ms (a report retried, or progress held back); `delay`: its retry's. */
  private reportLater(hosted: StoredHosted, wait: number, delay: number): void {
    const key = hostedKey(hosted.owner, hosted.reference);
    const timer = setTimeout(() => {
      this.reportTimers.delete(key);
      const latest = this.init.store.getHosted(hosted.owner, hosted.reference);
      if (latest) this.sendReport(latest, latest.status, delay);
    }, wait);
    timer.unref();
    this.reportTimers.set(key, timer);
  }
}

function requestOf(hosted: StoredHosted): InstanceRequest {
  return { reference: hosted.reference, release: hosted.release, type: hosted.type, parameters: hosted.parameters, state: hosted.state };
}

export function view(hosted: StoredHosted): InstanceView {
  return {
    ...requestOf(hosted), epoch: hosted.epoch, status: hosted.status, connection: hosted.connection,
    ...(hosted.message !== undefined ? { message: hosted.message } : {}),
  };
}

function firstFailure(results: readonly PromiseResult[]): string | undefined {
  const failed = results.find((result) => !result.ok);
  return failed && `promise ${failed.name}: ${failed.message}`;
}
