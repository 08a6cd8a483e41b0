// The mesh as a build cache (design.md §6): who holds entries and blobs is learnt from adverts (a peer
// listing a release has built or fetched it) and from the DHT (a node provides the CIDs of the keys it
// has entries for and of the blobs it holds), and failing both the connected peers are asked; entries
// are looked up and blobs fetched over the cache protocol. Providers are tried in an order of rendezvous
// hashing keyed by the fetcher as well as the blob: each fetcher keeps one order for a blob (a retry goes
// the same way), while the fetchers of one blob spread over its providers instead of all asking the same
// one first, and a peer cannot pick a PeerId that puts it first for everyone. A peer that sent bad bytes
// goes last for a while.
import { createHash } from 'node:crypto';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { CID } from 'multiformats/cid';
import type { CacheProtocol } from '../../protocols/cache/index.js';
import type { Logger } from '../log.js';
import type { RemoteCache } from './artifacts.js';
import type { BlobStore } from './blob-store.js';
import { cidOfText } from './cid.js';
import { parseKey, type CacheEntry } from './entry.js';
import { fetchBlob, type FetchProgress } from './fetch.js';
import { SharedWork } from '../shared-work.js';

/** How long a search for providers in the DHT may take before the peers found so far are used. */
export const FIND_PROVIDERS_TIMEOUT_MS = 5_000;
/** With this many providers known (adverts, the entry's builder, the DHT so far), the DHT is not asked further. */
export const ENOUGH_PROVIDERS = 3;
/** At most this many providers are taken from the DHT for one CID. */
export const MAX_DHT_PROVIDERS = 20;
/** How long one announcement in the DHT may take. */
export const PROVIDE_TIMEOUT_MS = 30_000;
/** A peer that sent bad bytes is tried last for this long. */
export const PENALTY_MS = 10 * 60_000;
/** Peers asked for entries at once. */
const LOOKUP_CONCURRENCY = 4;
/** DHT announcements at once (each is a query of the closest peers). */
const PROVIDE_CONCURRENCY = 4;

export interface MeshCacheInit {
  /** The libp2p node's content routing (kad-dht). */
  routing: {
    provide(cid: CID, options: { signal: AbortSignal }): Promise<void>;
    findProviders(cid: CID, options: { signal: AbortSignal }): AsyncIterable<{ id: PeerId }>;
  };
  cache: Pick<CacheProtocol, 'lookup' | 'get'>;
  blobs: BlobStore;
  /** Peers whose adverts list a release (by its CID). */
  advertisers: (release: string) => string[];
  /** Peers connected now: asked when nobody is known to hold what is looked for (as Bitswap asks its neighbours first). */
  connected: () => string[];
  /** This node: never a provider of what it looks for. */
  self: string;
  log: Logger;
  findProvidersTimeoutMs?: number;
  now?: () => number;
}

/** The order in which `fetcher` tries the providers of `cid`: by rendezvous hash, penalised peers last. */
export function rankProviders(peers: readonly string[], cid: string, fetcher: string, penalisedUntil: ReadonlyMap<string, number>, now: number): string[] {
  const weight = new Map(peers.map((peer) => [peer, createHash('sha256').update(`${fetcher}\n${peer}\n${cid}`).digest('hex')]));
  const penalised = (peer: string) => ((penalisedUntil.get(peer) ?? 0) > now ? 1 : 0);
  return [...weight.keys()].sort((a, b) => penalised(a) - penalised(b) || (weight.get(a)! < weight.get(b)! ? -1 : 1));
}

export class MeshCache implements RemoteCache {
  private readonly penalisedUntil = new Map<string, number>();
  /**
   * Blobs being fetched: a second fetch of one (two deployments of a release at once) waits for the first,
   * and hears its progress too.
   */
  private readonly fetching = new SharedWork<string, { peer: string }, FetchProgress>();

  constructor(private readonly init: MeshCacheInit) {}

  async findEntries(key: string, signal: AbortSignal): Promise<{ wire: Uint8Array; from: string }[]> {
    const { kind, id } = parseKey(key);
    const peers = await this.providers(cidOfText(key), kind === 'release' ? id : undefined, [], signal);
    const found: { wire: Uint8Array; from: string }[] = [];
    await inParallel(peers, LOOKUP_CONCURRENCY, async (peer) => {
      try {
        for (const wire of await this.init.cache.lookup(peerIdFromString(peer), key, { signal })) found.push({ wire, from: peer });
      } catch (error) {
        if (signal.aborted) throw error;
        this.init.log.debug(`lookup of ${key} at ${peer}: ${(error as Error).message}`);
      }
    });
    return found;
  }

  /**
   * Fetches from the providers known, then — if none of them gave it (too busy to answer in time, say) —
   * once more from all the DHT finds: by then more peers may hold it, and the busy ones may have caught up.
   */
  fetch(cid: string, entry: CacheEntry | undefined, signal: AbortSignal, onProgress?: (progress: FetchProgress) => void): Promise<{ peer: string }> {
    return this.fetching.run(cid, signal, (shared, emit) => this.fetchOnce(cid, entry, shared, emit), onProgress);
  }

  private async fetchOnce(cid: string, entry: CacheEntry | undefined, signal: AbortSignal, onProgress: (progress: FetchProgress) => void): Promise<{ peer: string }> {
    // An artifact's builder and the peers listing its release likely hold it; a bundle's CID is its release's.
    const release = entry ? parseKey(entry.key) : undefined;
    const known = entry ? [entry.builder] : [];
    const advertised = release?.kind === 'release' ? release.id : entry ? undefined : cid;
    try {
      return await this.fetchFrom(await this.providers(cid, advertised, known, signal), cid, entry, signal, onProgress);
    } catch (error) {
      signal.throwIfAborted();
      this.init.log(`fetching ${cid} again, from every provider the DHT knows: ${(error as Error).message}`);
      return await this.fetchFrom(await this.providers(cid, advertised, known, signal, Infinity), cid, entry, signal, onProgress);
    }
  }

  private async fetchFrom(peers: readonly string[], cid: string, entry: CacheEntry | undefined, signal: AbortSignal, onProgress: (progress: FetchProgress) => void): Promise<{ peer: string }> {
    const order = rankProviders(peers, cid, this.init.self, this.penalisedUntil, this.now());
    let last = '';
    await fetchBlob({
      store: this.init.blobs, cid, signal,
      ...(entry ? { size: entry.size, chunks: entry.chunks } : {}),
      providers: order.map((peer) => peerIdFromString(peer)),
      // The peer fetchBlob asked last is the one it completed from.
      client: { get: (peer, blob, options) => ((last = peer.toString()), this.init.cache.get(peer, blob, options)) },
      onProgress,
      onBadProvider: (peer, reason) => {
        this.penalisedUntil.set(peer.toString(), this.now() + PENALTY_MS);
        this.init.log.error(`provider ${peer} sent bad data for ${cid}: ${reason}`);
      },
    });
    return { peer: last };
  }

  async provide(cids: readonly string[], keys: readonly string[]): Promise<void> {
    const failed: string[] = [];
    await inParallel([...cids, ...keys.map(cidOfText)], PROVIDE_CONCURRENCY, async (cid) => {
      await this.init.routing.provide(CID.parse(cid), { signal: AbortSignal.timeout(PROVIDE_TIMEOUT_MS) })
        .catch((error: Error) => failed.push(`${cid}: ${error.message}`));
    });
    if (failed.length) throw new Error(`announcing in the DHT failed for ${failed.join('; ')}`);
  }

  /**
   * Peers that may hold `cid`: `known` ones, those advertising `release`, the DHT's providers, else the
   * connected ones (never this node). The DHT is asked only while fewer than `enough` are known: a
   * search runs to its timeout in a large mesh (the cache simulation measured 5–6 s at 50 nodes, the
   * providers found in the first second), and a supply makes three.
   */
  private async providers(cid: string, release: string | undefined, known: readonly string[], signal: AbortSignal, enough = ENOUGH_PROVIDERS): Promise<string[]> {
    const peers = new Set([...known, ...(release ? this.init.advertisers(release) : [])]);
    peers.delete(this.init.self);
    const search = AbortSignal.any([signal, AbortSignal.timeout(this.init.findProvidersTimeoutMs ?? FIND_PROVIDERS_TIMEOUT_MS)]);
    let fromDht = 0;
    try {
      if (peers.size < enough) {
        for await (const provider of this.init.routing.findProviders(CID.parse(cid), { signal: search })) {
          if (provider.id.toString() !== this.init.self) peers.add(provider.id.toString());
          if (++fromDht >= MAX_DHT_PROVIDERS || peers.size >= enough) break;
        }
      }
    } catch (error) {
      signal.throwIfAborted();
      // A DHT with no peers, or a slow one: the peers found so far will do.
      this.init.log.debug(`providers of ${cid} in the DHT: ${(error as Error).message}`);
    }
    // A DHT that has just started (or a node just restarted) may know nobody yet: the neighbours may hold it.
    if (peers.size === 0) for (const peer of this.init.connected()) peers.add(peer);
    peers.delete(this.init.self);
    return [...peers];
  }

  private now(): number {
    return (this.init.now ?? Date.now)();
  }
}

/** Runs `work` on every item, at most `concurrency` at a time. */
async function inParallel<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
}
