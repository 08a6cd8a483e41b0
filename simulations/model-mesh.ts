// The model's mesh (simulations/model.ts): nodes with partitions and releases, their adverts reaching the
// requesters' placement indexes (node/placement.ts, the node's own class) a gossip delay later, and the cache
// policy a host follows to supply a release — a trusted peer's artifact first (providers in the order
// node/cache/remote.ts ranks them), else a build. No network: every delay is a number of virtual ms.
import { rankProviders, MAX_DHT_PROVIDERS } from '../node/cache/remote.js';
import { PlacementIndex, SampleSet, type PeerCapacity } from '../node/placement.js';
import type { HoldingRecord } from './model-record.js';
import type { EventQueue } from './model-queue.js';
import { forkRandom, type Random } from './random.js';

export class ModelNode {
  /** Partitions reserved or hosting. */
  used = 0;
  peakUsed = 0;
  alive = true;
  /** Releases it holds (by index), each with the builder whose artifact it installed. */
  readonly holds = new Map<number, string>();
  /** Releases being supplied, with what waits for each. */
  readonly supplying = new Map<number, (() => void)[]>();
  /** References reserved here and not yet confirmed. */
  readonly reservations = new Set<string>();
  /** References of the confirmed instances here. */
  readonly hosted = new Set<string>();
  /** Deployments running (at most `cpus`: node/hosting.ts runs one buildout per core), and those waiting. */
  deploying = 0;
  readonly waiting: (() => void)[] = [];
  /** Bumped whenever what its advert says changes; `published` is the version last sent. */
  version = 0;
  published = -1;
  /** What the last advert said, to skip publishing one that says the same (a deployment begun and ended). */
  publishedContent = '';
  publishScheduled = false;
  /** Advert timer phase: each node started at its own moment. */
  readonly phase: number;
  /** Releases the mesh has heard this node advertise. */
  readonly heard = new Set<number>();

  constructor(readonly number: number, readonly id: string, readonly capacity: number, phase: number) {
    this.phase = phase;
  }

}

/** A requester: a node that places instances, from its own view of the mesh. */
export interface Requester {
  node: ModelNode;
  view: PlacementIndex;
  /** Per node, the advert version this view last took (-1: none). */
  seen: Int32Array;
  /** Per release, how many peers this view knows to list it: the convergence plot. */
  holdersKnown: Int32Array;
}

export interface MeshInit {
  queue: EventQueue;
  random: Random;
  nodes: number;
  partitions: number;
  releases: number;
  requesters: number;
  cpus: number;
  advertIntervalMs: number;
  gossipDelayMs: number;
  roundTripMs: number;
  /** Time to find that a provider does not answer (then the next one is tried). */
  providerTimeoutMs: number;
  fetchMs: number;
  buildMs: number;
  trustAnyBuilder: boolean;
  /** 'never': hosts build whatever peers hold (a broken policy the cache-used assertion must catch). */
  cache: 'mesh' | 'never';
}

export class ModelMesh {
  readonly nodes: ModelNode[] = [];
  readonly byId = new Map<string, ModelNode>();
  readonly requesters: Requester[] = [];
  readonly releaseIds: string[];
  private readonly releaseIndex: Map<string, number>;
  /** The designated builder of each release, whom every node trusts (its PeerId in every trust list). */
  readonly builders: string[] = [];
  private readonly trustedBuilders = new Set<string>();
  /** What the mesh heard: per release, per signer of the artifact, the live nodes that advertised holding it. */
  private readonly advertised = new Map<number, Map<string, SampleSet>>();
  /** Per release, how many live nodes hold it (whether heard yet or not). */
  readonly holdersAlive: Int32Array;
  readonly holdings: HoldingRecord[] = [];
  private readonly holdingOf = new Map<string, HoldingRecord>();
  readonly builds: { at: number; node: string; release: string }[] = [];
  cacheHits = 0;
  /** Cumulative hits and builds over time, for the cache plot. */
  readonly cacheSeries: { at: number; hits: number; builds: number }[] = [];

  constructor(private readonly init: MeshInit) {
    const width = String(init.nodes - 1).length;
    for (let n = 0; n < init.nodes; n++) {
      const node = new ModelNode(n, `node-${String(n).padStart(width, '0')}`, init.partitions, Math.floor(init.random() * init.advertIntervalMs));
      this.nodes.push(node);
      this.byId.set(node.id, node);
    }
    this.releaseIds = Array.from({ length: init.releases }, (_, r) => `release-${String(r).padStart(String(init.releases - 1).length, '0')}`);
    this.releaseIndex = new Map(this.releaseIds.map((id, r) => [id, r]));
    this.holdersAlive = new Int32Array(init.releases);
    for (let n = 0; n < Math.min(init.requesters, init.nodes); n++) {
      this.requesters.push({
        node: this.nodes[n]!, view: new PlacementIndex(forkRandom(init.random)), seen: new Int32Array(init.nodes).fill(-1), holdersKnown: new Int32Array(init.releases),
      });
    }
  }

  /** Gives release `r` to its builder, built before the run. */
  designateBuilder(r: number, builder: ModelNode, prebuilt: boolean): void {
    this.builders[r] = builder.id;
    this.trustedBuilders.add(builder.id);
    if (prebuilt) this.hold(builder, r, builder.id);
  }

  trusts(node: ModelNode, signer: string): boolean {
    return this.init.trustAnyBuilder || signer === node.id || this.trustedBuilders.has(signer);
  }

  /** What a node's advert says now. */
  capacityOf(node: ModelNode): PeerCapacity {
    const releases: string[] = [];
    for (const r of node.holds.keys()) releases.push(this.releaseIds[r]!);
    // The advert's load is the 1-minute load average per CPU; here, running deployments per CPU.
    return { peerId: node.id, releases, free: node.capacity - node.used, total: node.capacity, load: node.deploying / this.init.cpus };
  }

  // ---- adverts ----

  /** Every node's first advert, heard by all before the first request (a mesh that has converged). */
  publishAll(): void {
    for (const node of this.nodes) {
      node.publishedContent = `${node.used} ${node.deploying} ${node.holds.size}`;
      this.deliver(node, this.capacityOf(node), (node.published = node.version));
    }
  }

  /** Something an advert says changed: the node's next periodic advert (node/adverts.ts timer) carries it. */
  changed(node: ModelNode): void {
    if (node.publishScheduled || !node.alive) return;
    node.publishScheduled = true;
    const { queue, advertIntervalMs } = this.init;
    const next = node.phase + Math.ceil((queue.now - node.phase) / advertIntervalMs) * advertIntervalMs;
    queue.after(next - queue.now, () => this.publish(node));
  }

  /** Publishes now if anything changed (a release became available: the node refreshes its advert at once). */
  publish(node: ModelNode): void {
    node.publishScheduled = false;
    if (!node.alive || node.version === node.published) return;
    const version = (node.published = node.version);
    const content = `${node.used} ${node.deploying} ${node.holds.size}`;
    if (content === node.publishedContent) return;
    node.publishedContent = content;
    const capacity = this.capacityOf(node);
    this.init.queue.after(this.init.gossipDelayMs, () => this.deliver(node, capacity, version));
  }

  private deliver(node: ModelNode, capacity: PeerCapacity, version: number): void {
    for (const requester of this.requesters) {
      if (requester.seen[node.number] === version) continue;
      this.take(requester, capacity);
      requester.seen[node.number] = version;
    }
    if (!node.alive) return;
    for (const release of capacity.releases) {
      const r = this.releaseIndex.get(release)!;
      if (node.heard.has(r)) continue;
      node.heard.add(r);
      const signer = node.holds.get(r)!;
      let bySigner = this.advertised.get(r);
      if (!bySigner) this.advertised.set(r, (bySigner = new Map()));
      let set = bySigner.get(signer);
      if (!set) bySigner.set(signer, (set = new SampleSet()));
      set.add(node.id);
      this.holdingOf.get(`${node.id} ${r}`)!.advertisedAt = this.init.queue.now;
    }
  }

  /** A requester's view takes what a peer says of itself (its own entry included: the requester may host). */
  take(requester: Requester, capacity: PeerCapacity): void {
    const before = requester.view.get(capacity.peerId);
    if (before) for (const release of before.releases) requester.holdersKnown[this.releaseIndex.get(release)!]!--;
    for (const release of capacity.releases) requester.holdersKnown[this.releaseIndex.get(release)!]!++;
    requester.view.update(capacity);
  }

  /** A dead node's entries expire: from every view, and from what the mesh knows of holders. */
  forget(node: ModelNode): void {
    for (const requester of this.requesters) {
      const before = requester.view.get(node.id);
      if (!before) continue;
      for (const release of before.releases) requester.holdersKnown[this.releaseIndex.get(release)!]!--;
      requester.view.remove(node.id);
    }
    for (const r of node.heard) this.advertised.get(r)?.get(node.holds.get(r)!)?.delete(node.id);
  }

  die(node: ModelNode): void {
    node.alive = false;
    for (const r of node.holds.keys()) {
      this.holdersAlive[r]!--;
      this.holdingOf.get(`${node.id} ${r}`)!.diedAt = this.init.queue.now;
    }
  }

  // ---- the cache: supplying a release (node/releases.ts: local, a trusted artifact, else a build) ----

  /** Makes release `r` available on `host`, then runs `then` (at once when it holds it already). */
  supply(host: ModelNode, r: number, then: () => void): void {
    if (host.holds.has(r)) return then();
    const waiting = host.supplying.get(r);
    if (waiting) return void waiting.push(then);
    host.supplying.set(r, [then]);
    const { queue } = this.init;
    let spent = 0;
    for (const signer of this.init.cache === 'mesh' ? this.trustedSigners(host, r) : []) {
      const set = this.advertised.get(r)?.get(signer);
      // The entry's builder and the peers advertising the release, as many as a DHT search brings.
      const peers = new Set(set?.sample(MAX_DHT_PROVIDERS, this.init.random) ?? []);
      if (this.byId.get(signer)?.heard.has(r)) peers.add(signer);
      peers.delete(host.id);
      for (const peer of rankProviders([...peers], `${this.releaseIds[r]}/${signer}`, host.id, new Map(), queue.now)) {
        if (!this.byId.get(peer)!.alive) {
          spent += this.init.providerTimeoutMs;
          continue;
        }
        queue.after(spent + this.init.roundTripMs + this.init.fetchMs, () => this.supplied(host, r, signer, 'peer'));
        return;
      }
    }
    this.builds.push({ at: queue.now, node: host.id, release: this.releaseIds[r]! });
    queue.after(spent + this.init.buildMs, () => this.supplied(host, r, host.id, 'built'));
  }

  /** Its own entry first, then the trusted builders' (node/cache/artifacts.ts `trusted`). */
  private trustedSigners(host: ModelNode, r: number): string[] {
    const signers = [...(this.advertised.get(r)?.keys() ?? [])].filter((signer) => this.trusts(host, signer));
    return signers.sort((a, b) => (a === host.id ? -1 : b === host.id ? 1 : a < b ? -1 : a > b ? 1 : 0));
  }

  private supplied(host: ModelNode, r: number, signer: string, source: 'peer' | 'built'): void {
    if (source === 'peer') this.cacheHits++;
    this.cacheSeries.push({ at: this.init.queue.now, hits: this.cacheHits, builds: this.builds.length });
    if (!host.alive) return;
    this.hold(host, r, signer);
    this.publish(host);
    const waiting = host.supplying.get(r) ?? [];
    host.supplying.delete(r);
    for (const then of waiting) then();
  }

  private hold(node: ModelNode, r: number, signer: string): void {
    node.holds.set(r, signer);
    node.version++;
    this.changed(node);
    this.holdersAlive[r]!++;
    const holding: HoldingRecord = { node: node.id, release: this.releaseIds[r]!, signer, advertisedAt: Infinity };
    this.holdings.push(holding);
    this.holdingOf.set(`${node.id} ${r}`, holding);
  }

  // ---- deployments: one buildout per CPU at once (node/hosting.ts `deployments`) ----

  deploy(host: ModelNode, deployMs: number, then: () => void): void {
    const run = () => {
      host.deploying++;
      this.touch(host);
      this.init.queue.after(deployMs, () => {
        if (!host.alive) return;
        host.deploying--;
        this.touch(host);
        host.waiting.shift()?.();
        then();
      });
    };
    if (host.deploying < this.init.cpus) run();
    else host.waiting.push(run);
  }

  // ---- partitions ----

  /** Takes a partition (a reservation). */
  claim(node: ModelNode): void {
    node.used++;
    if (node.used > node.peakUsed) node.peakUsed = node.used;
    this.touch(node);
  }

  /** Frees a partition (an expired reservation). */
  free(node: ModelNode): void {
    node.used--;
    this.touch(node);
  }

  /** What the node's advert says changed. */
  private touch(node: ModelNode): void {
    node.version++;
    this.changed(node);
  }
}
