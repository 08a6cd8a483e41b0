// What the cache scenarios record of each node (design.md §6, §9): how its supply of a release went (where
// the artifact came from, how long it took), and what it holds afterwards — the artifact's blob re-hashed,
// the cache entries it kept, any trace of a build — read through the node's control socket and node.db as
// `slapmesh cache list` and the node itself read them.
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BlobStore } from '../node/cache/blob-store.js';
import { hashFile } from '../node/cache/cid.js';
import { callControl } from '../node/control.js';
import type { CachedBlob } from '../node/node.js';
import type { SupplyResult } from '../node/releases.js';
import { NodeStore, STORE_FILE } from '../node/store.js';
import { assertion } from './assertions.js';
import type { InProcessNode } from './in-process-nodes.js';

/** A node busy with tens of others in one loaded process may take long to answer its control socket. */
const INSPECT_TIMEOUT_MS = 60_000;

/** One node's supply of the release. Times in seconds since the run's clock started. */
export interface NodeSupply {
  name: string;
  peerId: string;
  /** The group of nodes it supplied with (0: the builder). */
  wave: number;
  startedAtS: number;
  finishedAtS?: number;
  /** The release's CID, as the node named it. */
  cid?: string;
  source?: SupplyResult['source'];
  /** The peer the artifact was fetched from. */
  peer?: string;
  /** The node's own figure for the supply. */
  seconds?: number;
  error?: string;
}

/** What a node holds once it supplied: read from its cache, node.db and data directory. */
export interface CacheEvidence {
  /** The release's artifact here, as `cache list` names it (the blob its entry for the release's key points to). */
  artifactCid?: string;
  artifactBytes?: number;
  /** What that blob's bytes hash to now. */
  artifactHash?: string;
  bundleBytes?: number;
  /** Every blob held. */
  blobs: string[];
  /** The cache entries node.db keeps for the release's key. */
  entries: { builder: string; cid: string }[];
  /** A build left its log or its folder: a compiler ran here. */
  built: boolean;
}

export type NodeRecord = NodeSupply & CacheEvidence;

/** Seconds since it was started; `origin` is that moment's performance.now(). */
export interface Clock {
  (): number;
  readonly origin: number;
}

export function startClock(): Clock {
  const origin = performance.now();
  return Object.assign(() => (performance.now() - origin) / 1000, { origin });
}

/** The files of the release installed on a node (`<data-dir>/software/<cid>`), relative paths sorted. */
export function installedFiles(dataDir: string, releaseCid: string): string[] {
  const root = join(dataDir, 'software', releaseCid);
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .sort();
}

/** Supplies `release` on the node and records how it went; a failure is recorded, not thrown. */
export async function supplyOn(local: InProcessNode, release: string, wave: number, clock: Clock): Promise<NodeSupply> {
  const record: NodeSupply = { name: local.name, peerId: local.node.peerId, wave, startedAtS: clock() };
  try {
    const { cid, source, peer, seconds } = await local.node.supply(release);
    Object.assign(record, { cid, source, seconds, ...(peer ? { peer } : {}) });
  } catch (error) {
    record.error = (error as Error).message;
  }
  record.finishedAtS = clock();
  return record;
}

/** What `local` holds of the release `releaseCid` (its bundle) and its artifact for `key`. */
export async function inspectCache(local: InProcessNode, releaseCid: string, key: string): Promise<CacheEvidence> {
  const { dataDir } = local.node.options;
  const listed = (await callControl(dataDir, 'cache.list', {}, { idleTimeoutMs: INSPECT_TIMEOUT_MS })) as CachedBlob[];
  const artifact = listed.find((blob) => blob.kind === 'artifact' && blob.key === key);
  const evidence: CacheEvidence = {
    blobs: listed.map((blob) => blob.cid),
    entries: storedEntries(dataDir, key),
    built: existsSync(join(dataDir, 'software', `${releaseCid}.log`)) || existsSync(join(dataDir, 'build')),
  };
  const bundle = listed.find((blob) => blob.cid === releaseCid);
  if (bundle) evidence.bundleBytes = bundle.size;
  if (artifact) {
    evidence.artifactCid = artifact.cid;
    evidence.artifactBytes = artifact.size;
    const path = await new BlobStore(join(dataDir, 'cache')).path(artifact.cid);
    if (path) evidence.artifactHash = (await hashFile(path)).cid;
  }
  return evidence;
}

/** inspectCache() of each node in turn (its supply record first), so that tens of nodes are not asked at once. */
export async function inspectEach(nodes: readonly { local: InProcessNode; supply: NodeSupply }[], releaseCid: string, key: string): Promise<NodeRecord[]> {
  const records: NodeRecord[] = [];
  for (const { local, supply } of nodes) records.push({ ...supply, ...await inspectCache(local, releaseCid, key) });
  return records;
}

/** The entries a node's node.db keeps for `key` (read beside the running node: node.db is in WAL mode). */
export function storedEntries(dataDir: string, key: string): { builder: string; cid: string }[] {
  const store = NodeStore.open(join(dataDir, STORE_FILE));
  try {
    return store.listCacheEntries(key).map(({ builder, cid }) => ({ builder, cid }));
  } finally {
    store.close();
  }
}

/** `every-node-supplied`: each node of the record has the release available. */
export const everyNodeSupplied = assertion<{ nodes: readonly NodeSupply[] }>(
  'every-node-supplied', 'Every node supplied the release: it is available there, built or installed from an artifact.',
  ({ nodes }) => nodes.filter((node) => node.source === undefined || node.error !== undefined)
    .map((node) => `${node.name} (${node.peerId}): ${node.error ?? 'no supply recorded'}`),
);
