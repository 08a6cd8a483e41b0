// Supplying a software release (design.md §6): the release becomes a bundle named by its CID; the node
// then has it built in its software root — from a trusted artifact when one can be had (its own cache,
// then peers), else by building it under a padded prefix, packing the result as an artifact, signing a
// cache entry for it, and extracting it like any fetched artifact. node.db records each release's state
// (building, available, error); a build's output goes to a log file beside the software root.
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { PrivateKey } from '@libp2p/interface';
import { install, type InstallEvent } from '../engine/install/installer.js';
import type { BlobStore } from './cache/blob-store.js';
import { bundleRelease, unbundle } from './cache/bundle.js';
import { parseBlobCid } from './cache/cid.js';
import { formatKey } from './cache/entry.js';
import type { FetchProgress } from './cache/fetch.js';
import { Artifacts, type RemoteCache } from './cache/artifacts.js';
import { PartCache } from './cache/part-cache.js';
import { paddedPrefix } from './cache/relocate.js';
import { mirrorRelease } from './cache/mirror.js';
import { isUrl } from '../engine/config/fetch.js';
import type { Logger } from './log.js';
import { SharedWork } from './shared-work.js';
import { formatSize } from './size.js';
import type { NodeStore } from './store.js';

export type { RemoteCache } from './cache/artifacts.js';

export interface SupplyResult {
  cid: string;
  name: string;
  /** local: it was already here; built: built here; peer: from a peer's artifact. */
  source: 'local' | 'built' | 'peer';
  peer?: string;
  seconds: number;
  path: string;
}

/**
 * A download during a supply: the release's bundle (supplied by CID) or its artifact, `bytes` of `size` held,
 * coming from `peer`. Sent when a provider starts, then at most every FETCH_EVENT_INTERVAL_MS, and at the end.
 */
export interface FetchEvent {
  type: 'fetch';
  what: 'bundle' | 'artifact';
  cid: string;
  bytes: number;
  size: number;
  peer: string;
}

/** What a supply tells as it goes: the build's steps, and its downloads. */
export type SupplyEvent = InstallEvent | FetchEvent;

/** A download in a few words: `fetching the artifact from PEER: 55.0 MiB of 200.0 MiB` (`fetched`, once whole). */
export function describeFetch(event: FetchEvent): string {
  return `${event.bytes === event.size ? 'fetched' : 'fetching'} the ${event.what} from ${event.peer}: ${formatSize(event.bytes)} of ${formatSize(event.size)}`;
}

/** What a supply is doing, in a few words, from its events: the download under way, or the parts being built. */
export class SupplyActivity {
  /** Parts begun and not yet ended (independent parts build at once). */
  private readonly building = new Set<string>();

  /** The activity once `event` happened, or undefined when the event does not change it. */
  after(event: SupplyEvent): string | undefined {
    switch (event.type) {
      case 'fetch': return describeFetch(event);
      case 'install': case 'update': this.building.add(event.part); break;
      case 'done': this.building.delete(event.part); break;
      case 'failed': this.building.delete(event.part); return undefined; // the supply fails with its error
      default: return undefined;
    }
    return this.building.size > 0 ? `building ${[...this.building].join(', ')}` : 'parts built';
  }
}

/**
 * Download events come at most this often: a terminal redrawn faster shows nothing more, and each event is a
 * line on the control socket.
 */
export const FETCH_EVENT_INTERVAL_MS = 200;

export interface ReleasesInit {
  dataDir: string;
  store: NodeStore;
  blobs: BlobStore;
  key: PrivateKey;
  peerId: string;
  platform: string;
  /** Whether this node uses artifacts signed by `builder` (itself always). */
  trusts: (builder: string) => boolean;
  remote?: RemoteCache;
  log: Logger;
  /** Parts built at once (default 1). */
  jobs?: number;
  /** The name peers give a release in their adverts (a release supplied by CID has no folder to name it). */
  nameOf?: (cid: string) => string | undefined;
  /** Told when a release becomes available (adverts list it). */
  onAvailable?: (cid: string) => void;
  now?: () => number;
}

export class SupplyError extends Error {
  override name = 'SupplyError';
}

export class Releases {
  /** Releases being supplied: a second supply of one waits for the first; both get it, and both hear how it goes. */
  private readonly supplying = new SharedWork<string, SupplyResult, SupplyEvent>();
  private readonly artifacts: Artifacts;
  /** Shared parts of the releases this node builds, through the same trusted entries. */
  private readonly parts: PartCache;

  constructor(private readonly init: ReleasesInit) {
    this.artifacts = new Artifacts({ ...init, tmpDir: join(init.dataDir, 'tmp') });
    this.parts = new PartCache(this.artifacts, init.platform, init.log);
  }

  /** Settles once no supply runs (a stopping node waits for its aborted builds to clean up). */
  async idle(): Promise<void> {
    await this.supplying.idle();
  }

  softwareRoot(cid: string): string {
    return join(this.init.dataDir, 'software', cid);
  }

  /** The output of the release's last build here (there is none when it was fetched). */
  buildLog(cid: string): string {
    return join(this.init.dataDir, 'software', `${cid}.log`);
  }

  /** RELEASE is a profile path (or a folder with software.cfg), its URL, or the CID of a bundle. */
  async supply(release: string, options: { signal?: AbortSignal; onEvent?: (event: SupplyEvent) => void } = {}): Promise<SupplyResult> {
    const started = performance.now();
    // A release by CID that is here already: answered at once — each deployment asks, and in a burst every
    // await of the checks below is a turn of a crowded event loop.
    const here = this.availableHere(release);
    if (here) return here;
    const signal = options.signal ?? new AbortController().signal;
    const { cid, name, bundle } = await this.bundleOf(release, signal, options.onEvent);
    const supplied = await this.supplying.run(cid, signal, (shared, emit) => this.make(cid, name, bundle, shared, emit), options.onEvent);
    return { ...supplied, seconds: (performance.now() - started) / 1000 };
  }

  /** Bundles a release into the cache without building it (a request carries its CID; hosts fetch it here). */
  async bundle(release: string, signal: AbortSignal): Promise<{ cid: string; name: string }> {
    const { cid, name } = await this.bundleOf(release, signal);
    this.announce([cid], []);
    return { cid, name };
  }

  private async bundleOf(release: string, signal: AbortSignal, onEvent?: (event: SupplyEvent) => void): Promise<{ cid: string; name: string; bundle: string }> {
    let cid: string | undefined;
    try {
      cid = parseBlobCid(release);
    } catch {
      // not a CID: a path
    }
    const { blobs } = this.init;
    if (cid) {
      if (!(await blobs.has(cid))) {
        if (!this.init.remote) throw new SupplyError(`release ${cid} is not in this node's cache, and no peer can be asked`);
        await this.init.remote.fetch(cid, undefined, signal, fetchEvents(onEvent, 'bundle', cid));
      }
      const name = this.init.store.getRelease(cid)?.name ?? this.init.nameOf?.(cid) ?? cid.slice(-8);
      return { cid, name, bundle: (await blobs.path(cid))! };
    }
    const tmp = join(this.init.dataDir, 'tmp');
    await mkdir(tmp, { recursive: true });
    const mirror = isUrl(release) ? await mkdtemp(join(tmp, 'mirror-')) : undefined;
    try {
      const bundle = await bundleRelease(mirror ? await mirrorRelease(release, mirror, signal) : release, tmp);
      const put = await blobs.put(bundle.file, { move: true });
      return { cid: put.cid, name: bundle.name, bundle: (await blobs.path(put.cid))! };
    } finally {
      if (mirror) await rm(mirror, { recursive: true, force: true });
    }
  }

  /** The release, given by CID, built or installed here with its software root in place; else undefined. */
  private availableHere(release: string): SupplyResult | undefined {
    let cid: string;
    try {
      cid = parseBlobCid(release);
    } catch {
      return undefined;
    }
    const known = this.init.store.getRelease(cid);
    if (known?.state !== 'available' || !known.path || !existsSync(known.path)) return undefined;
    return { cid, name: known.name, source: 'local', path: known.path, seconds: 0 };
  }

  private async make(cid: string, name: string, bundle: string, signal: AbortSignal, onEvent: (event: SupplyEvent) => void): Promise<SupplyResult> {
    const { store, log } = this.init;
    const now = this.init.now ?? Date.now;
    const root = this.softwareRoot(cid);
    const here = this.availableHere(cid);
    if (here) return here;
    store.upsertRelease({ cid, name, state: 'building', updatedAt: now() });
    const key = formatKey({ kind: 'release', id: cid, platform: this.init.platform });
    try {
      for (const entry of await this.artifacts.trusted(key, signal)) {
        try {
          await rm(root, { recursive: true, force: true });
          const peer = await this.artifacts.install(entry, root, root, signal, fetchEvents(onEvent, 'artifact', entry.cid));
          // Our own artifact (the software root was lost) counts as built here.
          const source = entry.builder === this.init.peerId ? 'built' : 'peer';
          store.upsertRelease({ cid, name, state: 'available', path: root, source, ...(peer ? { peer } : {}), updatedAt: now() });
          log(`release ${name} (${cid}) installed from ${entry.builder}'s artifact ${entry.cid}`);
          this.announce([cid, entry.cid], [key]);
          return { cid, name, source, ...(peer ? { peer } : {}), path: root, seconds: 0 };
        } catch (error) {
          if (signal.aborted) throw error;
          log.error(`artifact ${entry.cid} of ${entry.builder} for ${name} not usable: ${(error as Error).message}`);
        }
      }
      const artifact = await this.build(cid, key, bundle, root, signal, onEvent);
      store.upsertRelease({ cid, name, state: 'available', path: root, source: 'built', updatedAt: now() });
      log(`release ${name} (${cid}) built; artifact ${artifact}`);
      this.announce([cid, artifact], [key]);
      return { cid, name, source: 'built', path: root, seconds: 0 };
    } catch (error) {
      store.upsertRelease({ cid, name, state: 'error', error: (error as Error).message, updatedAt: now() });
      throw error;
    }
  }

  /** Builds the release under a padded prefix, publishes its artifact, and installs that; returns its CID. */
  private async build(cid: string, key: string, bundle: string, root: string, signal: AbortSignal, onEvent: (event: InstallEvent) => void): Promise<string> {
    const { dataDir } = this.init;
    const work = join(dataDir, 'build', cid);
    const prefix = paddedPrefix(work);
    await rm(work, { recursive: true, force: true });
    await mkdir(join(dataDir, 'software'), { recursive: true });
    const buildLog = createWriteStream(this.buildLog(cid));
    try {
      const profile = await unbundle(bundle, prefix);
      await install({
        configFile: profile, cwd: prefix, jobs: this.init.jobs ?? 1, signal, artifactCache: this.parts,
        onEvent: (event) => {
          buildLog.write(`${logLine(event)}\n`);
          onEvent(event);
        },
      });
      const entry = await this.artifacts.publish(key, prefix, prefix);
      await rm(root, { recursive: true, force: true });
      await this.artifacts.install(entry, root, root, signal);
      return entry.cid;
    } finally {
      buildLog.end();
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Tells adverts and the DHT, in the background: the release is usable whether or not they heard. */
  private announce(cids: string[], keys: string[]): void {
    this.init.onAvailable?.(cids[0]!);
    this.artifacts.announce(cids, keys);
  }
}

/** A download's progress as supply events: each provider's first report, then at most one per interval, and the last. */
function fetchEvents(onEvent: ((event: SupplyEvent) => void) | undefined, what: FetchEvent['what'], cid: string): ((progress: FetchProgress) => void) | undefined {
  if (!onEvent) return undefined;
  let sentAt = -Infinity;
  let from: string | undefined;
  return ({ bytes, size, peer }) => {
    const now = performance.now();
    if (bytes < size && peer === from && now - sentAt < FETCH_EVENT_INTERVAL_MS) return;
    sentAt = now;
    from = peer;
    onEvent({ type: 'fetch', what, cid, bytes, size, peer });
  };
}

function logLine(event: InstallEvent): string {
  switch (event.type) {
    case 'log': return `${event.part}: ${event.line}`;
    case 'done': return `${event.part}: done in ${event.seconds.toFixed(1)} s`;
    case 'failed': return `${event.part}: failed: ${event.error.message}`;
    default: return `${event.type} ${event.part}`;
  }
}
