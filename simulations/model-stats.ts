// Small statistics for reports: percentiles, histograms, and series thinned to what a plot can show.

/** The q-quantile (0…1) of ascending `sorted` values, nearest rank; 0 when there are none. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** Values in ascending order, as a typed array (sorting numbers, not strings). */
export function sortedOf(values: readonly number[]): Float64Array {
  return Float64Array.from(values).sort();
}

/**
 * A histogram of ascending `sorted` values in about `buckets` equal buckets from 0 to the 99.9th percentile
 * (the rare slowest are counted in the last bucket, so one outlier does not squash the plot): [lower bound, count].
 */
export function histogram(sorted: ArrayLike<number>, buckets: number): [number, number][] {
  if (sorted.length === 0) return [];
  const top = percentile(sorted, 0.999);
  const width = niceWidth(top / buckets);
  const counts = new Map<number, number>();
  const last = Math.floor(top / width);
  for (let i = 0; i < sorted.length; i++) {
    const bucket = Math.min(last, Math.floor(sorted[i]! / width));
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  }
  const points: [number, number][] = [];
  for (let bucket = 0; bucket <= last; bucket++) points.push([bucket * width, counts.get(bucket) ?? 0]);
  return points;
}

/** 1, 2 or 5 times a power of ten, at least `raw` (bucket widths people read at a glance). */
function niceWidth(raw: number): number {
  if (!(raw > 0)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const step of [1, 2, 5, 10]) if (step * power >= raw) return step * power;
  return 10 * power;
}

/** At most `max` points: every k-th, always keeping the last (a series' final value matters most). */
export function downsample(points: readonly [number, number][], max: number): [number, number][] {
  if (points.length <= max) return [...points];
  const every = Math.ceil(points.length / (max - 1));
  const kept = points.filter((_, i) => i % every === 0);
  const last = points[points.length - 1]!;
  if (kept[kept.length - 1] !== last) kept.push(last);
  return kept;
}
