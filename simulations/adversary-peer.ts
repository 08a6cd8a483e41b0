// A malicious peer (design.md §6, §9), made of real node parts: a SlapmeshNode that supplies a release
// like any other, so that its adverts list it and the DHT names it as a provider, and then lies about it. It
// serves corrupted bytes under the artifact's CID (one byte flipped in every 1 MiB chunk, so a fetch
// resuming anywhere still meets a bad chunk), and answers lookups of the release's key with forged entries:
// one signed with its own key for an artifact of its own making (well signed, by a builder nobody trusts),
// one claiming the honest builder made that artifact (under a signature that is not the builder's). Its
// PeerId is chosen so that the fetchers it targets try it first.
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { packArtifact } from '../node/cache/artifact.js';
import { BlobStore } from '../node/cache/blob-store.js';
import { CHUNK_SIZE } from '../node/cache/cid.js';
import { signEntry, validateEntry, verifyEntry, type CacheEntry } from '../node/cache/entry.js';
import { rankProviders } from '../node/cache/remote.js';
import { prepareDataDir } from '../node/data-dir.js';
import { IDENTITY_FILE } from '../node/identity.js';
import { seal } from '../node/signed.js';
import { NodeStore, STORE_FILE } from '../node/store.js';
import type { InProcessNode, InProcessNodes, StartOptions } from './in-process-nodes.js';

/** A file at the root of the adversary's own artifact: a node that extracted it would hold it. */
export const ADVERSARY_MARKER = 'ADVERSARY';
/** Keys drawn at most, looking for one ranked first (with n peers and t fetchers, about n^t are needed). */
const MAX_KEY_DRAWS = 100_000;

/** What the adversary did once it turned bad. */
export interface Forgery {
  /** The honest artifact whose copy here now holds corrupted bytes. */
  corrupted: string;
  /** The artifact of the adversary's own making the forged entries point to. */
  forgedArtifact: string;
  /** The entries it now answers lookups of the key with. */
  entries: { kind: 'own-key' | 'impersonation'; builder: string; cid: string }[];
}

export class KeySearchError extends Error {
  override name = 'KeySearchError';
}

/**
 * An Ed25519 key whose PeerId comes first among `peers` in the order each of `fetchers` tries the providers
 * of `cid` (node/cache/remote.ts's rendezvous ranking): whatever other of those providers such a fetcher
 * knows, this one is asked first. Each fetcher has its own order, so the search is for a few fetchers only.
 */
export async function keyRankedFirst(peers: readonly string[], cid: string, fetchers: readonly string[]): Promise<PrivateKey> {
  for (let draw = 0; draw < MAX_KEY_DRAWS; draw++) {
    const key = await generateKeyPair('Ed25519');
    const id = peerIdFromPrivateKey(key).toString();
    if (fetchers.every((fetcher) => rankProviders([...peers, id], cid, fetcher, new Map(), 0)[0] === id)) return key;
  }
  throw new KeySearchError(`no key ranked first for ${cid} among ${peers.length} peers by ${fetchers.length} fetchers in ${MAX_KEY_DRAWS} draws`);
}

export class AdversaryPeer {
  private constructor(readonly local: InProcessNode, private readonly key: PrivateKey) {}

  /** Starts the adversary's node with `key` as its identity (written into its data directory first). */
  static async start(nodes: InProcessNodes, name: string, key: PrivateKey, options: StartOptions = {}): Promise<AdversaryPeer> {
    const dataDir = nodes.dataDirOf(name);
    prepareDataDir(dataDir);
    writeFileSync(join(dataDir, IDENTITY_FILE), privateKeyToProtobuf(key), { mode: 0o600 });
    return new AdversaryPeer(await nodes.start(name, options), key);
  }

  get peerId(): string {
    return this.local.node.peerId;
  }

  /**
   * Turns bad about the artifact of `key` it holds (it must have supplied the release, installing a trusted
   * builder's artifact): corrupts its copy, then replaces the entries it serves with forged ones.
   */
  async turnBad(key: string): Promise<Forgery> {
    const { dataDir } = this.local.node.options;
    const store = NodeStore.open(join(dataDir, STORE_FILE));
    try {
      const honest = await honestEntry(store, key, this.peerId);
      await corruptBlob(new BlobStore(join(dataDir, 'cache')), honest.cid);
      const forged = await this.forgeArtifact(dataDir);
      const now = Date.now();
      // Its own, well signed: refused only because nobody trusts it as a builder.
      const own: CacheEntry = { ...honest, cid: forged.cid, size: forged.size, chunks: forged.chunks, builder: this.peerId, time: now };
      // The honest builder's name on the same artifact, newer than the real entry, signed with the adversary's key.
      const impersonation: CacheEntry = { ...own, builder: honest.builder, time: now + 1 };
      const decoder = new TextDecoder();
      for (const [entry, wire] of [[own, await signEntry(own, this.key)], [impersonation, await seal(validateEntry(impersonation), this.key)]] as const) {
        store.putCacheEntry({ key, builder: entry.builder, cid: entry.cid, time: entry.time, wire: decoder.decode(wire) });
      }
      return {
        corrupted: honest.cid, forgedArtifact: forged.cid,
        entries: [{ kind: 'own-key', builder: own.builder, cid: own.cid }, { kind: 'impersonation', builder: impersonation.builder, cid: impersonation.cid }],
      };
    } finally {
      store.close();
    }
  }

  /** Packs a tree of its own — shaped like the hello release, its server a script of the adversary's — into its blob store. */
  private async forgeArtifact(dataDir: string): Promise<{ cid: string; size: number; chunks: string[] }> {
    mkdirSync(join(dataDir, 'tmp'), { recursive: true });
    const tree = mkdtempSync(join(dataDir, 'tmp', 'forged-'));
    try {
      mkdirSync(join(tree, 'parts', 'hello-server', 'bin'), { recursive: true });
      writeFileSync(join(tree, 'parts', 'hello-server', 'bin', 'hello-server'), '#!/bin/sh\necho "served by the adversary"\n', { mode: 0o755 });
      writeFileSync(join(tree, ADVERSARY_MARKER), `made by ${this.peerId}\n`);
      const packed = await packArtifact(tree, `${tree}.tar.zst`);
      const put = await new BlobStore(join(dataDir, 'cache')).put(packed.file, { move: true });
      return { cid: put.cid, size: put.size, chunks: put.chunks };
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  }
}

/** The entry of another builder that this node kept for `key` (it installed that builder's artifact). */
async function honestEntry(store: NodeStore, key: string, self: string): Promise<CacheEntry> {
  const stored = store.listCacheEntries(key).find((entry) => entry.builder !== self);
  if (!stored) throw new Error(`the adversary holds no entry of another builder for ${key}: it must supply the release first`);
  return verifyEntry(new TextEncoder().encode(stored.wire));
}

/** Flips one byte in every chunk of the blob, in place: same CID on disk, same size, no chunk that verifies. */
async function corruptBlob(blobs: BlobStore, cid: string): Promise<void> {
  const path = await blobs.path(cid);
  if (!path) throw new Error(`the adversary does not hold ${cid}`);
  const { size, mode } = statSync(path);
  chmodSync(path, 0o644); // blobs are read-only
  const fd = openSync(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    for (let chunk = 0; chunk * CHUNK_SIZE < size; chunk++) {
      const at = chunk * CHUNK_SIZE + Math.min(100, size - chunk * CHUNK_SIZE - 1);
      readSync(fd, byte, 0, 1, at);
      byte[0] = byte[0]! ^ 0xff;
      writeSync(fd, byte, 0, 1, at);
    }
  } finally {
    closeSync(fd);
    chmodSync(path, mode & 0o777);
  }
}
