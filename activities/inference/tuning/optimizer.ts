/**
 * The tuner's optimisers, pure and stateless: given the search space and every observation so far, `suggest` returns
 * the next point to try. The same space, history and seed give the same suggestion (a tuning run replays, and tests
 * are reproducible); the step's randomness comes from the seed and the number of observations.
 *
 * - `bayesian`: a few seeded random points first; then a Gaussian process (gp.ts, Matérn 5/2, fitted by marginal
 *   likelihood) on the observations, and the candidate of highest log expected improvement (acquisition.ts). In a
 *   discrete space of at most `exhaustiveLimit` points every unevaluated point is scored; otherwise random candidates,
 *   neighbours of the best observations and a short local refinement of the most promising ones.
 * - `random`: uniform random points (without repetition in a discrete space): the baseline.
 *
 * Minimises. A failed observation (value null: a timeout, a guardrail rejection) counts as the worst value seen so far,
 * so the surrogate learns to avoid its neighbourhood, and is never the incumbent.
 */
import type { Point, SearchSpace } from '../../../workflows/tuning/space.js';
import { logExpectedImprovement } from './acquisition.js';
import { cardinality, createEncoding, encode, enumerate, perturb, pointKey, samplePoint } from './encoding.js';
import { DEFAULT_FIT, type FitOptions, GaussianProcess, type GpHyper } from './gp.js';
import { createRng, deriveSeed, type Rng } from './rng.js';

export type Strategy = 'bayesian' | 'random';

export interface Observation {
  point: Point;
  /** The objective (lower is better); null for a failed trial. */
  value: number | null;
}

export interface OptimizerOptions {
  seed: number;
  /** Random points before the surrogate is used (at least 2). */
  initialPoints?: number;
  /** Random candidates scored per step in a space too large to enumerate. */
  candidates?: number;
  /** A discrete space with at most this many points is scored exhaustively. */
  exhaustiveLimit?: number;
  fit?: FitOptions;
  /** The previous step's hyper-parameters (the suggestion's `hyper`), to warm-start the fit. */
  warm?: GpHyper;
}

export interface Suggestion {
  /** Undefined when a discrete space has been evaluated completely. */
  point: Point | undefined;
  reason: 'initial' | 'acquisition' | 'random' | 'exhausted';
  /** log EI of the chosen point (bayesian steps after the initial ones). */
  logEi?: number;
  /** The surrogate's fitted hyper-parameters, to pass back as `warm`. */
  hyper?: GpHyper;
}

const DEFAULTS = { initialPoints: 5, candidates: 1500, exhaustiveLimit: 5000 };

export function suggest(
  space: SearchSpace,
  history: readonly Observation[],
  strategy: Strategy,
  opts: OptimizerOptions,
): Suggestion {
  const rng = createRng(deriveSeed(opts.seed, history.length));
  const size = cardinality(space);
  // A real-valued space practically never repeats a point: no need to remember which were seen.
  const seen = new Set(size === Infinity ? [] : history.map((o) => pointKey(space, o.point)));
  if (seen.size >= size) return { point: undefined, reason: 'exhausted' };
  const initial = Math.max(2, opts.initialPoints ?? DEFAULTS.initialPoints);
  const finite = history.filter((o) => o.value !== null);
  if (strategy === 'random' || history.length < initial || finite.length < 2) {
    return { point: freshRandom(space, seen, size, rng), reason: strategy === 'random' ? 'random' : 'initial' };
  }
  return acquire(space, history, seen, size, rng, opts);
}

/** A random point not yet evaluated (for a discrete space; a real-valued one almost never repeats). */
function freshRandom(space: SearchSpace, seen: Set<string>, size: number, rng: Rng): Point {
  if (size <= DEFAULTS.exhaustiveLimit && seen.size > size / 2) {
    const left = enumerate(space).filter((p) => !seen.has(pointKey(space, p)));
    return left[rng.int(left.length)]!;
  }
  for (;;) {
    const p = samplePoint(space, rng);
    if (!seen.has(pointKey(space, p))) return p;
  }
}

function acquire(
  space: SearchSpace,
  history: readonly Observation[],
  seen: Set<string>,
  size: number,
  rng: Rng,
  opts: OptimizerOptions,
): Suggestion {
  const enc = createEncoding(space);
  const worst = Math.max(...history.flatMap((o) => (o.value === null ? [] : [o.value])));
  const y = history.map((o) => o.value ?? worst);
  const gp = GaussianProcess.fit(
    enc,
    history.map((o) => encode(enc, o.point)),
    y,
    rng,
    { ...(opts.fit ?? DEFAULT_FIT), warm: opts.warm },
  );
  const best = Math.min(...history.flatMap((o) => (o.value === null ? [] : [o.value])));
  const score = (points: Point[]): number[] => {
    if (points.length === 0) return [];
    const { mean, std } = gp.predict(points.map((p) => encode(enc, p)));
    return mean.map((m, i) => logExpectedImprovement(m, std[i]!, best));
  };
  const fresh = (points: Point[]) => (seen.size === 0 ? points : points.filter((p) => !seen.has(pointKey(space, p))));

  let pool: Point[];
  if (size <= (opts.exhaustiveLimit ?? DEFAULTS.exhaustiveLimit)) {
    pool = fresh(enumerate(space));
  } else {
    const n = opts.candidates ?? DEFAULTS.candidates;
    pool = Array.from({ length: n }, () => samplePoint(space, rng));
    const ranked = history.filter((o) => o.value !== null).sort((a, b) => a.value! - b.value!);
    for (const o of ranked.slice(0, 5))
      for (let k = 0; k < 20; k++) pool.push(perturb(space, o.point, k < 10 ? 0.05 : 0.15, rng));
    pool = fresh(pool);
  }
  let scores = score(pool);
  let chosen = argmax(scores);
  if (size > (opts.exhaustiveLimit ?? DEFAULTS.exhaustiveLimit)) {
    // Local refinement: shrinking neighbourhoods around the three most promising candidates.
    const top = scores
      .map((s, i) => [s, i] as const)
      .sort((a, b) => b[0] - a[0])
      .slice(0, 3)
      .map(([, i]) => pool[i]!);
    for (const scale of [0.05, 0.015, 0.005]) {
      const local = fresh(top.flatMap((p) => Array.from({ length: 15 }, () => perturb(space, p, scale, rng))));
      pool = pool.concat(local);
      scores = scores.concat(score(local));
      chosen = argmax(scores);
      top[0] = pool[chosen]!;
    }
  }
  return { point: pool[chosen]!, reason: 'acquisition', logEi: scores[chosen], hyper: gp.hyper };
}

function argmax(values: number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** The best finite observation (the incumbent). */
export function incumbent(
  history: readonly Observation[],
): (Observation & { value: number; index: number }) | undefined {
  let best: (Observation & { value: number; index: number }) | undefined;
  history.forEach((o, index) => {
    if (o.value !== null && (!best || o.value < best.value)) best = { ...o, value: o.value, index };
  });
  return best;
}

/**
 * Runs an optimiser against a function until it reaches `target` or spends `budget` evaluations: the number of
 * evaluations used (budget + 1 when it never got there), and the history. For tests and the benchmark.
 */
export function evaluationsToReach(
  space: SearchSpace,
  f: (p: Point) => number | null,
  target: number,
  strategy: Strategy,
  opts: OptimizerOptions & { budget: number },
): { evaluations: number; history: Observation[] } {
  const history: Observation[] = [];
  let warm: GpHyper | undefined;
  while (history.length < opts.budget) {
    const s = suggest(space, history, strategy, { ...opts, warm });
    if (!s.point) break;
    warm = s.hyper ?? warm;
    const value = f(s.point);
    history.push({ point: s.point, value });
    if (value !== null && value <= target) return { evaluations: history.length, history };
  }
  return { evaluations: opts.budget + 1, history };
}
