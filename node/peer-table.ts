// What this node knows of the others: the newest verified advert of each peer and when it was last
// heard from. Only verified adverts go in (AdvertService verifies them); the table itself does no I/O
// and keeps time with the `now` it is given, so tests drive it with a fake clock.
import { TypedEventEmitter } from '@libp2p/interface';
import type { Advert } from './advert.js';

export interface KnownPeer {
  peerId: string;
  advert: Advert;
  /** The signed advert as received, for passing on or storing. */
  wire: Uint8Array;
  /** When we last heard from the peer (a newer advert, or a direct answer), ms since the epoch. */
  lastSeen: number;
}

export interface PeerTableEvents {
  /** A new peer, or a newer advert of a known one (a new seq, or a re-signed advert with a newer time). */
  'peer:updated': CustomEvent<KnownPeer>;
  /** A peer silent for longer than ttlMs was dropped; the detail is its PeerId. */
  'peer:expired': CustomEvent<string>;
}

export interface PeerTableInit {
  /** A peer not heard from for longer than this is dropped by expire(). */
  ttlMs: number;
  /** Default Date.now. */
  now?: () => number;
  /** Adverts of new peers are refused once the table holds this many (default 10,000). */
  maxPeers?: number;
}

export const DEFAULT_MAX_PEERS = 10_000;

/** Whether `a` supersedes `b`: a higher seq, or the same seq signed later. */
export function isNewerAdvert(a: Advert, b: Advert): boolean {
  return a.seq > b.seq || (a.seq === b.seq && a.time > b.time);
}

export class PeerTable extends TypedEventEmitter<PeerTableEvents> {
  private readonly peers = new Map<string, KnownPeer>();
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly maxPeers: number;

  constructor(init: PeerTableInit) {
    super();
    this.ttlMs = init.ttlMs;
    this.now = init.now ?? Date.now;
    this.maxPeers = init.maxPeers ?? DEFAULT_MAX_PEERS;
  }

  /**
   * Keeps the advert if it is newer (higher seq, or same seq and newer time) than what we have; returns
   * whether it changed. Each kept advert emits peer:updated and counts as hearing from the peer at
   * `seenAt` (default now; a relayed copy passes its signing time). An advert seen longer than the TTL
   * ago is refused.
   */
  offer(advert: Advert, wire: Uint8Array, seenAt = this.now()): boolean {
    const known = this.peers.get(advert.peerId);
    if (known ? !isNewerAdvert(advert, known.advert) : this.peers.size >= this.maxPeers) return false;
    if (this.now() - seenAt > this.ttlMs) return false;
    const peer: KnownPeer = { peerId: advert.peerId, advert, wire, lastSeen: Math.max(seenAt, known?.lastSeen ?? -Infinity) };
    this.peers.set(peer.peerId, peer);
    this.safeDispatchEvent('peer:updated', { detail: peer });
    return true;
  }

  /** Marks a peer as seen (e.g. it answered us directly) without changing its advert. */
  touch(peerId: string): void {
    const known = this.peers.get(peerId);
    if (known) this.peers.set(peerId, { ...known, lastSeen: Math.max(known.lastSeen, this.now()) });
  }

  get(peerId: string): KnownPeer | undefined {
    return this.peers.get(peerId);
  }

  /** Every known peer, sorted by PeerId. */
  list(): KnownPeer[] {
    return [...this.peers.values()].sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
  }

  get size(): number {
    return this.peers.size;
  }

  /** Drops peers silent for longer than ttlMs; returns their ids (sorted) and emits peer:expired for each. */
  expire(): string[] {
    const now = this.now();
    const expired = this.list().filter((peer) => now - peer.lastSeen > this.ttlMs).map((peer) => peer.peerId);
    for (const peerId of expired) this.peers.delete(peerId);
    for (const peerId of expired) this.safeDispatchEvent('peer:expired', { detail: peerId });
    return expired;
  }

  /** Forgets a peer at once (no event). */
  remove(peerId: string): void {
    this.peers.delete(peerId);
  }
}
