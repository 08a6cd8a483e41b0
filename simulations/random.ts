// Seeded pseudo-random numbers for simulations: the same seed gives the same run, so a model's metrics and a
// scenario's choice of victims can be reproduced and compared (design.md §9).

/** A generator of floats in [0, 1), as Math.random. */
export type Random = () => number;

/**
 * mulberry32: a 32-bit state, one multiply-xorshift round per number. Small and fast; its quality is ample for
 * drawing arrivals and victims (it is no cryptographic generator).
 */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A generator of its own, drawn from `random`: streams that do not shift when another one draws more. */
export function forkRandom(random: Random): Random {
  return seededRandom(Math.floor(random() * 4294967296));
}

/** An integer in [0, n). */
export function randomInt(random: Random, n: number): number {
  return Math.floor(random() * n);
}

/** Time to the next arrival of a Poisson process of `rate` per unit of time. */
export function exponential(random: Random, rate: number): number {
  return -Math.log(1 - random()) / rate;
}

/** Draws `count` distinct integers of [0, n) (all of them, shuffled, when count ≥ n). */
export function sampleDistinct(random: Random, n: number, count: number): number[] {
  if (count >= n) {
    const all = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = randomInt(random, i + 1);
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    return all;
  }
  const picked = new Set<number>();
  while (picked.size < count) picked.add(randomInt(random, n));
  return [...picked];
}

/**
 * Draws ranks 0…n-1 with probability ∝ 1 / (rank + 1)^exponent (Zipf): a few popular items and a long tail,
 * as requests for software releases are. Inverse of the cumulative weights by binary search: O(log n).
 */
export function zipf(random: Random, n: number, exponent: number): () => number {
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let rank = 0; rank < n; rank++) cumulative[rank] = total += 1 / Math.pow(rank + 1, exponent);
  return () => {
    const target = random() * total;
    let low = 0;
    let high = n - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (cumulative[middle]! > target) high = middle;
      else low = middle + 1;
    }
    return low;
  };
}
