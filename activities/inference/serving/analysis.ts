/**
 * The canary analysis: statistics and the decision rule. Pure functions; the analyseRollout activity feeds them
 * counts and latencies read from PostgreSQL (model_predictions), the canaryRollout workflow acts on the decision.
 *
 * The rules (also in the README):
 *
 * 1. Errors and labelled accuracy are watched continuously with a mixture sequential probability ratio test on which
 *    arm each bad event (an error; a wrong answer on a labelled request) came from. Given a bad event during a step
 *    in which the canary served a share w of the requests, under H0 (the canary is no worse) it came from the canary
 *    with probability w; under H1(θ) (the canary's rate is θ times the baseline's) with probability
 *    q = wθ / (wθ + 1 − w). The likelihood ratio Λ = mean over θ ∈ THETAS of Π q/w (canary events) · (1−q)/(1−w)
 *    (baseline events) is a mixture of non-negative martingales under H0, so by Ville's inequality
 *    P(Λ ever reaches 1/α) ≤ α: it may be checked after every request, at any count, across steps whose shares
 *    differ. Baseline failures count for the canary (a shared outage leaves Λ near 1), and no normal approximation
 *    is used, so it holds with three events as well as three thousand.
 *    Λ ≥ 1/α (default α = 0.05, Λ ≥ 20): roll back at once. Λ ≥ PAUSE_LR (default 5) at a step boundary: pause for a
 *    person.
 * 2. Latency is decided at step boundaries only (each step has a minimum sample count and duration), on the quantile
 *    we gate on: a percentile bootstrap interval (seeded, B resamples) for p95(canary) / p95(baseline). The lower
 *    bound above maxP95Ratio (default 1.25): roll back. The point estimate above it but the lower bound not: pause
 *    for a person. Fewer than minLatencySamples on either arm: no latency verdict (the step waits for more samples).
 * 3. Otherwise a step that has its minimum samples and duration continues to the next; one that does not holds.
 */
import { mulberry32, quantileSorted } from '../../../common/stats.js';

// The bootstrap's seeded PRNG and its quantile, exported from here as before (common/stats.ts has them).
export { mulberry32, quantileSorted };

export type Decision = 'hold' | 'continue' | 'pause' | 'rollback';

const lr = (x: number): string => (x >= 1e4 ? x.toExponential(1) : x.toFixed(1));

/** Relative risks the mixture averages over (uniform weights): small ones catch mild regressions, large ones fast. */
export const THETAS = [1.5, 2, 4, 8, 16, 64, 256, 1024] as const;

export interface ArmEvents {
  /** Bad events (errors, or wrong labelled answers) on each arm during one step. */
  canaryEvents: number;
  baselineEvents: number;
  /** The canary's share of the requests (or of the labelled requests) during that step, in (0, 1). */
  canaryShare: number;
}

/** The mixture likelihood ratio Λ over the steps so far (1 when there is no evidence either way). */
export function mixtureLikelihoodRatio(steps: readonly ArmEvents[], thetas: readonly number[] = THETAS): number {
  let sum = 0;
  for (const theta of thetas) {
    let logLr = 0;
    for (const s of steps) {
      const w = s.canaryShare;
      if (!(w > 0 && w < 1)) continue; // a step where one arm served everything says nothing about the other
      const q = (w * theta) / (w * theta + 1 - w);
      logLr += s.canaryEvents * Math.log(q / w) + s.baselineEvents * Math.log((1 - q) / (1 - w));
    }
    sum += Math.exp(logLr);
  }
  return sum / thetas.length;
}

function resampleQuantile(values: Float64Array, q: number, rand: () => number, scratch: Float64Array): number {
  for (let i = 0; i < values.length; i++) scratch[i] = values[Math.floor(rand() * values.length)]!;
  scratch.sort();
  return quantileSorted(scratch, q);
}

export interface RatioInterval {
  ratio: number;
  lower: number;
  upper: number;
}

/** Percentile bootstrap interval for quantile(canary) / quantile(baseline). */
export function bootstrapQuantileRatio(
  canary: readonly number[],
  baseline: readonly number[],
  { quantile = 0.95, iterations = 1000, confidence = 0.95, seed = 1 } = {},
): RatioInterval {
  const c = Float64Array.from(canary).sort();
  const b = Float64Array.from(baseline).sort();
  const ratio = quantileSorted(c, quantile) / quantileSorted(b, quantile);
  const rand = mulberry32(seed);
  const cs = new Float64Array(c.length);
  const bs = new Float64Array(b.length);
  const ratios = new Float64Array(iterations);
  for (let i = 0; i < iterations; i++) {
    ratios[i] = resampleQuantile(c, quantile, rand, cs) / resampleQuantile(b, quantile, rand, bs);
  }
  ratios.sort();
  const tail = (1 - confidence) / 2;
  return { ratio, lower: quantileSorted(ratios, tail), upper: quantileSorted(ratios, 1 - tail) };
}

export interface AnalysisThresholds {
  /** Roll back when Λ (errors or accuracy) reaches 1/alpha. */
  alpha: number;
  /** Pause for a person at a step boundary when Λ reaches this (weaker evidence). */
  pauseLr: number;
  /** Roll back when the bootstrap lower bound of p95(canary)/p95(baseline) exceeds this. */
  maxP95Ratio: number;
  /** Fewest latencies per arm for a latency verdict. */
  minLatencySamples: number;
  bootstrapIterations: number;
}

export const DEFAULT_THRESHOLDS: AnalysisThresholds = {
  alpha: 0.05,
  pauseLr: 5,
  maxP95Ratio: 1.25,
  minLatencySamples: 30,
  bootstrapIterations: 1000,
};

export interface AnalysisInput {
  errors: ArmEvents[];
  /** Wrong answers among labelled requests (empty when no labels came back). */
  wrong: ArmEvents[];
  /** Latencies (ms) of this step's successful requests, read only at a step boundary. */
  latency?: { canary: number[]; baseline: number[] };
  /** The step has its minimum sample count and duration. */
  stepComplete: boolean;
}

export interface AnalysisResult {
  decision: Decision;
  reasons: string[];
  errorLr: number;
  accuracyLr: number;
  p95?: RatioInterval;
}

/** The decision rule stated in the header. */
export function decide(input: AnalysisInput, t: AnalysisThresholds = DEFAULT_THRESHOLDS): AnalysisResult {
  const errorLr = mixtureLikelihoodRatio(input.errors);
  const accuracyLr = mixtureLikelihoodRatio(input.wrong);
  const result: AnalysisResult = { decision: 'hold', reasons: [], errorLr, accuracyLr };
  const rollback: string[] = [];
  const pause: string[] = [];
  if (errorLr >= 1 / t.alpha) rollback.push(`errors: mixture SPRT Λ=${lr(errorLr)} ≥ ${1 / t.alpha}`);
  if (accuracyLr >= 1 / t.alpha) {
    rollback.push(`labelled accuracy: mixture SPRT Λ=${lr(accuracyLr)} ≥ ${1 / t.alpha}`);
  }
  if (rollback.length === 0 && input.stepComplete) {
    if (errorLr >= t.pauseLr) pause.push(`errors: Λ=${lr(errorLr)} ≥ ${t.pauseLr} (inconclusive)`);
    if (accuracyLr >= t.pauseLr) pause.push(`labelled accuracy: Λ=${lr(accuracyLr)} ≥ ${t.pauseLr}`);
    const lat = input.latency;
    if (lat && lat.canary.length >= t.minLatencySamples && lat.baseline.length >= t.minLatencySamples) {
      const p95 = bootstrapQuantileRatio(lat.canary, lat.baseline, { iterations: t.bootstrapIterations });
      result.p95 = p95;
      const text = `p95 ratio ${p95.ratio.toFixed(2)} (95% CI ${p95.lower.toFixed(2)}–${p95.upper.toFixed(2)})`;
      if (p95.lower > t.maxP95Ratio) rollback.push(`latency: ${text} above ${t.maxP95Ratio}`);
      else if (p95.ratio > t.maxP95Ratio) pause.push(`latency: ${text} straddles ${t.maxP95Ratio}`);
    } else if (lat) {
      // Not enough latencies for a verdict: the step holds until it has them.
      result.reasons.push(`latency: fewer than ${t.minLatencySamples} samples per arm`);
      return result;
    }
  }
  if (rollback.length > 0) return { ...result, decision: 'rollback', reasons: rollback };
  if (pause.length > 0) return { ...result, decision: 'pause', reasons: pause };
  if (input.stepComplete) return { ...result, decision: 'continue', reasons: ['step complete, no regression found'] };
  return result;
}
