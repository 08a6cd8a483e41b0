// What every simulation — a scenario of real nodes or the model — produces (design.md §8, §9): the shape
// of `slapmesh simulate --json` and of report.json, and what the table and the HTML report are drawn from.

/** One declarative assertion, checked once the run is over. */
export interface AssertionResult {
  /** Stable, kebab-case: `no-reference-placed-twice`, `capacity-respected`, … */
  id: string;
  /** One sentence saying what must hold. */
  description: string;
  ok: boolean;
  /** What broke it, one line each (at most a few hundred kept). Empty when ok. */
  violations: string[];
}

/** A series of points; x and y in the plot's units. */
export interface Series {
  name: string;
  points: [x: number, y: number][];
}

/**
 * One plot of the HTML report: `line` joins the points (convergence, nodes alive over time), `step` holds each
 * value until the next point, `bars` draws one bar per point (a latency histogram: x is the bucket's lower
 * bound, y its count; cache hits per source).
 */
export interface Plot {
  id: string;
  title: string;
  kind: 'line' | 'step' | 'bars';
  x: { label: string; unit?: string };
  y: { label: string; unit?: string };
  series: Series[];
}

/** Numbers a scenario measured; names in camelCase with their unit (`acceptedP50Ms`, `cacheHitRatio`). */
export type Metrics = Record<string, number | string | boolean>;

export interface SimulationResult {
  /** `join`, `cache`, `placement`, `churn`, `adversary` or `model`. */
  scenario: string;
  nodes: number;
  /** Wall-clock seconds the run took. */
  seconds: number;
  /** True when every assertion holds. */
  ok: boolean;
  assertions: AssertionResult[];
  metrics: Metrics;
  plots: Plot[];
}

/** Options every simulation accepts (the CLI's flags). */
export interface SimulationOptions {
  nodes: number;
  /** Instance requests, for the scenarios that make them. */
  requests?: number;
  /** Seed of the pseudo-random choices (the model and the scenarios' choices of victims). */
  seed?: number;
  /** Progress lines for a person watching (stderr in the CLI); never parsed. */
  progress?: (line: string) => void;
  signal?: AbortSignal;
}
