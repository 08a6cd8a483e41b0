// The signed artifacts a node can use (design.md §6), whatever they hold — a whole release or a shared
// part: the entries of trusted builders for a key (its own, then those peers hold), installing one (its
// blob fetched if need be, extracted and relocated), and publishing what this node built (packed, stored,
// signed, recorded, announced).
import { join } from 'node:path';
import type { PrivateKey } from '@libp2p/interface';
import type { Logger } from '../log.js';
import type { NodeStore } from '../store.js';
import { extractArtifact, packArtifact } from './artifact.js';
import type { BlobStore } from './blob-store.js';
import { signEntry, verifyEntry, type CacheEntry } from './entry.js';
import type { FetchProgress } from './fetch.js';

/** What this node knows how to ask the mesh for (node/cache/remote.ts's MeshCache over the DHT and the cache protocol). */
export interface RemoteCache {
  /** Signed entries for a key, as peers gave them (unverified), with the peer each came from. */
  findEntries(key: string, signal: AbortSignal): Promise<{ wire: Uint8Array; from: string }[]>;
  /**
   * Fetches a blob into the local store; with an entry, each chunk is verified as it arrives. `onProgress`
   * hears how the download stands (also when it joins one already running).
   */
  fetch(cid: string, entry: CacheEntry | undefined, signal: AbortSignal, onProgress?: (progress: FetchProgress) => void): Promise<{ peer: string }>;
  /** Tells the mesh this node serves these blobs and keys. */
  provide(cids: readonly string[], keys: readonly string[]): Promise<void>;
}

export interface ArtifactsInit {
  store: NodeStore;
  blobs: BlobStore;
  key: PrivateKey;
  peerId: string;
  /** Whether this node uses artifacts signed by `builder` (itself always). */
  trusts: (builder: string) => boolean;
  remote?: RemoteCache;
  /** Where artifacts are packed before they join the blob store. */
  tmpDir: string;
  log: Logger;
  now?: () => number;
}

/** An artifact that cannot be used here: built under another prefix and not relocatable, or not to be had. */
export class ArtifactUnusableError extends Error {
  override name = 'ArtifactUnusableError';
}

export class Artifacts {
  constructor(private readonly init: ArtifactsInit) {}

  /** Entries of trusted builders for `key`, newest first: those kept here, else those peers hold (kept once verified). */
  async trusted(key: string, signal: AbortSignal): Promise<CacheEntry[]> {
    const { store, log, remote } = this.init;
    const encoder = new TextEncoder();
    const found: CacheEntry[] = [];
    for (const stored of store.listCacheEntries(key)) {
      if (!this.isTrusted(stored.builder)) continue;
      // Kept once verified, so only a damaged database gives a bad one: it is left out, not fatal.
      try {
        found.push(await verifyEntry(encoder.encode(stored.wire)));
      } catch (error) {
        log.error(`a stored cache entry for ${key} by ${stored.builder} is unusable: ${(error as Error).message}`);
      }
    }
    if (found.length === 0 && remote) {
      const decoder = new TextDecoder();
      for (const { wire, from } of await remote.findEntries(key, signal)) {
        try {
          const entry = await verifyEntry(wire);
          if (entry.key !== key) throw new Error(`it is for ${entry.key}`);
          if (!this.isTrusted(entry.builder)) {
            log.debug(`ignored an entry for ${key} from ${from}: its builder ${entry.builder} is not trusted`);
            continue;
          }
          store.putCacheEntry({ key, builder: entry.builder, cid: entry.cid, time: entry.time, wire: decoder.decode(wire) });
          found.push(entry);
        } catch (error) {
          log.error(`dropped a cache entry for ${key} from ${from}: ${(error as Error).message}`);
        }
      }
    }
    return found.sort((a, b) => b.time - a.time);
  }

  /**
   * Extracts an entry's artifact into `destination` (which must not exist), relocated to `toPrefix`; its blob
   * is fetched first if need be (`onProgress` hears how that stands). Returns the peer it came from (none
   * when it was here).
   */
  async install(entry: CacheEntry, destination: string, toPrefix: string, signal: AbortSignal, onProgress?: (progress: FetchProgress) => void): Promise<string | undefined> {
    // Before fetching: an artifact that cannot be moved here is not worth its bytes.
    if (!entry.relocatable && entry.prefix !== toPrefix) throw new ArtifactUnusableError(`it was built under ${entry.prefix} and cannot be moved`);
    const { blobs, remote } = this.init;
    let peer: string | undefined;
    if (!(await blobs.has(entry.cid))) {
      if (!remote) throw new ArtifactUnusableError(`artifact ${entry.cid} is not in this node's cache`);
      peer = (await remote.fetch(entry.cid, entry, signal, onProgress)).peer;
    }
    await extractArtifact((await blobs.path(entry.cid))!, destination, { fromPrefix: entry.prefix, toPrefix });
    return peer;
  }

  /** Packs the tree at `dir`, built under `prefix`, as the artifact of `key`: stored, signed and recorded here. */
  async publish(key: string, dir: string, prefix: string): Promise<CacheEntry> {
    const { blobs, store } = this.init;
    const packed = await packArtifact(dir, join(this.init.tmpDir, `artifact-${process.pid}-${Date.now()}.tar.zst`));
    await blobs.put(packed.file, { move: true });
    const entry: CacheEntry = {
      key, cid: packed.cid, size: packed.size, prefix, relocatable: true, chunks: packed.chunks,
      builder: this.init.peerId, time: (this.init.now ?? Date.now)(),
    };
    const wire = await signEntry(entry, this.init.key);
    store.putCacheEntry({ key, builder: entry.builder, cid: entry.cid, time: entry.time, wire: new TextDecoder().decode(wire) });
    return entry;
  }

  /** Tells the mesh, in the background, that this node serves these blobs and keys. */
  announce(cids: readonly string[], keys: readonly string[]): void {
    this.init.remote?.provide(cids, keys).catch((error: Error) => this.init.log.error(`could not announce ${cids.join(', ')}: ${error.message}`));
  }

  private isTrusted(builder: string): boolean {
    return builder === this.init.peerId || this.init.trusts(builder);
  }
}
