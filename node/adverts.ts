// The advert service (design.md §4): publishes this node's signed advert on a gossipsub topic about every
// intervalMs, receives the others' into the peer table, asks peers directly (info protocol) when they
// connect, and expires peers that went quiet.
//
// Joining: gossip carries adverts as they are published, so a new node would wait up to an interval
// for each peer's next one. Instead its first few asks also fetch the adverts the peer holds of others
// (info protocol), and it publishes its own again as soon as it has a mesh peer, if its first publish
// reached no one. The others publish nothing because someone joined: in a mesh of N nodes, N republishes
// at every join would cost N² messages. Gossip misses what was published before a node was in the
// mesh, so each node also pulls the adverts of a random peer now and then (anti-entropy): a few times
// soon after start, then every interval.
//
// Sequence numbers: seq changes only when the content (addresses, hardware, releases) changes, and is
// then max(previous seq + 1, clock ms), so it keeps increasing across restarts without being stored.
// Hardware holds load and free memory, so in practice most periodic adverts carry a new seq. When
// nothing changed the same seq is re-signed with a newer time: it is still "newer" to the others'
// tables, which refreshes lastSeen, while a replay of an old message is not (same seq and time).
//
// Gossip checks: the advert must verify (size, schema, signature) and be of the message's signer
// (StrictSign's `from`); unsigned messages cannot be attributed and are dropped. The check runs as
// the topic's gossipsub validator, so refused adverts are not forwarded to anyone (Reject). Copies of what
// we hold are not verified again: an exact copy is passed on (we may hold it from a pull, and the peers
// behind us may lack it), an older advert is not (Ignore). Nothing received ever throws: refusals are
// logged.
import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub';
import type { AbortOptions, PeerId, PrivateKey } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { setMaxListeners } from 'node:events';
import {
  AdvertError, DEFAULT_MAX_CLOCK_SKEW_MS, MAX_ADVERT_ADDRESSES, MAX_ADVERT_RELEASES, readAdvert, signAdvert, verifyAdvert, type Advert,
} from './advert.js';
import type { Logger } from './log.js';
import { isNewerAdvert, type PeerTable } from './peer-table.js';
import { MAX_OTHER_ADVERTS, type InfoProtocol } from '../protocols/info/index.js';

export const ADVERT_TOPIC = 'slapmesh/adverts/1.0.0';
/**
 * Every node re-announces itself this often (and at once when its content changes, through refresh()).
 * Each advert costs every node in the mesh a delivery and a few duplicate copies, so the mesh's
 * traffic grows with N²/interval: 15 s keeps 50 nodes on one core well under a tenth of its time.
 */
export const DEFAULT_ADVERT_INTERVAL_MS = 15_000;
/**
 * Each periodic advert comes after the interval give or take this share of it, drawn at random: nodes started
 * together (a simulation, a rack after a power cut) would otherwise all publish at once, every interval, and
 * every node would check every other's signature in the same moment (20 nodes: 380 Ed25519 checks, ~0.1 s of
 * one core, stalling whatever else their event loops had to do).
 */
export const ADVERT_INTERVAL_JITTER = 0.2;
/**
 * Gossiped adverts signed longer ago than this (plus the clock skew) are replays: live nodes re-sign
 * every few seconds. It matches gossipsub's seen-cache (120 s), which catches quicker replays.
 */
export const DEFAULT_MAX_ADVERT_AGE_MS = 120_000;

export type AdvertContent = Omit<Advert, 'peerId' | 'seq' | 'time'>;

/** The part of gossipsub the service uses (node.services.pubsub). */
export type AdvertPubSub = Pick<GossipSub, 'subscribe' | 'unsubscribe' | 'publish' | 'addEventListener' | 'removeEventListener' | 'topicValidators' | 'getSubscribers'>;

/** The gossip validator's answer about one message, and the advert to take when it is new. */
interface Verdict { result: TopicValidatorResult; advert?: Advert }

export interface AskOptions extends AbortOptions {
  /** Also fetch the adverts the peer holds of others (default: only for the first JOIN_SYNC_ASKS asks after start). */
  others?: boolean;
}

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

/** The shortest time between two adverts published because our mesh gained a peer. */
export const REPUBLISH_MIN_GAP_MS = 1_000;
/** How many asks after start() also fetch the adverts the peer holds of others. */
export const JOIN_SYNC_ASKS = 3;
/** Pulls from a random peer happen after these delays (counted from the first peer), then every interval. */
export const SYNC_DELAYS_MS = [1_000, 1_000, 2_000, 2_000, 2_000, 4_000, 8_000];

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
  /** What the validator made of the messages it accepted, for onMessage. */
  private readonly verdicts = new WeakMap<Message, Verdict>();

  constructor(init: AdvertServiceInit, components: AdvertServiceComponents) {
    this.init = init;
    this.pubsub = components.pubsub;
    this.info = components.info;
    this.intervalMs = init.intervalMs ?? DEFAULT_ADVERT_INTERVAL_MS;
    this.now = init.now ?? Date.now;
    setMaxListeners(Infinity, this.shutdown.signal);
  }

  /** Subscribes to the topic, signs and publishes the first advert, then repeats about every intervalMs. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.unheard = true;
    if (this.shutdown.signal.aborted) {
      this.shutdown = new AbortController();
      setMaxListeners(Infinity, this.shutdown.signal);
    }
    this.pubsub.topicValidators.set(ADVERT_TOPIC, this.validate);
    this.pubsub.addEventListener('message', this.onMessage);
    this.pubsub.addEventListener('gossipsub:graft', this.onGraft);
    this.pubsub.subscribe(ADVERT_TOPIC);
    try {
      await this.refresh();
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.schedule();
    this.syncRound = 0;
    this.scheduleSync();
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    clearTimeout(this.timer);
    clearTimeout(this.syncTimer);
    this.timer = this.syncTimer = undefined;
    this.shutdown.abort(new Error('the advert service stopped'));
    this.pubsub.removeEventListener('message', this.onMessage);
    this.pubsub.removeEventListener('gossipsub:graft', this.onGraft);
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
   * peer. With `others`, the adverts it holds of other peers are offered too (see AskOptions). Concurrent
   * asks of one peer share one request. Works before start(); stop() aborts asks.
   */
  ask(peer: PeerId | string, options: AskOptions = {}): Promise<void> {
    const id = peer.toString();
    if (id === this.init.peerId) return Promise.resolve();
    const pending = this.asking.get(id);
    if (pending) return pending;
    let others = options.others;
    if (others === undefined) {
      others = this.syncAsksLeft > 0;
      if (others) this.syncAsksLeft--;
    }
    const run = (async () => {
      const signal = options.signal ? AbortSignal.any([options.signal, this.shutdown.signal]) : this.shutdown.signal;
      const target = typeof peer === 'string' ? peerIdFromString(peer) : peer;
      const answer = await this.info.fetchSigned(target, { signal, others: others ? MAX_OTHER_ADVERTS : 0 });
      if (!this.init.table.offer(answer.advert, answer.wire)) this.init.table.touch(answer.advert.peerId);
      for (const wire of answer.others) await this.offerSecondHand(wire, id);
    })().finally(() => this.asking.delete(id));
    this.asking.set(id, run);
    return run;
  }

  /** The adverts this node holds of others, for the info protocol's answer (the newest first). */
  known(max: number): Uint8Array[] {
    return this.init.table.list().sort((a, b) => b.lastSeen - a.lastSeen).slice(0, max).map((peer) => peer.wire);
  }

  /**
   * An advert relayed by `via`: verified only if newer than what we hold, and dated by its signing
   * time, not by now — a relayed copy is no sign of life, so a dead peer's advert cannot keep itself
   * alive by going round the mesh.
   */
  private async offerSecondHand(wire: Uint8Array, via: string): Promise<void> {
    try {
      const unverified = readAdvert(wire);
      const known = this.init.table.get(unverified.advert.peerId);
      if (unverified.advert.peerId === this.init.peerId || (known && !isNewerAdvert(unverified.advert, known.advert))) return;
      const advert = await verifyAdvert(unverified, this.verifyOptions());
      this.init.table.offer(advert, wire, Math.min(this.now(), advert.time));
    } catch (error) {
      if (!(error instanceof AdvertError)) throw error;
      this.reportDropped(via, `dropped an advert relayed by ${via}: ${error.message}`);
    }
  }

  /** For `node.addEventListener('peer:connect', adverts.onPeerConnect)`: asks the peer, logs failures. */
  readonly onPeerConnect = (event: CustomEvent<PeerId>): void => {
    const peer = event.detail;
    this.ask(peer).catch((error: Error) => this.init.log.debug(`asking ${peer} for its advert: ${error.message}`));
  };

  private soonTimer?: NodeJS.Timeout;
  private lastPublished = -Infinity;
  /** Whether the latest advert was published to no one (before this node had mesh peers). */
  private unheard = true;
  private syncAsksLeft = JOIN_SYNC_ASKS;

  /**
   * Our mesh gained a peer: if our latest advert reached no one, publish it again soon (at most once per
   * `REPUBLISH_MIN_GAP_MS`), rather than leaving the mesh without it until the next interval.
   */
  private readonly onGraft = (event: CustomEvent<{ topic: string }>): void => {
    if (!this.started || !this.unheard || this.soonTimer || event.detail.topic !== ADVERT_TOPIC) return;
    const wait = Math.max(0, this.lastPublished + REPUBLISH_MIN_GAP_MS - this.now());
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      this.refresh().catch((error: Error) => this.init.log.error(`advert not refreshed: ${error.message}`));
    }, wait);
    this.soonTimer.unref();
  };

  private syncTimer?: NodeJS.Timeout;
  private syncRound = 0;

  private scheduleSync(): void {
    if (!this.started) return;
    this.syncTimer = setTimeout(() => void this.sync(), SYNC_DELAYS_MS[this.syncRound] ?? jittered(this.intervalMs));
    this.syncTimer.unref();
  }

  /**
   * Pulls the adverts a random peer of the topic holds. The rounds of SYNC_DELAYS_MS count from the
   * first peer: a node whose handshakes wait behind others' (a busy bootstrap node) would spend them alone.
   */
  private async sync(): Promise<void> {
    const peers = this.pubsub.getSubscribers(ADVERT_TOPIC);
    const peer = peers[Math.floor(Math.random() * peers.length)];
    if (peer) {
      this.syncRound++;
      await this.ask(peer, { others: true }).catch((error: Error) => this.init.log.debug(`sync with ${peer}: ${error.message}`));
    }
    this.scheduleSync();
  }

  private schedule(): void {
    if (!this.started) return;
    this.timer = setTimeout(() => void this.tick(), jittered(this.intervalMs));
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
      this.unheard = (await this.pubsub.publish(ADVERT_TOPIC, wire)).recipients.length === 0;
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

  /**
   * What to do with a gossiped advert. Most copies a node receives are of adverts it already holds, and
   * their signatures are not checked again: a copy byte for byte of the advert we hold is passed on
   * (we may have it from a pull, not from gossip, and the peers behind us may lack it), an older one is
   * not; a newer one is verified, passed on and taken. Refusals are logged.
   */
  private async check(msg: Message): Promise<Verdict> {
    if (msg.type !== 'signed') {
      this.reportDropped('an unsigned peer', 'dropped an unsigned advert message');
      return { result: TopicValidatorResult.Reject };
    }
    try {
      const from = msg.from.toString();
      const unverified = readAdvert(msg.data);
      const { peerId } = unverified.advert;
      const known = this.init.table.get(peerId);
      // (an advert of someone else than its signer is refused by verifyAdvert, whether newer or not)
      if (peerId === from && peerId === this.init.peerId) return { result: TopicValidatorResult.Ignore };
      if (peerId === from && known && !isNewerAdvert(unverified.advert, known.advert)) {
        return { result: Buffer.from(known.wire).equals(msg.data) ? TopicValidatorResult.Accept : TopicValidatorResult.Ignore };
      }
      const advert = await verifyAdvert(unverified, { ...this.verifyOptions(), expectedPeer: from });
      return { result: TopicValidatorResult.Accept, advert };
    } catch (error) {
      if (!(error instanceof AdvertError)) throw error;
      this.reportDropped(msg.from.toString(), `dropped an advert from ${msg.from}: ${error.message}`);
      return { result: TopicValidatorResult.Reject };
    }
  }

  private verifyOptions() {
    return {
      now: this.now(),
      maxClockSkewMs: this.init.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS,
      maxAgeMs: this.init.maxAdvertAgeMs ?? DEFAULT_MAX_ADVERT_AGE_MS,
    };
  }

  private readonly validate = async (_source: PeerId, msg: Message): Promise<TopicValidatorResult> => {
    const verdict = await this.check(msg);
    if (verdict.result === TopicValidatorResult.Accept) this.verdicts.set(msg, verdict);
    return verdict.result;
  };

  private readonly onMessage = (event: CustomEvent<Message>): void => {
    const msg = event.detail;
    if (msg.topic !== ADVERT_TOPIC) return;
    const verdict = this.verdicts.get(msg);
    this.verdicts.delete(msg);
    // Without a verdict our validator was replaced: check here instead.
    void (verdict ? Promise.resolve(verdict) : this.check(msg)).then(({ advert }) => advert && this.accept(advert, msg.data));
  };

  private accept(advert: Advert, data: Uint8Array): void {
    // a copy: the message's bytes may be a view of a whole RPC buffer
    if (advert.peerId !== this.init.peerId) this.init.table.offer(advert, Uint8Array.from(data));
  }
}

/** `ms` give or take ADVERT_INTERVAL_JITTER of it, at random. */
export function jittered(ms: number): number {
  return ms * (1 + ADVERT_INTERVAL_JITTER * (2 * Math.random() - 1));
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
