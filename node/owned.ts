// The owner's side of instances (docs/instances.md): placing what this node requests on a peer (itself
// included), with reservations confirmed by an epoch; updating it where it is; renewing the hosting lease
// and moving an instance whose host stayed unreachable longer than the lease; taking the hosts' reports.
import { TypedEventEmitter } from '@libp2p/interface';
import { KeyedQueue } from './keyed-queue.js';
import type { Logger } from './log.js';
import type { PlacementIndex } from './placement.js';
import type { InstanceRequest, NodeStore, RequestedState, StoredOwned } from './store.js';
import { checkInstanceRequest, type Answer, type InstanceReport, type InstanceView } from '../protocols/instance/index.js';

/**
 * How many peers a placement may ask before it is refused: refusals are quick answers (a host full, or not
 * admitting this requester), and an owner whose view is an advert old may meet several full hosts in a row
 * while others have room (the placement simulation: a request refused after 5 full hosts with 40% of the
 * partitions free). A peer that does not answer, or does not confirm, may take HOST_CALL_TIMEOUT_MS.
 */
export const MAX_PLACEMENT_TRIES = 16;
/** …so a placement gives up after this many of those. */
export const MAX_FAILED_TRIES = 5;
/** An owner moves an instance only after its host has been unreachable for longer than this. */
export const HOSTING_LEASE_MS = 60_000;
/** Instances per renew call: well under the protocol's 1000 and 256 KiB with the longest references. */
export const RENEW_BATCH = 500;
/** Bound of one call to a host. */
export const HOST_CALL_TIMEOUT_MS = 10_000;
/** Bound of a whole placement. */
export const PLACEMENT_TIMEOUT_MS = HOST_CALL_TIMEOUT_MS * MAX_FAILED_TRIES;

/** What an owner asks a host: the instance protocol's client, or this node's own host side. */
export interface HostApi {
  reserve(request: InstanceRequest, signal: AbortSignal): Promise<Answer<{ lease: number; free?: number }>>;
  confirm(reference: string, epoch: number, signal: AbortSignal): Promise<Answer<object>>;
  update(request: InstanceRequest & { epoch: number }, signal: AbortSignal): Promise<Answer<{ instance: InstanceView }>>;
  renew(instances: { reference: string; epoch: number }[], signal: AbortSignal): Promise<Answer<{ unknown: string[] }>>;
}

export interface OwnedInit {
  store: NodeStore;
  index: PlacementIndex;
  /** How to reach a host (throws when it cannot be reached). */
  host: (peerId: string) => HostApi;
  log: Logger;
  /** How long a host may stay unreachable before its instances move (default HOSTING_LEASE_MS). */
  leaseMs?: number;
  now?: () => number;
}

export interface OwnedEvents {
  /** An owned instance was placed, updated, reported on, moved or forgotten (then `detail.state` is destroyed). */
  'instance:changed': CustomEvent<StoredOwned>;
}

/** A request no peer accepted; the message lists each one's reason. */
export class PlacementError extends Error {
  override name = 'PlacementError';
}

/** A request the instance protocol could not carry (a reference too long, a release that is not a CID…). */
export class InvalidInstanceRequestError extends Error {
  override name = 'InvalidInstanceRequestError';
}

/** An instance this node does not own. */
export class UnknownInstanceError extends Error {
  override name = 'UnknownInstanceError';
}

export interface RequestOptions {
  /** Place only on this peer. */
  peer?: string;
  /** `<owner>/<reference>` of the hosted instance asking for a child. */
  parent?: string;
  signal?: AbortSignal;
}

/** Whether an owned instance is where its requested state wants it. */
export function reached(owned: StoredOwned): boolean {
  return owned.state === 'started' ? owned.status === 'ready' : owned.state === 'stopped' ? owned.status === 'stopped' : owned.status === 'destroyed';
}

/**
 * The next peer a placement asks: the pinned one, else the best of a fresh ranking leaving out those already
 * asked (and the host the instance moves from). Ranked again at every try, because a refusal changes the
 * index (PlacementIndex.refused). Pure, so that the model simulator (simulations/model.ts) places as owners do.
 */
export function nextCandidate(index: Pick<PlacementIndex, 'rank'>, release: string, asked: ReadonlySet<string>, pinned?: string): string | undefined {
  if (pinned) return asked.has(pinned) ? undefined : pinned;
  return index.rank(release, { limit: 1, exclude: asked })[0];
}

/** The peers a placement asked so far: those that refused, those that did not answer or confirm. */
export interface PlacementTries {
  refused: number;
  failed: number;
}

/** Whether a placement may ask one more peer (shared with the model simulator). */
export function mayAskAnother(tries: PlacementTries): boolean {
  return tries.refused + tries.failed < MAX_PLACEMENT_TRIES && tries.failed < MAX_FAILED_TRIES;
}

/** Why a placement failed: nobody to ask, or each refusal. */
export function placementFailure(reasons: readonly string[]): string {
  return reasons.length === 0 ? NO_PEER_KNOWN : reasons.join('; ');
}

export const NO_PEER_KNOWN = 'no peer known with a free partition';

export class OwnedInstances extends TypedEventEmitter<OwnedEvents> {
  private readonly now: () => number;
  /** When each host last answered (a call, a report). */
  private readonly lastContact = new Map<string, number>();
  /** One change at a time per reference: requests, moves and reports of one instance never interleave. */
  private readonly queue = new KeyedQueue();
  private timer?: NodeJS.Timeout;

  constructor(private readonly init: OwnedInit) {
    super();
    this.now = init.now ?? Date.now;
  }

  start(): void {
    const started = this.now();
    for (const owned of this.init.store.listOwned()) if (owned.host) this.lastContact.set(owned.host, started);
    this.timer = setInterval(() => void this.renewLeases(), this.leaseMs / 3);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private get leaseMs(): number {
    return this.init.leaseMs ?? HOSTING_LEASE_MS;
  }

  list(): StoredOwned[] {
    return this.init.store.listOwned();
  }

  get(reference: string): StoredOwned | undefined {
    return this.init.store.getOwned(reference);
  }

  /**
   * Requests an instance, or changes the one of that reference (idempotent, as `slapos request`): a new one
   * is placed on the best peer that admits it; an existing one is updated where it is.
   */
  request(request: InstanceRequest, options: RequestOptions = {}): Promise<StoredOwned> {
    // Checked here, once for every way in (the CLI, a child request), by the protocol's own rules.
    const invalid = checkInstanceRequest(request);
    if (invalid) return Promise.reject(new InvalidInstanceRequestError(`cannot request ${JSON.stringify(request.reference)}: ${invalid}`));
    return this.queue.run(request.reference, async () => {
      const signal = options.signal ?? AbortSignal.timeout(PLACEMENT_TIMEOUT_MS);
      const existing = this.init.store.getOwned(request.reference);
      if (!existing) {
        if (request.state === 'destroyed') throw new UnknownInstanceError(`there is no instance ${request.reference} to destroy`);
        return this.place({ ...request, epoch: 0, status: 'placing', connection: {}, updatedAt: this.now(), ...(options.parent ? { parent: options.parent } : {}) }, options.peer, signal);
      }
      const wanted: StoredOwned = { ...existing, ...request, updatedAt: this.now() };
      if (!existing.host || (options.peer && options.peer !== existing.host)) return this.place(wanted, options.peer, signal, existing.host);
      return this.updateOnHost(wanted, signal);
    });
  }

  /** Changes the requested state of an owned instance. */
  async setState(reference: string, state: RequestedState, signal?: AbortSignal): Promise<StoredOwned> {
    const owned = this.init.store.getOwned(reference);
    if (!owned) throw new UnknownInstanceError(`this node owns no instance ${reference}`);
    return this.request({ reference, release: owned.release, type: owned.type, parameters: owned.parameters, state }, signal ? { signal } : {});
  }

  /** A host's report on an instance: kept if it comes from the current host and epoch, else `stale`. */
  report(from: string, report: InstanceReport): Answer<object> {
    const owned = this.init.store.getOwned(report.reference);
    if (!owned || owned.host !== from || owned.epoch !== report.epoch) {
      return { ok: false, code: 'stale', reason: `${report.reference} epoch ${report.epoch} is not placed on ${from}` };
    }
    this.lastContact.set(from, this.now());
    if (report.status === 'destroyed' && owned.state === 'destroyed') {
      this.forget(owned);
      return { ok: true };
    }
    const updated: StoredOwned = {
      ...owned, status: report.status, connection: report.connection, updatedAt: this.now(),
      ...(report.message !== undefined ? { message: report.message } : {}),
    };
    if (report.message === undefined) delete updated.message;
    this.save(updated);
    return { ok: true };
  }

  /** A host starting again asks whether its copy is still the one placed. */
  check(from: string, reference: string, epoch: number): Answer<{ current: boolean }> {
    const owned = this.init.store.getOwned(reference);
    if (owned?.host === from) this.lastContact.set(from, this.now());
    return { ok: true, current: owned !== undefined && owned.host === from && owned.epoch === epoch && owned.state !== 'destroyed' };
  }

  /** Resolves once the instance reaches its requested state, or with its last record when `signal` aborts. */
  async waitReached(reference: string, signal: AbortSignal): Promise<StoredOwned | undefined> {
    const current = this.init.store.getOwned(reference);
    if (!current || reached(current) || current.status === 'failed' || signal.aborted) return current;
    return new Promise((resolve) => {
      const done = () => {
        this.removeEventListener('instance:changed', onChange);
        signal.removeEventListener('abort', onAbort);
        resolve(this.init.store.getOwned(reference));
      };
      const onChange = (event: CustomEvent<StoredOwned>) => {
        const owned = event.detail;
        if (owned.reference === reference && (reached(owned) || owned.status === 'failed')) done();
      };
      const onAbort = () => done();
      this.addEventListener('instance:changed', onChange);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Reserves on the best candidates in turn; the first that admits gets the next epoch, written here before
   * it is confirmed there. A host that fails to confirm leaves its epoch behind: if it deploys anyway, its
   * reports are stale and it destroys its copy. When nobody takes it, the record says so (`unplace`), or is left
   * to the caller (`keep`: a move, which keeps the instance where it is).
   */
  private async place(wanted: StoredOwned, pinned: string | undefined, signal: AbortSignal, previousHost?: string, onFailure: 'unplace' | 'keep' = 'unplace'): Promise<StoredOwned> {
    const reasons: string[] = [];
    let epoch = wanted.epoch;
    const request = requestOf(wanted);
    // A move never goes back to the host it leaves, unless pinned there.
    const asked = new Set(previousHost && !pinned ? [previousHost] : []);
    const tries: PlacementTries = { refused: 0, failed: 0 };
    while (mayAskAnother(tries)) {
      const peer = nextCandidate(this.init.index, wanted.release, asked, pinned);
      if (peer === undefined) break;
      asked.add(peer);
      signal.throwIfAborted();
      this.init.index.asking(peer);
      const reservation = await this.call(peer, (host) => host.reserve(request, signal));
      if (!reservation.ok) {
        reasons.push(`${peer}: ${reservation.reason}`);
        if (reservation.code === 'refused') {
          tries.refused++;
          this.init.index.refused(peer);
        } else {
          tries.failed++;
          this.init.index.unanswered(peer);
        }
        continue;
      }
      this.init.index.reserved(peer, reservation.free);
      epoch++;
      const placed: StoredOwned = { ...wanted, host: peer, epoch, status: 'placed', connection: {}, updatedAt: this.now() };
      delete placed.message;
      this.save(placed);
      const confirmation = await this.call(peer, (host) => host.confirm(wanted.reference, epoch, signal));
      if (confirmation.ok) {
        this.lastContact.set(peer, this.now());
        this.init.log(`${wanted.reference} placed on ${peer} (epoch ${epoch})`);
        // A moved instance: the old host destroys its copy now if it can hear us (else when it asks, on return).
        if (previousHost && previousHost !== peer) {
          void this.call(previousHost, (host) => host.update({ ...request, state: 'destroyed', epoch: wanted.epoch }, AbortSignal.timeout(HOST_CALL_TIMEOUT_MS))).then((answer) => {
            if (!answer.ok && answer.code === 'busy') this.init.log(`${wanted.reference}: its old host ${previousHost} was not told to destroy its copy (${answer.reason}); it will when it asks`);
          });
        }
        return placed;
      }
      reasons.push(`${peer}: ${confirmation.reason}`);
      tries.failed++;
      // No answer is not a no: the confirmation may have landed, and the host deploy what nobody owns now.
      if (confirmation.code === 'busy') {
        void this.call(peer, (host) => host.update({ ...request, state: 'destroyed', epoch }, AbortSignal.timeout(HOST_CALL_TIMEOUT_MS)));
      }
    }
    const why = placementFailure(reasons);
    if (onFailure === 'unplace' && (epoch > 0 || wanted.epoch > 0)) {
      // It was placed before (or a host may hold an unconfirmed epoch): keep the record, unplaced.
      const unplaced: StoredOwned = { ...wanted, epoch, status: 'refused', message: why, updatedAt: this.now() };
      delete unplaced.host;
      this.save(unplaced);
    }
    throw new PlacementError(`no peer accepted ${wanted.reference}: ${why}`);
  }

  private async updateOnHost(wanted: StoredOwned, signal: AbortSignal): Promise<StoredOwned> {
    const host = wanted.host!;
    this.save(wanted);
    const answer = await this.call(host, (api) => api.update({ ...requestOf(wanted), epoch: wanted.epoch }, signal));
    if (answer.ok) {
      const updated: StoredOwned = { ...wanted, status: answer.instance.status, connection: answer.instance.connection, updatedAt: this.now() };
      if (wanted.state === 'destroyed' && answer.instance.status === 'destroyed') {
        this.forget(updated);
        return updated;
      }
      this.save(updated);
      return updated;
    }
    if (answer.code === 'not-found') {
      // The host no longer has it (its data directory was wiped, or it destroyed a copy it took for stale).
      if (wanted.state === 'destroyed') {
        this.forget(wanted);
        return { ...wanted, status: 'destroyed' };
      }
      return this.place(wanted, undefined, signal, host);
    }
    // Unreachable or busy: the request stays recorded; the lease renewal moves it if the host stays away.
    const pending: StoredOwned = { ...wanted, message: `${host} did not take the change yet: ${answer.reason}`, updatedAt: this.now() };
    this.save(pending);
    return pending;
  }

  /** Renews each host's lease (every third of the lease); moves the instances of hosts unreachable for longer than the lease. */
  async renewLeases(): Promise<void> {
    const byHost = new Map<string, StoredOwned[]>();
    for (const owned of this.init.store.listOwned()) {
      if (!owned.host || owned.state === 'destroyed') continue;
      byHost.set(owned.host, [...(byHost.get(owned.host) ?? []), owned]);
    }
    await Promise.all([...byHost].map(async ([host, instances]) => {
      const answer = await this.renewOn(host, instances);
      if (answer.ok) {
        for (const reference of answer.unknown) void this.relocate(reference, host, 'it no longer has it');
        return;
      }
      const since = this.lastContact.get(host) ?? this.now();
      if (!this.lastContact.has(host)) this.lastContact.set(host, since);
      if (this.now() - since <= this.leaseMs) return;
      for (const owned of instances) void this.relocate(owned.reference, host, `unreachable for ${Math.round((this.now() - since) / 1000)} s`);
    }));
  }

  /** One host's lease, in batches the protocol takes (RENEW_BATCH instances each); the first refusal wins. */
  private async renewOn(host: string, instances: readonly StoredOwned[]): Promise<Answer<{ unknown: string[] }>> {
    const unknown: string[] = [];
    for (let at = 0; at < instances.length; at += RENEW_BATCH) {
      const batch = instances.slice(at, at + RENEW_BATCH).map(({ reference, epoch }) => ({ reference, epoch }));
      const answer = await this.call(host, (api) => api.renew(batch, AbortSignal.timeout(HOST_CALL_TIMEOUT_MS)));
      if (!answer.ok) return answer;
      unknown.push(...answer.unknown);
    }
    return { ok: true, unknown };
  }

  /** Places an instance elsewhere with the next epoch, if it is still on `from`. */
  private relocate(reference: string, from: string, why: string): Promise<unknown> {
    return this.queue.run(reference, async () => {
      const owned = this.init.store.getOwned(reference);
      if (!owned || owned.host !== from) return;
      this.init.log(`moving ${reference} off ${from}: ${why}`);
      try {
        await this.place(owned, undefined, AbortSignal.timeout(PLACEMENT_TIMEOUT_MS), from, 'keep');
      } catch (error) {
        // Nowhere else to go: it stays placed where it was (that host may come back), and the next renewal
        // tries again. The record is put back only if a peer took a higher epoch meanwhile (that peer is not its
        // host: its reports are stale); otherwise it is left as it is, with what the host reported during the try.
        const latest = this.init.store.getOwned(reference);
        if (latest && (latest.host !== from || latest.epoch !== owned.epoch)) this.save({ ...owned, updatedAt: this.now() });
        this.init.log.error(`cannot move ${reference}: ${(error as Error).message}`);
      }
    });
  }

  /** Runs a call on a host; an unreachable host is a refusal with the transport's reason. */
  private async call<T extends object>(peer: string, work: (host: HostApi) => Promise<Answer<T>>): Promise<Answer<T>> {
    try {
      const answer = await work(this.init.host(peer));
      this.lastContact.set(peer, this.now());
      return answer;
    } catch (error) {
      return { ok: false, code: 'busy', reason: `cannot be reached: ${(error as Error).message}` };
    }
  }

  private save(owned: StoredOwned): void {
    this.init.store.putOwned(owned);
    this.safeDispatchEvent('instance:changed', { detail: owned });
  }

  private forget(owned: StoredOwned): void {
    this.init.store.deleteOwned(owned.reference);
    this.safeDispatchEvent('instance:changed', { detail: { ...owned, status: 'destroyed' } });
  }

}

function requestOf(owned: StoredOwned): InstanceRequest {
  return { reference: owned.reference, release: owned.release, type: owned.type, parameters: owned.parameters, state: owned.state };
}
