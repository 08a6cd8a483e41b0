// A scenario (design.md §9): real nodes on loopback doing one thing — joining, supplying, placing — while
// it records what happened; then its declarative assertions judge the record. `slapmesh simulate NAME`
// runs one.
import type { SimulationOptions, SimulationResult } from './types.js';

/**
 * The nodes of the scenarios advertise every minute rather than every 15 s. Every advert costs every node of
 * the mesh a delivery (gossip, two signature checks — measured ≈ 5 ms of CPU per advert taken per node), so
 * tens of nodes on one machine pay for all of them: 50 nodes at 15 s kept one process's core busy (in one
 * process) and a whole core of the two (as processes), and dials, lookups and lease renewals timed out; at
 * 60 s a quarter of that (20 idle node processes: 0.30 core, then 0.07). An advert still goes out at once
 * when a node's releases change, which is what the scenarios watch.
 */
export const SCENARIO_ADVERT_INTERVAL_MS = 60_000;

export interface Scenario {
  /** What `slapmesh simulate` calls it: `join`, `cache`, `placement`, `churn`, `adversary`. */
  name: string;
  /** One line for `slapmesh simulate --help`. */
  description: string;
  /** Nodes when --nodes is not given. */
  defaultNodes: number;
  run(options: SimulationOptions): Promise<SimulationResult>;
}
