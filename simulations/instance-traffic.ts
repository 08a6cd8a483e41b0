// Instance requests over a mesh of processes, for the placement and churn scenarios: the release supplied on
// one node, requests fired at a steady rate through the requesters' control sockets (as `slapmesh request`
// sends them), and what became of each — from the owners' records and every node's hosted list, polled.
import { fileURLToPath } from 'node:url';
import { ControlError } from '../node/control.js';
import type { InstanceJson } from '../node/instances.js';
import { NO_PEER_KNOWN } from '../node/owned.js';
import { downsample, histogram, niceWidth, percentile, round, runningCount } from './distribution.js';
import { referencesPlacedTwice, type HostedListing, type InstancesRecord, type RequestRecord } from './instance-assertions.js';
import type { Mesh, MeshNode } from './mesh.js';

/** What the instance scenarios use of a node: its name, its PeerId, its control socket. */
export type TrafficNode = Pick<MeshNode, 'name' | 'peerId' | 'call' | 'alive'>;
/** What they use of a mesh — of node processes (mesh.ts) or of nodes in this process (in-process-mesh.ts). */
export interface TrafficMesh<N extends TrafficNode = TrafficNode> extends Pick<Mesh, 'now' | 'start'> {
  readonly nodes: readonly N[];
  aliveNodes(): N[];
}
import { pollUntil, settled, sleep } from './polling.js';
import type { Metrics, Plot } from './types.js';

/** examples/hello: a small C web server built with configure and make, and its instance profile. */
export const HELLO_PROFILE = fileURLToPath(new URL('../../examples/hello/software.cfg', import.meta.url));

/** A request's `request` call may wait this long for the placement (several peers tried in turn). */
const REQUEST_CALL_TIMEOUT_MS = 120_000;
/** Owners are asked for their records this often (the resolution of ready times); hosts less often. */
const OWNER_POLL_MS = 500;
const HOST_POLL_MS = 2_000;
/** A build of hello takes seconds; a loaded machine may take minutes. */
const SUPPLY_IDLE_TIMEOUT_MS = 10 * 60_000;

export interface TrafficOptions {
  signal?: AbortSignal;
  progress?: (line: string) => void;
}

/** Waits for the requesters to hold every advert before requesting. */
export const INFORMED_TIMEOUT_MS = 120_000;

/** The start of every instance scenario: the mesh up, its first node builds hello, the requesters told of it. */
export async function startWithHello<N extends TrafficNode>(mesh: TrafficMesh<N>, requesterCount: number, progress: (line: string) => void, signal?: AbortSignal): Promise<{
  startedS: number; supplied: { cid: string; seconds: number }; requesters: N[]; informed: boolean;
}> {
  progress(`starting the nodes`);
  await mesh.start();
  const startedS = mesh.now() / 1000;
  const builder = mesh.nodes[0]!;
  progress(`${builder.name} supplies examples/hello (builds it)`);
  const supplied = await supplyHello(builder);
  const requesters = mesh.nodes.slice(0, requesterCount);
  const informed = await requestersInformed(mesh, requesters, builder, supplied.cid, INFORMED_TIMEOUT_MS, signal);
  progress(informed ? 'the requesters hold every advert' : 'the requesters do not hold every advert yet: requesting anyway');
  return { startedS, supplied, requesters, informed };
}

/** Supplies the hello release on `node` (it builds it); its CID and how long it took. */
export async function supplyHello(node: TrafficNode): Promise<{ cid: string; seconds: number }> {
  const started = Date.now();
  const result = await node.call<{ cid: string }>('supply', { release: HELLO_PROFILE }, { idleTimeoutMs: SUPPLY_IDLE_TIMEOUT_MS });
  return { cid: result.cid, seconds: (Date.now() - started) / 1000 };
}

/**
 * Waits until each requester holds the advert of every other node, and the holder's lists `release`: placement
 * then ranks the whole mesh. False when that did not happen in time (the run goes on with what they know).
 */
export function requestersInformed(mesh: TrafficMesh, requesters: readonly TrafficNode[], holder: TrafficNode, release: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  return pollUntil(async () => {
    const views = await Promise.all(requesters.map((node) => settled(node.call<{ peerId: string; releases: { cid: string }[] }[]>('peers'))));
    return views.every((peers, i) => {
      if (!peers) return false;
      const known = new Set(peers.map((peer) => peer.peerId));
      const others = mesh.nodes.filter((node) => node !== requesters[i]);
      const holderListsIt = requesters[i] === holder || peers.some((peer) => peer.peerId === holder.peerId && peer.releases.some((r) => r.cid === release));
      return holderListsIt && others.every((node) => known.has(node.peerId));
    });
  }, { timeoutMs, intervalMs: 1_000, ...(signal ? { signal } : {}) });
}

export class InstanceTraffic {
  readonly requests: RequestRecord[] = [];
  private readonly byReference = new Map<string, RequestRecord>();
  private readonly peaks = new Map<string, { count: number; atMs: number }>();
  /** Instances listed as hosted, over all nodes, at each host poll. */
  private readonly hostedOverTime: [number, number][] = [];
  /** The most references listed by two nodes at once in one poll (while the run went on). */
  private duplicatesSeenMax = 0;
  private watching?: AbortController;
  private loops: Promise<void>[] = [];

  constructor(private readonly mesh: TrafficMesh, private readonly requesters: readonly TrafficNode[], private readonly release: string, private readonly options: TrafficOptions = {}) {}

  /** Fires `count` requests, one every 1/rate s whatever became of the previous ones, round-robin over the requesters; resolves once every call answered. */
  async fire(count: number, ratePerSecond: number): Promise<void> {
    const calls: Promise<void>[] = [];
    const start = this.mesh.now();
    for (let i = 0; i < count; i++) {
      const due = start + (i * 1000) / ratePerSecond;
      const wait = due - this.mesh.now();
      if (wait > 0) await sleep(wait, this.options.signal);
      calls.push(this.requestOne(i));
      if ((i + 1) % 20 === 0 || i + 1 === count) this.options.progress?.(`${i + 1}/${count} requests sent; ${this.requests.filter((r) => r.readyMs !== undefined).length} instances ready`);
    }
    await Promise.all(calls);
  }

  private async requestOne(i: number): Promise<void> {
    const requester = this.requesters[i % this.requesters.length]!;
    const record: RequestRecord = { reference: `sim-${i}`, requester: requester.name, owner: requester.peerId, firedMs: this.mesh.now() };
    this.requests.push(record);
    this.byReference.set(record.reference, record);
    try {
      const { instance } = await requester.call<{ instance: InstanceJson }>('request', {
        reference: record.reference, release: this.release, type: 'default', parameters: { name: `sim${i}` }, state: 'started',
      }, { idleTimeoutMs: REQUEST_CALL_TIMEOUT_MS });
      record.acceptedMs = this.mesh.now();
      this.takeOwned(record, instance);
    } catch (error) {
      // The node's own answer (no peer accepted it, …) is a refusal with its reason; anything else is ours to report.
      if (error instanceof ControlError) record.refused = error.message;
      else record.error = (error as Error).message;
    }
  }

  private takeOwned(record: RequestRecord, instance: InstanceJson): void {
    if (instance.host) record.host = instance.host;
    else delete record.host;
    record.epoch = instance.epoch;
    record.status = instance.status;
    if (instance.message) record.message = instance.message;
    else delete record.message;
    if (instance.status === 'ready' && record.readyMs === undefined) record.readyMs = this.mesh.now();
  }

  /** The owners' records of every request made. */
  async pollOwners(): Promise<void> {
    await Promise.all(this.requesters.filter((node) => node.alive).map(async (node) => {
      const owned = await settled(node.call<InstanceJson[]>('instance.list', { hosted: false }));
      for (const instance of owned ?? []) {
        const record = this.byReference.get(instance.reference);
        if (record?.owner === node.peerId && record.acceptedMs !== undefined) this.takeOwned(record, instance);
      }
    }));
  }

  /** Every running node's hosted list; counts peaks, duplicates and the total over time. */
  async pollHosts(): Promise<HostedListing[]> {
    const listings = (await Promise.all(this.mesh.aliveNodes().map(async (node): Promise<HostedListing | undefined> => {
      const hosted = await settled(node.call<InstanceJson[]>('instance.list', { hosted: true }));
      if (!hosted) return undefined;
      return { node: node.name, peerId: node.peerId, instances: hosted.map(({ owner, reference, status, epoch }) => ({ owner, reference, status, epoch })) };
    }))).filter((listing): listing is HostedListing => listing !== undefined);
    const now = this.mesh.now();
    let total = 0;
    const seen = new Map<string, number>();
    for (const listing of listings) {
      total += listing.instances.length;
      const peak = this.peaks.get(listing.node);
      if (!peak || listing.instances.length > peak.count) this.peaks.set(listing.node, { count: listing.instances.length, atMs: now });
      for (const entry of listing.instances) seen.set(`${entry.owner}/${entry.reference}`, (seen.get(`${entry.owner}/${entry.reference}`) ?? 0) + 1);
    }
    this.duplicatesSeenMax = Math.max(this.duplicatesSeenMax, [...seen.values()].filter((n) => n > 1).length);
    this.hostedOverTime.push([now, total]);
    return listings;
  }

  /** Polls owners and hosts in the background until stopWatching(). */
  startWatching(): void {
    const watching = (this.watching = new AbortController());
    const loop = async (poll: () => Promise<unknown>, intervalMs: number) => {
      while (!watching.signal.aborted) {
        await poll();
        await sleep(intervalMs, watching.signal).catch(() => undefined);
      }
    };
    this.loops = [loop(() => this.pollOwners(), OWNER_POLL_MS), loop(() => this.pollHosts(), HOST_POLL_MS)];
  }

  async stopWatching(): Promise<void> {
    this.watching?.abort();
    await Promise.all(this.loops);
    this.loops = [];
  }

  /**
   * Waits until every request is answered and its instance settled (ready, failed or in error), no reference is
   * live anywhere but on its owner's host, and `more(listings)` holds — or until `timeoutMs`. Resolves with
   * whether it settled and the last hosted lists.
   */
  async settle(timeoutMs: number, more: (listings: HostedListing[]) => boolean = () => true): Promise<{ settled: boolean; listings: HostedListing[] }> {
    let listings: HostedListing[] = [];
    const done = await pollUntil(async () => {
      await this.pollOwners();
      listings = await this.pollHosts();
      const answered = this.requests.every((r) => r.refused !== undefined || r.error !== undefined
        || (r.acceptedMs !== undefined && ['ready', 'failed', 'error'].includes(r.status ?? '')));
      const single = referencesPlacedTwice(this.record(listings, 0)).length === 0;
      return answered && single && more(listings);
    }, { timeoutMs, intervalMs: 1_000, ...(this.options.signal ? { signal: this.options.signal } : {}) });
    return { settled: done, listings };
  }

  /** What the assertions judge. */
  record(finalHosted: HostedListing[], partitions: number, kills: InstancesRecord['kills'] = []): InstancesRecord {
    return {
      partitions, requests: this.requests, finalHosted, kills,
      peaks: [...this.peaks].map(([node, peak]) => ({ node, ...peak })),
    };
  }

  metrics(): Metrics {
    const accepted = this.requests.filter((r) => r.acceptedMs !== undefined);
    const acceptedMs = accepted.map((r) => r.acceptedMs! - r.firedMs);
    const readyMs = this.requests.filter((r) => r.readyMs !== undefined).map((r) => r.readyMs! - r.firedMs);
    const ms = (value: number) => (Number.isFinite(value) ? Math.round(value) : -1);
    return {
      requests: this.requests.length,
      accepted: accepted.length,
      refused: this.requests.filter((r) => r.refused !== undefined).length,
      ready: readyMs.length,
      failed: this.requests.filter((r) => r.status === 'failed' || r.status === 'error').length,
      acceptedP50Ms: ms(percentile(acceptedMs, 50)),
      acceptedP99Ms: ms(percentile(acceptedMs, 99)),
      readyP50Ms: ms(percentile(readyMs, 50)),
      readyP99Ms: ms(percentile(readyMs, 99)),
      readyMaxMs: ms(Math.max(-1, ...readyMs)),
      hostedPeak: Math.max(0, ...[...this.peaks.values()].map((p) => p.count)),
      // What went wrong first, in words: the start of an explanation when `failed` or `refused` is not 0.
      ...firstMessage('firstFailure', this.requests.find((r) => r.status === 'failed' || r.status === 'error')?.message),
      ...firstMessage('firstRefusal', this.requests.find((r) => r.refused !== undefined)?.refused),
      ...refusalCauses(this.requests.flatMap((r) => (r.refused !== undefined ? [r.refused] : []))),
      duplicatesSeenMax: this.duplicatesSeenMax,
    };
  }

  /** Latency histogram (accepted and ready, in seconds) and instances over time. */
  plots(): Plot[] {
    const seconds = (values: number[]) => values.map((v) => v / 1000);
    const accepted = seconds(this.requests.filter((r) => r.acceptedMs !== undefined).map((r) => r.acceptedMs! - r.firedMs));
    const ready = seconds(this.requests.filter((r) => r.readyMs !== undefined).map((r) => r.readyMs! - r.firedMs));
    const width = niceWidth(Math.max(0, ...accepted, ...ready) / 20);
    return [
      {
        id: 'latency', title: 'Request latency: from the request to placed (accepted) and to ready', kind: 'bars',
        x: { label: 'latency', unit: 's' }, y: { label: 'requests' },
        series: [
          { name: 'accepted', points: downsample(histogram(accepted, 20, width)) },
          { name: 'ready', points: downsample(histogram(ready, 20, width)) },
        ],
      },
      {
        id: 'instances', title: 'Instances over time', kind: 'step',
        x: { label: 'time', unit: 's' }, y: { label: 'instances' },
        series: [
          { name: 'accepted', points: downsample(runningCount(this.requests.flatMap((r) => (r.acceptedMs !== undefined ? [r.acceptedMs / 1000] : [])))) },
          { name: 'ready', points: downsample(runningCount(this.requests.flatMap((r) => (r.readyMs !== undefined ? [r.readyMs / 1000] : [])))) },
          { name: 'hosted (polled)', points: downsample(this.hostedOverTime.map(([ms, count]) => [round(ms / 1000), count])) },
        ],
      },
    ];
  }
}

/**
 * Why the peers tried for the refused requests said no, counted over every try: full (no free partition), no
 * answer in time (starting, or swamped), down (the connection refused), or no peer left to try at all.
 */
function refusalCauses(refusals: readonly string[]): Metrics {
  if (refusals.length === 0) return {};
  const counts = { refusedTriesFull: 0, refusedTriesUnanswered: 0, refusedTriesDown: 0, refusedTriesOther: 0, refusedNoPeerLeft: 0 };
  for (const refusal of refusals) {
    if (refusal.includes(NO_PEER_KNOWN)) counts.refusedNoPeerLeft++;
    // "no peer accepted REF: PEER: reason; PEER: reason; …"
    for (const reason of refusal.split('; ')) {
      if (/no free partition/.test(reason)) counts.refusedTriesFull++;
      else if (/no answer|timeout|timed out/i.test(reason)) counts.refusedTriesUnanswered++;
      else if (/ECONNREFUSED|cannot be reached/.test(reason)) counts.refusedTriesDown++;
      else if (!reason.includes(NO_PEER_KNOWN)) counts.refusedTriesOther++;
    }
  }
  return counts;
}

/** A metric holding the start of a message, when there is one. */
function firstMessage(name: string, message: string | undefined): Metrics {
  return message === undefined ? {} : { [name]: message.length > 300 ? `${message.slice(0, 300)}…` : message };
}
