/** Small statistics for the benchmark: quantiles by linear interpolation between order statistics (R-7, numpy's default). */
import { mulberry32, quantileSorted } from '../common/stats.js';

export function quantile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return quantileSorted(sorted, p);
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

export interface Summary {
  n: number;
  mean: number;
  p50: number;
  p95: number;
  min: number;
  max: number;
}

export function summarize(values: readonly number[]): Summary {
  return {
    n: values.length,
    mean: mean(values),
    p50: quantile(values, 0.5),
    p95: quantile(values, 0.95),
    min: values.length ? Math.min(...values) : Number.NaN,
    max: values.length ? Math.max(...values) : Number.NaN,
  };
}

/** A seeded PRNG (mulberry32): the same seed gives the same judge latencies on every run. */
export const seededRandom = mulberry32;
