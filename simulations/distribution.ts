// Summaries of what a simulation measured, in the shapes its metrics and plots take: percentiles, a histogram
// of bars, a running count over time, series thinned to what a plot can show. One module for the scenarios
// and the model, so that their figures mean the same.

/** Series for the report's plots stay short: a long run sampled every second would make a page of megabytes that says no more. */
export const MAX_POINTS = 500;

/** Nearest-rank percentile (p in 0–100) of `values`, in any order; NaN when there are none. */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function median(values: ArrayLike<number>): number {
  return percentile(values, 50);
}

/**
 * `values` counted in about `buckets` equal buckets from 0 to their maximum — or to `width` × buckets when
 * a width is given — as points [lower bound, count] of a `bars` plot. With `clampAt` (a percentile), the
 * rare values above it count in the last bucket, so that one outlier does not squash the plot.
 */
export function histogram(values: ArrayLike<number>, buckets = 10, width?: number, clampAt?: number): [number, number][] {
  if (values.length === 0) return [];
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) max = Math.max(max, values[i]!);
  const top = clampAt === undefined ? max : percentile(values, clampAt);
  const size = width ?? niceWidth(top / buckets);
  const last = Math.floor(top / size);
  const counts = new Map<number, number>();
  for (let i = 0; i < values.length; i++) {
    const bucket = Math.min(last, Math.floor(values[i]! / size));
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  }
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

/** At most `max` points, evenly picked; the first and the last are always kept (where a curve starts and ends). */
export function downsample(points: readonly [number, number][], max = MAX_POINTS): [number, number][] {
  if (points.length <= max) return points.map(([x, y]) => [x, y]);
  const step = (points.length - 1) / (max - 1);
  return Array.from({ length: max }, (_, i) => {
    const [x, y] = points[Math.round(i * step)]!;
    return [x, y];
  });
}

/** Rounded to 3 decimals: plots and metrics need no more. */
export function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
