// Series for the report's plots are kept short (at most a few hundred points each): a long run sampled every
// second would otherwise make an HTML page of megabytes that says no more.

export const MAX_POINTS = 500;

/** At most `max` points, evenly picked; the first and the last are always kept (where a curve starts and ends). */
export function downsample(points: readonly [number, number][], max = MAX_POINTS): [number, number][] {
  if (points.length <= max) return points.map(([x, y]) => [x, y]);
  const step = (points.length - 1) / (max - 1);
  return Array.from({ length: max }, (_, i) => {
    const [x, y] = points[Math.round(i * step)]!;
    return [x, y];
  });
}
