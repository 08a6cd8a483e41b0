// The nodes of a scenario that kills none of them (design.md §9): real SlapmeshNodes on 127.0.0.1 in this
// process, each with its own data directory under one work folder, the lines they log kept for the scenario
// to read. On 2 cores one process is the cheapest way to run tens of nodes, and it gives the nodes' events;
// scenarios that kill nodes run each in its own process instead.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SlapmeshNode, type NodeOptions } from '../node/node.js';
import { SCENARIO_ADVERT_INTERVAL_MS } from './scenario.js';

/** One line a node logged, as node/log.ts writes it. */
export interface LogLine {
  /** performance.now() when it was written. */
  at: number;
  level: string;
  component: string;
  message: string;
}

const LINE = /^\S+ (\S+) ([^:]+): ([\s\S]*?)\n?$/;

/** The lines one node logged that the scenario keeps (all by default); `line` is dispatched for each. */
export class NodeLog extends EventTarget {
  readonly lines: LogLine[] = [];

  constructor(private readonly keep: (line: LogLine) => boolean) {
    super();
  }

  write(text: string): void {
    const match = LINE.exec(text);
    const line: LogLine = match
      ? { at: performance.now(), level: match[1]!, component: match[2]!, message: match[3]! }
      : { at: performance.now(), level: 'info', component: '?', message: text.trimEnd() };
    if (!this.keep(line)) return;
    this.lines.push(line);
    this.dispatchEvent(new Event('line'));
  }

  /** The kept lines whose message includes `text`. */
  matching(text: string): LogLine[] {
    return this.lines.filter((line) => line.message.includes(text));
  }
}

export interface InProcessNode {
  /** n0, n1, …: also its data directory's name. */
  readonly name: string;
  readonly node: SlapmeshNode;
  readonly log: NodeLog;
}

export interface StartOptions extends Partial<NodeOptions> {
  /** Which log lines to keep (default: all of them). */
  keep?: (line: LogLine) => boolean;
}

/** Nodes started in this process, under one work folder that stopAll() removes. */
export class InProcessNodes {
  readonly nodes: InProcessNode[] = [];

  private constructor(readonly work: string) {}

  static create(prefix: string): InProcessNodes {
    return new InProcessNodes(mkdtempSync(join(tmpdir(), `slapmesh-${prefix}-`)));
  }

  dataDirOf(name: string): string {
    return join(this.work, name);
  }

  /** Starts a node named `name` listening on 127.0.0.1 (its data directory may be prepared beforehand). */
  async start(name: string, options: StartOptions = {}): Promise<InProcessNode> {
    const { keep = () => true, ...extra } = options;
    const log = new NodeLog(keep);
    const node = new SlapmeshNode({
      dataDir: this.dataDirOf(name), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], trust: [], open: false, private: false,
      trustAnyBuilder: false, partitions: 1, verbose: false, advertIntervalMs: SCENARIO_ADVERT_INTERVAL_MS, ...extra,
      stderr: (line) => log.write(line),
    });
    await node.start();
    const started = { name, node, log };
    this.nodes.push(started);
    return started;
  }

  /** Stops every node (whatever fails) and removes the work folder. */
  async stopAll(): Promise<void> {
    await Promise.allSettled(this.nodes.splice(0).map(({ node }) => node.stop()));
    rmSync(this.work, { recursive: true, force: true });
  }
}

/**
 * Starts `count` nodes `batch` at a time, the next batch once each of the previous is `ready` (e.g. holds an
 * advert): tens of handshakes at once on a loaded machine let dials time out before they are served.
 */
export async function startInBatches(count: number, batch: number, start: (index: number) => Promise<InProcessNode>,
  ready: (node: InProcessNode) => Promise<void>): Promise<InProcessNode[]> {
  const started: InProcessNode[] = [];
  for (let first = 0; first < count; first += batch) {
    started.push(...await Promise.all(Array.from({ length: Math.min(batch, count - first) }, async (_, i) => {
      const node = await start(first + i);
      await ready(node);
      return node;
    })));
  }
  return started;
}

/** Resolves once `node` holds an advert of `peer` listing release `cid`; rejects when `signal` aborts. */
export async function seesRelease(node: SlapmeshNode, peer: string, cid: string, signal: AbortSignal): Promise<void> {
  while (!node.table.get(peer)?.advert.releases.some((release) => release.cid === cid)) await once(node.table, 'peer:updated', { signal });
}

/** `work`'s result, or a rejection with the signal's reason once it aborts (the work itself goes on until nodes stop). */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
