/**
 * Rényi-DP accountant of the Poisson-subsampled Gaussian mechanism, the analysis behind DP-FedAvg rounds: each
 * participant joins a round independently with probability q (Poisson sampling), the sum of clipped updates gets
 * Gaussian noise of std z·C. A round whose selection was not Poisson (clamped to a min/max, a fixed or rotating
 * list) must be accounted with q = 1.
 *
 * - RDP of one step at order α: Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian
 *   Mechanism" (arXiv:1908.10530): the exact binomial sum for integer α (§3.2) and the two-series bound with erfc
 *   for fractional α (§3.3). Steps compose by adding RDP.
 * - Conversion to (ε, δ): Balle, Barthe, Gaboardi, Hsu & Sato 2020, "Hypothesis Testing Interpretations and Rényi
 *   Differential Privacy" (AISTATS, Theorem 21), as Opacus and Google's dp_accounting use:
 *     ε = min over α of  RDP(α) + log((α−1)/α) − (log δ + log α)/(α − 1).
 *   The older Mironov 2017 conversion ε = RDP(α) + log(1/δ)/(α − 1) is available for comparison.
 *
 * Exported API (stable; F2 codes against it):
 * ```ts
 * DEFAULT_ORDERS: number[]                                          // Opacus' orders plus 128, 256, 512
 * rdpSubsampledGaussian({ sampleRate, noiseMultiplier, steps, orders? }): number[]   // RDP per order
 * epsilonFromRdp(orders, rdp, delta, conversion? = 'balle2020'): { epsilon, order }
 * computeEpsilon({ noiseMultiplier, sampleRate, steps, delta, orders?, conversion? }): { epsilon, order }
 * composeEpsilon(rounds: { noiseMultiplier, sampleRate, steps? }[], delta, orders?): { epsilon, order }  // mixed rounds
 * noiseMultiplierForEpsilon({ targetEpsilon, sampleRate, steps, delta, orders?, tolerance? }): number
 * ```
 */
import logcdf from '@stdlib/stats-base-dists-normal-logcdf';

/** Opacus' DEFAULT_ALPHAS (1.1 … 10.9 by 0.1, then 12 … 63) plus 128, 256, 512 for very small ε. */
export const DEFAULT_ORDERS: readonly number[] = [
  ...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10),
  ...Array.from({ length: 52 }, (_, x) => 12 + x),
  128,
  256,
  512,
];

export type Conversion = 'balle2020' | 'mironov2017';

/** log(e^a + e^b) without overflow. */
function logAdd(a: number, b: number): number {
  const hi = Math.max(a, b);
  const lo = Math.min(a, b);
  if (hi === -Infinity) return hi;
  return hi + Math.log1p(Math.exp(lo - hi));
}

/** log(e^a − e^b) for a ≥ b. */
function logSub(a: number, b: number): number {
  if (b > a) throw new RangeError('logSub of a negative number');
  if (b === -Infinity) return a;
  if (a === b) return -Infinity;
  return a + Math.log(-Math.expm1(b - a));
}

/** log(erfc(x)) = log 2 + log Φ(−x√2), stable far into the tail. */
function logErfc(x: number): number {
  return Math.LN2 + logcdf(-x * Math.SQRT2, 0, 1);
}

/** log of the binomial coefficient C(n, k) for integers, via log-gamma-free summation (n ≤ a few thousand). */
function logBinomialInt(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log(n - k + i) - Math.log(i);
  return s;
}

/** log A_α for integer α (MTZ 2019 §3.2): a finite binomial sum. */
function logAInt(q: number, sigma: number, alpha: number): number {
  let logA = -Infinity;
  for (let i = 0; i <= alpha; i++) {
    const term =
      logBinomialInt(alpha, i) + i * Math.log(q) + (alpha - i) * Math.log1p(-q) + (i * i - i) / (2 * sigma * sigma);
    logA = logAdd(logA, term);
  }
  return logA;
}

/** log A_α for fractional α (MTZ 2019 §3.3): two alternating series, summed until their terms are negligible. */
function logAFrac(q: number, sigma: number, alpha: number): number {
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  // Generalised binomial coefficient C(α, i), tracked as sign and log|·|.
  let logCoef = 0;
  let sign = 1;
  for (let i = 0; ; i++) {
    if (i > 0) {
      const factor = (alpha - i + 1) / i;
      if (factor === 0) break;
      logCoef += Math.log(Math.abs(factor));
      if (factor < 0) sign = -sign;
    }
    const j = alpha - i;
    const logT0 = logCoef + i * Math.log(q) + j * Math.log1p(-q);
    const logT1 = logCoef + j * Math.log(q) + i * Math.log1p(-q);
    const logE0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma));
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma));
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    if (sign > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30) break;
    if (i > 100_000) throw new RangeError(`RDP series did not converge (q=${q}, σ=${sigma}, α=${alpha})`);
  }
  return logAdd(logA0, logA1);
}

/** RDP at order α of one step of the Poisson-subsampled Gaussian mechanism. */
function rdpOneStep(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (!Number.isFinite(alpha)) return Infinity;
  const logA = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
  return logA / (alpha - 1);
}

function checkMechanism(sampleRate: number, noiseMultiplier: number, steps: number): void {
  if (!(sampleRate >= 0 && sampleRate <= 1)) throw new RangeError(`sampleRate must be in [0, 1], got ${sampleRate}`);
  if (!(noiseMultiplier >= 0)) throw new RangeError(`noiseMultiplier must be >= 0, got ${noiseMultiplier}`);
  if (!(Number.isInteger(steps) && steps >= 0)) throw new RangeError(`steps must be an integer >= 0, got ${steps}`);
}

/** RDP of `steps` compositions, one value per order. */
export function rdpSubsampledGaussian({
  sampleRate,
  noiseMultiplier,
  steps,
  orders = DEFAULT_ORDERS,
}: {
  sampleRate: number;
  noiseMultiplier: number;
  steps: number;
  orders?: readonly number[];
}): number[] {
  checkMechanism(sampleRate, noiseMultiplier, steps);
  for (const a of orders) if (!(a > 1)) throw new RangeError(`RDP orders must be > 1, got ${a}`);
  return orders.map((a) => (steps === 0 ? 0 : rdpOneStep(sampleRate, noiseMultiplier, a) * steps));
}

/** The smallest ε over the orders, and the order that gives it. */
export function epsilonFromRdp(
  orders: readonly number[],
  rdp: readonly number[],
  delta: number,
  conversion: Conversion = 'balle2020',
): { epsilon: number; order: number } {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  if (orders.length !== rdp.length || orders.length === 0) throw new RangeError('orders and rdp must match');
  let best = { epsilon: Infinity, order: orders[0]! };
  orders.forEach((a, k) => {
    const r = rdp[k]!;
    if (r < 0) throw new RangeError(`RDP must be >= 0, got ${r}`);
    // RDP(α) ≥ KL for α > 1, and δ ≥ √(1 − e^−KL) bounds the total variation: then (0, δ)-DP already holds (the
    // same shortcut as dp_accounting's compute_epsilon). It makes q = 0 cost exactly nothing.
    const eps =
      delta * delta + Math.expm1(-r) > 0
        ? 0
        : conversion === 'balle2020'
          ? r + Math.log1p(-1 / a) - (Math.log(delta) + Math.log(a)) / (a - 1)
          : r + Math.log(1 / delta) / (a - 1);
    if (eps < best.epsilon) best = { epsilon: eps, order: a };
  });
  return { epsilon: Math.max(0, best.epsilon), order: best.order };
}

/** ε of `steps` rounds at sampling rate q and noise multiplier z, for δ. */
export function computeEpsilon({
  noiseMultiplier,
  sampleRate,
  steps,
  delta,
  orders = DEFAULT_ORDERS,
  conversion = 'balle2020',
}: {
  noiseMultiplier: number;
  sampleRate: number;
  steps: number;
  delta: number;
  orders?: readonly number[];
  conversion?: Conversion;
}): { epsilon: number; order: number } {
  const rdp = rdpSubsampledGaussian({ sampleRate, noiseMultiplier, steps, orders });
  return epsilonFromRdp(orders, rdp, delta, conversion);
}

/**
 * ε of a sequence of rounds that differ (another q after a clamped selection, another z): RDP adds per order. This is
 * what a campaign's budget spends: each entry one round (or `steps` identical rounds).
 */
export function composeEpsilon(
  rounds: ReadonlyArray<{ noiseMultiplier: number; sampleRate: number; steps?: number }>,
  delta: number,
  orders: readonly number[] = DEFAULT_ORDERS,
): { epsilon: number; order: number } {
  const total = new Array<number>(orders.length).fill(0);
  for (const r of rounds) {
    const rdp = rdpSubsampledGaussian({
      sampleRate: r.sampleRate,
      noiseMultiplier: r.noiseMultiplier,
      steps: r.steps ?? 1,
      orders,
    });
    rdp.forEach((v, k) => (total[k]! += v));
  }
  return epsilonFromRdp(orders, total, delta);
}

/**
 * The smallest noise multiplier (to within `tolerance`, relative) whose ε after `steps` rounds is at most
 * `targetEpsilon`. ε falls as z grows, so: double until under the target, then bisect. The returned z always meets
 * the target (it is the upper end of the final bracket).
 */
export function noiseMultiplierForEpsilon({
  targetEpsilon,
  sampleRate,
  steps,
  delta,
  orders = DEFAULT_ORDERS,
  tolerance = 1e-4,
}: {
  targetEpsilon: number;
  sampleRate: number;
  steps: number;
  delta: number;
  orders?: readonly number[];
  tolerance?: number;
}): number {
  if (!(targetEpsilon > 0)) throw new RangeError(`targetEpsilon must be > 0, got ${targetEpsilon}`);
  const eps = (z: number) => computeEpsilon({ noiseMultiplier: z, sampleRate, steps, delta, orders }).epsilon;
  let low = 0;
  let high = 1;
  while (eps(high) > targetEpsilon) {
    low = high;
    high *= 2;
    if (high > 1e6) throw new RangeError(`no noise multiplier up to 1e6 reaches ε=${targetEpsilon}`);
  }
  while (high - low > tolerance * high) {
    const mid = (low + high) / 2;
    if (eps(mid) > targetEpsilon) low = mid;
    else high = mid;
  }
  return high;
}
