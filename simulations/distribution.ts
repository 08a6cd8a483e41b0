// Summaries of what a scenario measured, in the shapes its metrics and plots take: percentiles, a histogram
// of bars, a running count over time.

/** Nearest-rank percentile (p in 0–100) of `values`; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/**
 * `values` counted in `buckets` equal buckets from 0 to their maximum (plus an empty one above it, so the
 * last bar has a right edge): points [lower bound, count], as a `bars` plot takes them.
 */
export function histogram(values: readonly number[], buckets = 10, width?: number): [number, number][] {
  if (values.length === 0) return [];
  const max = Math.max(...values);
  const size = width ?? niceWidth(max / buckets);
  const counts = new Map<number, number>();
  for (const value of values) {
    const bucket = Math.floor(value / size);
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  }
  const last = Math.floor(max / size);
  return Array.from({ length: last + 1 }, (_, i): [number, number] => [round(i * size), counts.get(i) ?? 0]);
}

/** A bucket width that reads well: 1, 2 or 5 times a power of ten, at least `raw`. */
export function niceWidth(raw: number): number {
  if (!(raw > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((step) => step * power).find((width) => width >= raw)!;
}

/** How many of the events at `times` have happened, from `start` at each event: points of a `step` plot. */
export function runningCount(times: readonly number[], start = 0): [number, number][] {
  const points: [number, number][] = [[0, start]];
  [...times].sort((a, b) => a - b).forEach((time, i) => points.push([round(time), start + i + 1]));
  return points;
}

/** Rounded to 3 decimals: plots and metrics need no more. */
export function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
