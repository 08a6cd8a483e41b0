// A scenario (design.md §9): real nodes on loopback doing one thing — joining, supplying, placing — while
// it records what happened; then its declarative assertions judge the record. `slapmesh simulate NAME`
// runs one.
import type { SimulationOptions, SimulationResult } from './types.js';

export interface Scenario {
  /** What `slapmesh simulate` calls it: `join`, `cache`, `placement`, `churn`, `adversary`. */
  name: string;
  /** One line for `slapmesh simulate --help`. */
  description: string;
  /** Nodes when --nodes is not given. */
  defaultNodes: number;
  run(options: SimulationOptions): Promise<SimulationResult>;
}
