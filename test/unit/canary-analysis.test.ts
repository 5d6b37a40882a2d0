/**
 * The canary analysis (activities/inference/serving/analysis.ts): the mixture SPRT keeps its error rate under
 * continuous monitoring (simulated A/A rollouts checked after every event), detects real regressions at small counts,
 * and the p95-ratio bootstrap and the decision rule behave as the README states.
 */
import { describe, expect, it } from 'vitest';
import {
  bootstrapQuantileRatio,
  decide,
  DEFAULT_THRESHOLDS,
  mixtureLikelihoodRatio,
  mulberry32,
  type ArmEvents,
} from '../../activities/inference/serving/analysis.js';

/** Simulates one rollout's bad events, checking Λ after each; returns whether Λ ever reached 1/alpha. */
function everRejects(rand: () => number, share: number, canaryRate: number, baseRate: number, requests: number) {
  const step: ArmEvents = { canaryEvents: 0, baselineEvents: 0, canaryShare: share };
  for (let i = 0; i < requests; i++) {
    const canary = rand() < share;
    if (rand() < (canary ? canaryRate : baseRate)) {
      if (canary) step.canaryEvents++;
      else step.baselineEvents++;
      if (mixtureLikelihoodRatio([step]) >= 1 / DEFAULT_THRESHOLDS.alpha) return true;
    }
  }
  return false;
}

describe('mixture SPRT on the arm of each bad event', () => {
  it('when canary and baseline are equal and Λ is checked after every event, then it rejects in at most α of runs', () => {
    const rand = mulberry32(7);
    let rejections = 0;
    const runs = 400;
    for (let r = 0; r < runs; r++) if (everRejects(rand, 0.1, 0.05, 0.05, 2000)) rejections++;
    expect(rejections / runs).toBeLessThanOrEqual(DEFAULT_THRESHOLDS.alpha);
  });

  it('when the canary errors on every request at a 5% share, then a handful of errors rolls it back', () => {
    const lr = (n: number) => mixtureLikelihoodRatio([{ canaryEvents: n, baselineEvents: 0, canaryShare: 0.05 }]);
    expect(lr(1)).toBeLessThan(20);
    expect(lr(3)).toBeGreaterThanOrEqual(20);
  });

  it('when the canary is wrong 5x as often, then the test detects it in most runs', () => {
    const rand = mulberry32(11);
    let detected = 0;
    for (let r = 0; r < 100; r++) if (everRejects(rand, 0.25, 0.25, 0.05, 2000)) detected++;
    expect(detected).toBeGreaterThan(90);
  });

  it('when both arms fail alike (a shared outage), then Λ stays below the rollback bound', () => {
    expect(mixtureLikelihoodRatio([{ canaryEvents: 10, baselineEvents: 90, canaryShare: 0.1 }])).toBeLessThan(5);
  });

  it('when steps with different shares accumulate, then each contributes with its own share', () => {
    const one = mixtureLikelihoodRatio([{ canaryEvents: 2, baselineEvents: 0, canaryShare: 0.05 }]);
    const two = mixtureLikelihoodRatio([
      { canaryEvents: 2, baselineEvents: 0, canaryShare: 0.05 },
      { canaryEvents: 2, baselineEvents: 0, canaryShare: 0.5 },
    ]);
    expect(two).toBeGreaterThan(one);
    expect(mixtureLikelihoodRatio([])).toBe(1);
  });
});

describe('bootstrap interval for the p95 ratio', () => {
  const sample = (rand: () => number, n: number, scale: number) =>
    Array.from({ length: n }, () => scale * -Math.log(1 - rand()));

  it('when the canary is twice as slow, then the interval lies above 1.25; when equal, it covers 1', () => {
    const rand = mulberry32(3);
    const base = sample(rand, 400, 1);
    const slow = bootstrapQuantileRatio(sample(rand, 400, 2), base);
    expect(slow.lower).toBeGreaterThan(1.25);
    const same = bootstrapQuantileRatio(sample(rand, 400, 1), base);
    expect(same.lower).toBeLessThan(1);
    expect(same.upper).toBeGreaterThan(1);
  });

  it('when called twice on the same inputs, then it gives the same interval (seeded)', () => {
    const rand = mulberry32(5);
    const a = sample(rand, 100, 1);
    const b = sample(rand, 100, 1);
    expect(bootstrapQuantileRatio(a, b)).toEqual(bootstrapQuantileRatio(a, b));
  });
});

describe('the decision', () => {
  const quiet: ArmEvents[] = [{ canaryEvents: 0, baselineEvents: 3, canaryShare: 0.1 }];
  const flat = (n: number, v: number) => Array.from({ length: n }, (_, i) => v + (i % 10) * 0.01 * v);

  it('when errors reach the bound, then it rolls back even before the step is complete', () => {
    const r = decide({
      errors: [{ canaryEvents: 5, baselineEvents: 0, canaryShare: 0.05 }],
      wrong: [],
      stepComplete: false,
    });
    expect(r.decision).toBe('rollback');
    expect(r.reasons[0]).toMatch(/errors/);
  });

  it('when labelled answers are wrong on the canary, then it rolls back on accuracy', () => {
    const r = decide({
      errors: quiet,
      wrong: [{ canaryEvents: 6, baselineEvents: 1, canaryShare: 0.1 }],
      stepComplete: false,
    });
    expect(r.decision).toBe('rollback');
    expect(r.reasons[0]).toMatch(/accuracy/);
  });

  it('when a complete step is slow on the canary, then it rolls back on latency; equal latency continues', () => {
    const slow = decide({
      errors: quiet,
      wrong: [],
      stepComplete: true,
      latency: { canary: flat(100, 10), baseline: flat(100, 1) },
    });
    expect(slow.decision).toBe('rollback');
    expect(slow.reasons[0]).toMatch(/latency/);
    const ok = decide({
      errors: quiet,
      wrong: [],
      stepComplete: true,
      latency: { canary: flat(100, 1), baseline: flat(100, 1) },
    });
    expect(ok.decision).toBe('continue');
  });

  it('when evidence is moderate at a boundary, then it pauses for a person; mid-step it holds', () => {
    const moderate = [{ canaryEvents: 2, baselineEvents: 1, canaryShare: 0.1 }];
    const lr = mixtureLikelihoodRatio(moderate);
    expect(lr).toBeGreaterThanOrEqual(DEFAULT_THRESHOLDS.pauseLr);
    expect(lr).toBeLessThan(20);
    expect(decide({ errors: moderate, wrong: [], stepComplete: true }).decision).toBe('pause');
    expect(decide({ errors: moderate, wrong: [], stepComplete: false }).decision).toBe('hold');
  });

  it('when a step lacks latency samples, then it holds rather than continuing', () => {
    const r = decide({ errors: quiet, wrong: [], stepComplete: true, latency: { canary: [1, 2], baseline: [1] } });
    expect(r.decision).toBe('hold');
  });
});
