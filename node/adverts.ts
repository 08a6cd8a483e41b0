// The advert service (design.md §4): publishes this node's signed advert on a gossipsub topic every
// intervalMs, receives the others' into the peer table, asks peers directly (info protocol) when they
// connect, and expires peers that went quiet.
//
// Sequence numbers: seq changes only when the content (addresses, hardware, releases) changes, and is
// then max(previous seq + 1, clock ms), so it keeps increasing across restarts without being stored.
// Hardware holds load and free memory, so in practice most periodic adverts carry a new seq. When
// nothing changed the same seq is re-signed with a newer time: it is still "newer" to the others'
// tables, which refreshes lastSeen, while a replay of an old message is not (same seq and time).
//
// Gossip checks: the advert must verify (size, schema, signature) and be of the message's signer
// (StrictSign's `from`); unsigned messages cannot be attributed and are dropped. The check runs as
// the topic's gossipsub validator, so refused adverts are not forwarded to anyone (Reject), and adverts
// no newer than what we hold are not forwarded either (Ignore). Nothing received ever throws: refusals
// are logged.
import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub';
import type { AbortOptions, PeerId, PrivateKey } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { setMaxListeners } from 'node:events';
import {
  AdvertError, DEFAULT_MAX_CLOCK_SKEW_MS, MAX_ADVERT_ADDRESSES, MAX_ADVERT_RELEASES, signAdvert, verifyAdvert, type Advert,
} from './advert.js';
import type { Logger } from './log.js';
import { isNewerAdvert, type PeerTable } from './peer-table.js';
import type { InfoProtocol } from '../protocols/info/index.js';

export const ADVERT_TOPIC = 'slapmesh/adverts/1.0.0';
export const DEFAULT_ADVERT_INTERVAL_MS = 5_000;
/**
 * Gossiped adverts signed longer ago than this (plus the clock skew) are replays: live nodes re-sign
 * every few seconds. It matches gossipsub's seen-cache (120 s), which catches quicker replays.
 */
export const DEFAULT_MAX_ADVERT_AGE_MS = 120_000;

export type AdvertContent = Omit<Advert, 'peerId' | 'seq' | 'time'>;

/** The part of gossipsub the service uses (node.services.pubsub). */
export type AdvertPubSub = Pick<GossipSub, 'subscribe' | 'unsubscribe' | 'publish' | 'addEventListener' | 'removeEventListener' | 'topicValidators'>;

export interface AdvertServiceInit {
  key: PrivateKey;
  peerId: string;
  table: PeerTable;
  /** Default DEFAULT_ADVERT_INTERVAL_MS; the table is also expired at this pace. */
  intervalMs?: number;
  /** The current addresses, hardware and releases. */
  build: () => Promise<AdvertContent>;
  log: Logger;
  /** Default Date.now. */
  now?: () => number;
  /** Default DEFAULT_MAX_CLOCK_SKEW_MS. */
  maxClockSkewMs?: number;
  /** Default DEFAULT_MAX_ADVERT_AGE_MS. */
  maxAdvertAgeMs?: number;
}

export interface AdvertServiceComponents {
  pubsub: AdvertPubSub;
  info: Pick<InfoProtocol, 'fetchSigned'>;
}

/** current() before the first advert was signed (start() signs it). */
/** The shortest time between two adverts published because peers joined. */
export const REPUBLISH_MIN_GAP_MS = 1_000;

export class AdvertNotReadyError extends Error {
  override name = 'AdvertNotReadyError';
}

export class AdvertService {
  private readonly init: AdvertServiceInit;
  private readonly pubsub: AdvertPubSub;
  private readonly info: Pick<InfoProtocol, 'fetchSigned'>;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private started = false;
  private timer?: NodeJS.Timeout;
  private shutdown = new AbortController();
  /** Serializes refreshes, so that seq and publishing order agree. */
  private refreshing: Promise<void> = Promise.resolve();
  private seq = 0;
  private time = 0;
  private content?: string;
  private wire?: Uint8Array;
  private readonly waiting: ((wire: Uint8Array) => void)[] = [];
  private readonly asking = new Map<string, Promise<void>>();
  /** Adverts the topic validator accepted, for the message event that follows. */
  private readonly verified = new WeakMap<Message, Advert>();

  constructor(init: AdvertServiceInit, components: AdvertServiceComponents) {
    this.init = init;
    this.pubsub = components.pubsub;
    this.info = components.info;
    this.intervalMs = init.intervalMs ?? DEFAULT_ADVERT_INTERVAL_MS;
    this.now = init.now ?? Date.now;
    setMaxListeners(Infinity, this.shutdown.signal);
  }

  /** Subscribes to the topic, signs and publishes the first advert, then repeats every intervalMs. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.shutdown.signal.aborted) {
      this.shutdown = new AbortController();
      setMaxListeners(Infinity, this.shutdown.signal);
    }
    this.pubsub.topicValidators.set(ADVERT_TOPIC, this.validate);
    this.pubsub.addEventListener('message', this.onMessage);
    this.pubsub.addEventListener('subscription-change', this.onSubscriptionChange);
    this.pubsub.subscribe(ADVERT_TOPIC);
    try {
      await this.refresh();
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.schedule();
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.shutdown.abort(new Error('the advert service stopped'));
    this.pubsub.removeEventListener('message', this.onMessage);
    this.pubsub.removeEventListener('subscription-change', this.onSubscriptionChange);
    clearTimeout(this.soonTimer);
    this.soonTimer = undefined;
    if (this.pubsub.topicValidators.get(ADVERT_TOPIC) === this.validate) this.pubsub.topicValidators.delete(ADVERT_TOPIC);
    try {
      this.pubsub.unsubscribe(ADVERT_TOPIC);
    } catch (error) {
      this.init.log.debug(`unsubscribe: ${(error as Error).message}`);
    }
    await this.refreshing;
  }

  /**
   * Builds, signs and publishes the advert now (call it on change). Rejects if the advert cannot be
   * built or signed; a failed publish (no peers yet) is only logged.
   */
  refresh(): Promise<void> {
    const run = this.refreshing.then(() => this.signAndPublish());
    this.refreshing = run.catch(() => undefined);
    return run;
  }

  /** The latest signed advert, for the info handler. Throws AdvertNotReadyError before start() signed one. */
  current(): Uint8Array {
    if (!this.wire) throw new AdvertNotReadyError('no advert signed yet');
    return this.wire;
  }

  /** current(), or the first advert once signed: for an info handler registered before start(). */
  async signed(): Promise<Uint8Array> {
    if (this.wire) return this.wire;
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /**
   * Asks a peer for its advert directly (a newly connected peer, or peers a joining node knows) and
   * offers it to the table; an answer no newer than what we hold still counts as hearing from the
   * peer. Concurrent asks of one peer share one request. Works before start(); stop() aborts asks.
   */
  ask(peer: PeerId | string, options: AbortOptions = {}): Promise<void> {
    const id = peer.toString();
    if (id === this.init.peerId) return Promise.resolve();
    const pending = this.asking.get(id);
    if (pending) return pending;
    const run = (async () => {
      const signal = options.signal ? AbortSignal.any([options.signal, this.shutdown.signal]) : this.shutdown.signal;
      const target = typeof peer === 'string' ? peerIdFromString(peer) : peer;
      const { advert, wire } = await this.info.fetchSigned(target, { signal });
      if (!this.init.table.offer(advert, wire)) this.init.table.touch(advert.peerId);
    })().finally(() => this.asking.delete(id));
    this.asking.set(id, run);
    return run;
  }

  /** For `node.addEventListener('peer:connect', adverts.onPeerConnect)`: asks the peer, logs failures. */
  readonly onPeerConnect = (event: CustomEvent<PeerId>): void => {
    const peer = event.detail;
    this.ask(peer).catch((error: Error) => this.init.log.debug(`asking ${peer} for its advert: ${error.message}`));
  };

  private soonTimer?: NodeJS.Timeout;
  private lastPublished = -Infinity;

  /**
   * A peer newly subscribed to the topic has none of our adverts yet: publish again soon rather than
   * at the next interval, at most once per `REPUBLISH_MIN_GAP_MS`, so a burst of joins costs little.
   */
  private readonly onSubscriptionChange = (event: CustomEvent<{ subscriptions: { topic: string; subscribe: boolean }[] }>): void => {
    if (!this.started || this.soonTimer || !event.detail.subscriptions.some((s) => s.topic === ADVERT_TOPIC && s.subscribe)) return;
    const wait = Math.max(0, this.lastPublished + REPUBLISH_MIN_GAP_MS - this.now());
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      this.refresh().catch((error: Error) => this.init.log.error(`advert not refreshed: ${error.message}`));
    }, wait);
    this.soonTimer.unref();
  };

  private schedule(): void {
    if (!this.started) return;
    this.timer = setTimeout(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      await this.refresh();
    } catch (error) {
      this.init.log.error(`advert not refreshed: ${(error as Error).message}`);
    }
    this.init.table.expire();
    this.schedule();
  }

  private async signAndPublish(): Promise<void> {
    const built = await this.init.build();
    const content: AdvertContent = {
      addresses: built.addresses.slice(0, MAX_ADVERT_ADDRESSES),
      hardware: built.hardware,
      releases: built.releases.slice(0, MAX_ADVERT_RELEASES),
    };
    const fingerprint = stableStringify(content);
    const now = this.now();
    const changed = fingerprint !== this.content;
    const seq = changed ? Math.max(this.seq + 1, now) : this.seq;
    const time = Math.max(now, this.time + 1);
    const wire = await this.sign({ peerId: this.init.peerId, seq, time, ...content });
    this.seq = seq;
    this.time = time;
    this.content = fingerprint;
    this.wire = wire;
    for (const resolve of this.waiting.splice(0)) resolve(wire);
    if (!this.started) return;
    try {
      this.lastPublished = this.now();
      await this.pubsub.publish(ADVERT_TOPIC, wire);
    } catch (error) {
      this.init.log.debug(`advert ${seq} not published: ${(error as Error).message}`);
    }
  }

  /** Signs the advert; when it is too large, with as many releases as fit (and says so). */
  private async sign(advert: Advert): Promise<Uint8Array> {
    try {
      return await signAdvert(advert, this.init.key);
    } catch (error) {
      if (!(error instanceof AdvertError) || error.reason !== 'too-large') throw error;
    }
    let fits = 0;
    let tooMany = advert.releases.length;
    let wire = await signAdvert({ ...advert, releases: [] }, this.init.key);
    while (tooMany - fits > 1) {
      const middle = Math.floor((fits + tooMany) / 2);
      try {
        wire = await signAdvert({ ...advert, releases: advert.releases.slice(0, middle) }, this.init.key);
        fits = middle;
      } catch (error) {
        if (!(error instanceof AdvertError) || error.reason !== 'too-large') throw error;
        tooMany = middle;
      }
    }
    this.init.log.error(`advert too large: it lists ${fits} of ${advert.releases.length} releases`);
    return wire;
  }

  private readonly lastReported = new Map<string, number>();

  /** A refused advert is logged, once a minute at most per sender, so a hostile peer cannot flood the log. */
  private reportDropped(sender: string, line: string): void {
    const now = this.now();
    if (now - (this.lastReported.get(sender) ?? -Infinity) < 60_000) return this.init.log.debug(line);
    if (this.lastReported.size > 10_000) this.lastReported.clear();
    this.lastReported.set(sender, now);
    this.init.log.error(line);
  }

  /** Verifies a gossiped advert; undefined (and a log line) when it is refused. */
  private async check(msg: Message): Promise<Advert | undefined> {
    if (msg.type !== 'signed') {
      this.reportDropped('an unsigned peer', 'dropped an unsigned advert message');
      return undefined;
    }
    try {
      return await verifyAdvert(msg.data, {
        expectedPeer: msg.from.toString(),
        now: this.now(),
        maxClockSkewMs: this.init.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS,
        maxAgeMs: this.init.maxAdvertAgeMs ?? DEFAULT_MAX_ADVERT_AGE_MS,
      });
    } catch (error) {
      this.reportDropped(msg.from.toString(), `dropped an advert from ${msg.from}: ${(error as Error).message}`);
      return undefined;
    }
  }

  private readonly validate = async (_source: PeerId, msg: Message): Promise<TopicValidatorResult> => {
    const advert = await this.check(msg);
    if (!advert) return TopicValidatorResult.Reject;
    const known = this.init.table.get(advert.peerId);
    if (advert.peerId === this.init.peerId || (known && !isNewerAdvert(advert, known.advert))) return TopicValidatorResult.Ignore;
    this.verified.set(msg, advert);
    return TopicValidatorResult.Accept;
  };

  private readonly onMessage = (event: CustomEvent<Message>): void => {
    const msg = event.detail;
    if (msg.topic !== ADVERT_TOPIC) return;
    const advert = this.verified.get(msg);
    if (advert) {
      this.verified.delete(msg);
      this.accept(advert, msg.data);
    } else {
      // Our validator was replaced: check here instead.
      void this.check(msg).then((checked) => checked && this.accept(checked, msg.data));
    }
  };

  private accept(advert: Advert, data: Uint8Array): void {
    // a copy: the message's bytes may be a view of a whole RPC buffer
    if (advert.peerId !== this.init.peerId) this.init.table.offer(advert, Uint8Array.from(data));
  }
}

/** JSON with object keys sorted, to compare contents whatever order they were built in. */
function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    return `{${Object.keys(record).sort().map((key) => `${JSON.stringify(key)}:${stableStringify(record[key])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
