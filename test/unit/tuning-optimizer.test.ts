/**
 * The tuner's optimiser (activities/inference/tuning/): the Bayesian optimiser against known test functions and against
 * random search, log EI in the far tail, the encoding of mixed spaces, determinism and failed trials.
 */
import normalCdf from '@stdlib/stats-base-dists-normal-cdf';
import normalPdf from '@stdlib/stats-base-dists-normal-pdf';
import { describe, expect, it } from 'vitest';
import { logExpectedImprovement, logH } from '../../activities/inference/tuning/acquisition.js';
import { cardinality, createEncoding, encode, enumerate } from '../../activities/inference/tuning/encoding.js';
import {
  evaluationsToReach,
  incumbent,
  type Observation,
  type OptimizerOptions,
  suggest,
} from '../../activities/inference/tuning/optimizer.js';
import type { Point, SearchSpace } from '../../workflows/tuning/space.js';

const SEEDS = Array.from({ length: 10 }, (_, i) => i + 1);
// Cheaper hyper-parameter fits than the default keep this file at seconds; the conclusions hold with the default too.
const FAST: Omit<OptimizerOptions, 'seed'> = { fit: { restarts: 1, steps: 30 }, candidates: 500 };

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const BRANIN_SPACE: SearchSpace = [
  { kind: 'real', name: 'x1', min: -5, max: 10 },
  { kind: 'real', name: 'x2', min: 0, max: 15 },
];
/** Branin–Hoo: three global minima of 0.397887 on [-5, 10] × [0, 15]. */
function branin(p: Point): number {
  const [x1, x2] = [Number(p.x1), Number(p.x2)];
  const b = 5.1 / (4 * Math.PI ** 2);
  const c = 5 / Math.PI;
  return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * Math.PI)) * Math.cos(x1) + 10;
}
const BRANIN_MIN = 0.397887;

const MIXED_SPACE: SearchSpace = [
  { kind: 'real', name: 'x', min: -5, max: 5 },
  { kind: 'integer', name: 'n', min: 0, max: 10 },
  { kind: 'categorical', name: 'c', values: ['red', 'green', 'blue', 'yellow'] },
];
const OFFSET: Record<string, number> = { red: 0, green: 0.3, blue: 0.8, yellow: 1.5 };
const X_AT: Record<string, number> = { red: 2, green: -3, blue: 0, yellow: 4 };
const N_AT: Record<string, number> = { red: 7, green: 2, blue: 5, yellow: 0 };
/** A bowl per category, each with its own centre and floor, rippled along x: the optimum needs all three right. */
function mixed(p: Point): number {
  const c = String(p.c);
  const x = Number(p.x);
  return 1 + OFFSET[c]! + (x - X_AT[c]!) ** 2 / 4 + (Number(p.n) - N_AT[c]!) ** 2 / 8 + 0.3 * Math.sin(3 * x);
}
/** The mixed function's minimum, by a fine scan (x step 1e-4 over every n and category). */
function mixedMinimum(): number {
  let best = Infinity;
  for (const c of Object.keys(OFFSET))
    for (let n = 0; n <= 10; n++) for (let x = -5; x <= 5; x += 1e-4) best = Math.min(best, mixed({ x, n, c }));
  return best;
}

function compare(space: SearchSpace, f: (p: Point) => number, optimum: number) {
  const target = optimum * 1.05;
  const bayes = SEEDS.map((seed) => evaluationsToReach(space, f, target, 'bayesian', { ...FAST, seed, budget: 100 }));
  const random = SEEDS.map((seed) => evaluationsToReach(space, f, target, 'random', { seed, budget: 1000 }));
  return {
    target,
    bayes,
    bayesMedian: median(bayes.map((r) => r.evaluations)),
    // A random search that never reaches the target counts as budget + 1 evaluations: an underestimate, so the
    // comparison errs in random search's favour.
    randomMedian: median(random.map((r) => r.evaluations)),
  };
}

describe('the Bayesian optimiser', () => {
  it('when minimising Branin over 10 seeds, then every seed comes within 5% of the optimum, in at most half the median evaluations of random search', () => {
    const r = compare(BRANIN_SPACE, branin, BRANIN_MIN);
    for (const run of r.bayes) {
      expect(run.evaluations).toBeLessThanOrEqual(100);
      expect(incumbent(run.history)!.value).toBeLessThanOrEqual(r.target);
    }
    expect(r.bayesMedian).toBeLessThanOrEqual(r.randomMedian / 2);
  });

  it('when minimising a function of a real, an integer and a categorical dimension, then it comes within 5% of the optimum, in at most half the median evaluations of random search', () => {
    const optimum = mixedMinimum();
    const r = compare(MIXED_SPACE, mixed, optimum);
    for (const run of r.bayes) {
      expect(run.evaluations).toBeLessThanOrEqual(100);
      const best = incumbent(run.history)!;
      expect(best.value).toBeLessThanOrEqual(r.target);
      expect(best.point.c).toBe('red');
    }
    expect(r.bayesMedian).toBeLessThanOrEqual(r.randomMedian / 2);
  });

  it('when given the same seed and history twice, then it suggests the same point', () => {
    const history: Observation[] = SEEDS.slice(0, 6).map((seed) => {
      const point = suggest(MIXED_SPACE, [], 'random', { seed }).point!;
      return { point, value: mixed(point) };
    });
    const a = suggest(MIXED_SPACE, history, 'bayesian', { ...FAST, seed: 7 });
    const b = suggest(MIXED_SPACE, history, 'bayesian', { ...FAST, seed: 7 });
    expect(a.reason).toBe('acquisition');
    expect(a.point).toEqual(b.point);
    expect(Number.isFinite(a.logEi)).toBe(true);
  });

  it('when a small discrete space is scored exhaustively, then no point repeats and the space runs out', () => {
    const space: SearchSpace = [
      { kind: 'ordinal', name: 'batch', values: [1, 2, 4, 8] },
      { kind: 'categorical', name: 'mode', values: ['sequential', 'parallel'] },
    ];
    const f = (p: Point) => Math.abs(Math.log2(Number(p.batch)) - 2) + (p.mode === 'parallel' ? 1 : 0);
    const history: Observation[] = [];
    for (let i = 0; i < cardinality(space); i++) {
      const s = suggest(space, history, 'bayesian', { ...FAST, seed: 3, initialPoints: 2 });
      expect(s.point).toBeDefined();
      history.push({ point: s.point!, value: f(s.point!) });
    }
    expect(new Set(history.map((o) => JSON.stringify(o.point))).size).toBe(8);
    expect(suggest(space, history, 'bayesian', { ...FAST, seed: 3 }).reason).toBe('exhausted');
    expect(incumbent(history)!.point).toEqual({ batch: 4, mode: 'sequential' });
  });

  it('when trials fail, then they count as the worst value for the surrogate and are never the incumbent', () => {
    const history: Observation[] = [
      { point: { x: 0, n: 1, c: 'red' }, value: null },
      { point: { x: 1, n: 2, c: 'blue' }, value: 3 },
      { point: { x: 2, n: 3, c: 'green' }, value: 5 },
    ];
    expect(incumbent(history)!.value).toBe(3);
    const s = suggest(MIXED_SPACE, history, 'bayesian', { ...FAST, seed: 1, initialPoints: 2 });
    expect(s.reason).toBe('acquisition');
    expect(s.point).toBeDefined();
  });
});

describe('log expected improvement', () => {
  it('when z is moderate, then it equals log(zΦ(z) + φ(z)) computed directly', () => {
    for (const z of [-5, -2, -1.5, -0.5, 0, 1, 3]) {
      expect(logH(z)).toBeCloseTo(Math.log(z * normalCdf(z, 0, 1) + normalPdf(z, 0, 1)), 8);
    }
  });

  it('when z is far in the tail where EI underflows, then log EI stays finite, ordered and continuous', () => {
    expect(Math.log(-40 * normalCdf(-40, 0, 1) + normalPdf(-40, 0, 1))).toBe(-Infinity);
    const zs = [-5, -10, -29.999, -30, -30.001, -40, -100, -1e4];
    const values = zs.map(logH);
    for (const v of values) expect(Number.isFinite(v)).toBe(true);
    for (let i = 1; i < values.length; i++) expect(values[i]!).toBeLessThan(values[i - 1]!);
    expect(Math.abs(logH(-29.999) - logH(-30.001))).toBeLessThan(1e-1);
    // Asymptotically h(z) ≈ φ(z)/z².
    expect(logH(-1e4)).toBeCloseTo(-0.5 * 1e8 - 0.5 * Math.log(2 * Math.PI) - 2 * Math.log(1e4), 6);
  });

  it('when the candidate is certain, then only a sure improvement counts', () => {
    expect(logExpectedImprovement(1, 0, 2)).toBeCloseTo(0, 12);
    expect(logExpectedImprovement(3, 0, 2)).toBe(-Infinity);
  });
});

describe('the encoding of a mixed space', () => {
  it('when encoding, then ranges and ordinals are scaled to [0, 1] (log where asked) and categoricals are one-hot', () => {
    const space: SearchSpace = [
      { kind: 'integer', name: 'threads', min: 1, max: 4 },
      { kind: 'real', name: 'waitMs', min: 0.1, max: 10, log: true },
      { kind: 'ordinal', name: 'batch', values: [1, 4, 16] },
      { kind: 'categorical', name: 'mode', values: ['sequential', 'parallel'] },
    ];
    const enc = createEncoding(space);
    expect(enc.width).toBe(5);
    expect(enc.columnDim).toEqual([0, 1, 2, 3, 3]);
    const v = encode(enc, { threads: 4, waitMs: 1, batch: 4, mode: 'parallel' });
    expect(v[0]).toBe(1);
    expect(v[1]).toBeCloseTo(0.5, 12);
    expect(v[2]).toBe(0.5);
    expect(v.slice(3)).toEqual([0, 1]);
    expect(cardinality(space)).toBe(Infinity);
    expect(enumerate(space.filter((d) => d.kind !== 'real'))).toHaveLength(4 * 3 * 2);
  });
});
