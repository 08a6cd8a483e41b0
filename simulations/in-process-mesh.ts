// The placement scenario's nodes in this process (design.md §9 asks for a process per node only where nodes
// are killed): 50 node processes on 2 cores spend the cores on 50 runtimes — start-up, garbage collection,
// idle gossip — and starve the hosts' supplies (a 50-node run of processes measured hosts that could not
// answer a fetch in 5 s). The same surface as mesh.ts's Mesh, for what the instance scenarios use of it;
// the nodes are driven through their control sockets all the same.
import { performance } from 'node:perf_hooks';
import type { CallOptions } from '../node/control.js';
import { callControl } from '../node/control.js';
import { InProcessNodes, startInBatches, type InProcessNode } from './in-process-nodes.js';
import type { NodeSpec } from './mesh.js';

/** Nodes started at once after the first. */
const BATCH = 10;

export class InProcessMeshNode {
  readonly startMs: number[] = [];
  constructor(readonly name: string, private readonly started: InProcessNode) {}

  get peerId(): string {
    return this.started.node.peerId;
  }

  /** Never killed: the scenarios that kill nodes run processes (mesh.ts). */
  readonly alive = true;

  call<T = unknown>(method: string, params: unknown = {}, options: CallOptions = {}): Promise<T> {
    return callControl(this.started.node.options.dataDir, method, params, options) as Promise<T>;
  }
}

export interface InProcessMeshOptions {
  nodes: number;
  /** Each node's settings, given the PeerIds of the nodes started before it (the first ones: requesters). */
  spec: (index: number, earlier: readonly string[]) => NodeSpec;
  progress?: (line: string) => void;
}

export class InProcessMesh {
  readonly nodes: InProcessMeshNode[] = [];
  private readonly started = InProcessNodes.create('sim');
  private readonly createdAt = performance.now();

  constructor(private readonly options: InProcessMeshOptions) {}

  now(): number {
    return performance.now() - this.createdAt;
  }

  aliveNodes(): InProcessMeshNode[] {
    return this.nodes;
  }

  /**
   * The first node, then the others in batches, bootstrapping from the first; then each trusts whom its spec
   * says (PeerIds are known only once the nodes run).
   */
  async start(): Promise<void> {
    const { nodes, spec, progress } = this.options;
    const startOne = async (index: number): Promise<InProcessNode> => {
      const begun = performance.now();
      const { partitions = 50, open = false, trustAnyBuilder = false } = spec(index, []);
      const first = this.started.nodes[0]?.node;
      const started = await this.started.start(`n${String(index).padStart(2, '0')}`, {
        partitions, open, trustAnyBuilder, keep: (line) => line.level === 'error',
        bootstrap: first ? [first.addresses()[0]!] : [],
      });
      const node = new InProcessMeshNode(started.name, started);
      node.startMs.push(performance.now() - begun);
      this.nodes[index] = node;
      return started;
    };
    await startOne(0);
    await startInBatches(nodes - 1, BATCH, (i) => startOne(i + 1), async () => undefined);
    const ids = this.nodes.map((node) => node.peerId);
    await Promise.all(this.nodes.map(async (node, index) => {
      for (const peer of spec(index, ids).trust ?? []) if (peer !== node.peerId) await node.call('trust.add', { peer });
    }));
    progress?.(`started ${nodes} nodes in this process`);
  }

  async stop(): Promise<void> {
    await this.started.stopAll();
  }
}
