// Where to place an instance (docs/instances.md, "Placement"): an index of the peers a requester knows,
// kept up to date from their adverts, and the ranking drawn from it. Pure and synchronous: the node and the
// model simulator (simulations/) use this very code.
//
// Ranking every known peer for every request does not scale (10,000 peers × 100,000 requests), so, as in
// "the power of d choices" (Mitzenmacher; Sparrow), a request looks at a few peers drawn at random — among
// those that hold the release first, then among all with a free partition — and ranks only those: nearly as
// good as the best peer, and it spreads concurrent requests instead of sending them all to one peer.

/** What the index knows of a peer, from its advert (and the reservations made since). */
export interface PeerCapacity {
  peerId: string;
  /** CIDs of the releases it has available. */
  releases: readonly string[];
  /** Free partitions, as last advertised, minus reservations this node made there since. */
  free: number;
  total: number;
  /** 1-minute load average over CPUs (0 = idle). */
  load: number;
}

/** How many peers of each pool a ranking looks at. */
export const SAMPLE_SIZE = 8;

/** A set with O(1) add, delete and random pick (the model simulator keeps the mesh's holders in one too). */
export class SampleSet {
  private readonly items: string[] = [];
  private readonly index = new Map<string, number>();

  get size(): number {
    return this.items.length;
  }

  add(item: string): void {
    if (this.index.has(item)) return;
    this.index.set(item, this.items.length);
    this.items.push(item);
  }

  delete(item: string): void {
    const at = this.index.get(item);
    if (at === undefined) return;
    const last = this.items.pop()!;
    this.index.delete(item);
    if (last !== item) {
      this.items[at] = last;
      this.index.set(last, at);
    }
  }

  /** Up to `count` distinct items drawn at random (all of them when there are no more). */
  sample(count: number, random: () => number): string[] {
    if (this.items.length <= count) return [...this.items];
    const picked = new Set<string>();
    while (picked.size < count) picked.add(this.items[Math.floor(random() * this.items.length)]!);
    return [...picked];
  }
}

export class PlacementIndex {
  private readonly peers = new Map<string, PeerCapacity>();
  /** Peers with a free partition. */
  private readonly withRoom = new SampleSet();
  /** Per release, the peers with a free partition that have it. */
  private readonly holders = new Map<string, SampleSet>();
  /**
   * Per peer, the reservations asked and not answered yet: they count against its room. Under load an answer
   * takes seconds, and a requester firing many requests meanwhile would otherwise send them all to the peer
   * that looked emptiest when they started.
   */
  private readonly pending = new Map<string, number>();

  constructor(private readonly random: () => number = Math.random) {}

  get size(): number {
    return this.peers.size;
  }

  get(peerId: string): PeerCapacity | undefined {
    return this.peers.get(peerId);
  }

  /** Adds or replaces what is known of a peer. */
  update(peer: PeerCapacity): void {
    this.remove(peer.peerId);
    const copy = { ...peer, releases: [...peer.releases] };
    this.peers.set(peer.peerId, copy);
    this.index(copy);
  }

  remove(peerId: string): void {
    const peer = this.peers.get(peerId);
    if (!peer) return;
    this.unindex(peer);
    this.peers.delete(peerId);
  }

  /** A reservation is being asked of `peerId`: one partition less until the answer (reserved, refused, unanswered). */
  asking(peerId: string): void {
    this.settle(peerId, +1);
  }

  /**
   * Counts a reservation made on `peerId`: its free partitions are `free` when its answer said (other
   * requesters' reservations included), else one less than known, until its next advert. Without the
   * answer's count, requesters with an advert-old view all see the same emptiest peers and crowd them.
   */
  reserved(peerId: string, free?: number): void {
    const peer = this.peers.get(peerId);
    if (peer) peer.free = Math.min(free ?? Math.max(0, peer.free - 1), peer.total);
    this.settle(peerId, -1);
  }

  /** A reservation asked of `peerId` got no answer (or a failure that says nothing of its room). */
  unanswered(peerId: string): void {
    this.settle(peerId, -1);
  }

  /**
   * A peer refused a reservation (full, or not admitting this requester): not ranked again until its next
   * advert says otherwise. Otherwise a requester whose view is an advert old keeps asking the holders of a
   * popular release that filled up meanwhile, and gives up while other peers have room (the model
   * simulator measured 4% of requests refused so, with 80% of the partitions free).
   */
  refused(peerId: string): void {
    const peer = this.peers.get(peerId);
    if (peer) peer.free = Math.min(peer.free, 0);
    this.settle(peerId, -1);
  }

  /**
   * The peers to try for an instance of `release`, best first: a sample of those that hold it, then a
   * sample of the others with room, each ranked by room and load. At most `limit`; never those in `exclude`.
   */
  rank(release: string, options: { limit: number; exclude?: ReadonlySet<string> }): string[] {
    const exclude = options.exclude ?? new Set<string>();
    const drawn = (set: SampleSet | undefined) => (set?.sample(SAMPLE_SIZE + exclude.size, this.random) ?? []).filter((id) => !exclude.has(id));
    const holding = drawn(this.holders.get(release));
    const others = drawn(this.withRoom).filter((id) => !holding.includes(id));
    const byScore = (ids: string[]) => ids.map((id) => ({ ...this.peers.get(id)!, free: this.room(id) })).sort(compareCapacity).map((peer) => peer.peerId);
    return [...byScore(holding), ...byScore(others)].slice(0, options.limit);
  }

  /** Free partitions known, less the reservations asked and not answered. */
  private room(peerId: string): number {
    return (this.peers.get(peerId)?.free ?? 0) - (this.pending.get(peerId) ?? 0);
  }

  /** Counts one more (+1) or one less (-1) reservation pending on the peer, and indexes it again as it is now. */
  private settle(peerId: string, change: 1 | -1): void {
    // An answer to a reservation not counted as asked (tests, the model) leaves nothing pending.
    const count = Math.max(0, (this.pending.get(peerId) ?? 0) + change);
    if (count === 0) this.pending.delete(peerId);
    else this.pending.set(peerId, count);
    const peer = this.peers.get(peerId);
    if (!peer) return;
    this.unindex(peer);
    this.index(peer);
  }

  private index(peer: PeerCapacity): void {
    if (this.room(peer.peerId) <= 0) return;
    this.withRoom.add(peer.peerId);
    for (const release of peer.releases) {
      let set = this.holders.get(release);
      if (!set) this.holders.set(release, (set = new SampleSet()));
      set.add(peer.peerId);
    }
  }

  private unindex(peer: PeerCapacity): void {
    this.withRoom.delete(peer.peerId);
    for (const release of peer.releases) {
      const set = this.holders.get(release);
      set?.delete(peer.peerId);
      if (set?.size === 0) this.holders.delete(release);
    }
  }
}

/** Less used first (share of partitions taken), then less loaded, then by PeerId for a stable order. */
export function compareCapacity(a: PeerCapacity, b: PeerCapacity): number {
  const used = (peer: PeerCapacity) => (peer.total > 0 ? 1 - peer.free / peer.total : 1);
  return used(a) - used(b) || a.load - b.load || (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0);
}
