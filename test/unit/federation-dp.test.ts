/**
 * DP-FedAvg's mechanics (activities/federation/dp.ts): clipping to L2 norm C, and Gaussian noise of std z·C on the
 * sum — its mean, variance and normality checked statistically, for the seeded source and the CSPRNG one.
 */
import cdf from '@stdlib/stats-base-dists-normal-cdf';
import { describe, expect, it } from 'vitest';
import {
  addGaussianNoise,
  allFinite,
  clipL2,
  cryptoNoise,
  l2Norm,
  noiseShareStd,
  noiseStd,
  seededNoise,
  type NoiseSource,
} from '../../activities/federation/dp.js';

/** Kolmogorov–Smirnov statistic of `xs` against N(0, std²). */
function ksStatistic(xs: number[], std: number): number {
  const sorted = xs.slice().sort((a, b) => a - b);
  let d = 0;
  sorted.forEach((x, i) => {
    const f = cdf(x, 0, std);
    d = Math.max(d, Math.abs(f - i / sorted.length), Math.abs(f - (i + 1) / sorted.length));
  });
  return d;
}

function noiseStats(source: NoiseSource, std: number, n: number) {
  const noise = Array.from(addGaussianNoise(new Float32Array(n), std, source));
  const mean = noise.reduce((a, b) => a + b, 0) / n;
  const variance = noise.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return { noise, mean, variance };
}

describe('clipL2', () => {
  it('when an update is longer than C, then it is scaled to norm C, keeping its direction', () => {
    const v = Float32Array.from([3, 4, 0, 12]); // norm 13
    const { clipped, norm, scale } = clipL2(v, 6.5);
    expect(norm).toBeCloseTo(13, 6);
    expect(scale).toBeCloseTo(0.5, 6);
    expect(l2Norm(clipped)).toBeLessThanOrEqual(6.5);
    expect(l2Norm(clipped)).toBeCloseTo(6.5, 5);
    clipped.forEach((x, i) => expect(x).toBeCloseTo(v[i]! / 2, 5));
  });

  it('when an update is within C, then it is left unchanged', () => {
    const v = Float32Array.from([0.1, -0.2, 0.3]);
    const { clipped, scale } = clipL2(v, 1);
    expect(scale).toBe(1);
    expect(Array.from(clipped)).toEqual(Array.from(v));
  });

  it('when many random updates of all sizes are clipped, then none ends above C', () => {
    const rng = seededNoise(3);
    for (let k = 0; k < 200; k++) {
      const size = 10 ** (k % 7) / 1000;
      const v = Float32Array.from({ length: 300 }, () => rng.gaussian() * size);
      expect(l2Norm(clipL2(v, 1.7).clipped)).toBeLessThanOrEqual(1.7);
    }
  });

  it('when an update holds NaN or Infinity, or C is not positive, then clipping refuses', () => {
    expect(allFinite([1, 2, 3])).toBe(true);
    expect(allFinite([1, Number.NaN])).toBe(false);
    expect(() => clipL2([1, Number.NaN], 1)).toThrow(/NaN or infinite/);
    expect(() => clipL2([1, Infinity], 1)).toThrow(/NaN or infinite/);
    expect(() => clipL2([1, 2], 0)).toThrow(/clipNorm/);
  });
});

describe('Gaussian noise', () => {
  const z = 1.1;
  const C = 0.5;

  it('when noise of std z·C is added, then its mean is 0, its variance (z·C)², and it passes a KS test', () => {
    const std = noiseStd(z, C);
    expect(std).toBeCloseTo(0.55, 12);
    const n = 20_000;
    for (const source of [seededNoise(11), cryptoNoise()]) {
      const { noise, mean, variance } = noiseStats(source, std, n);
      // Mean: 5 standard errors. Variance: its standard error is σ²·√(2/(n−1)); allow 5 of them.
      expect(Math.abs(mean)).toBeLessThan((5 * std) / Math.sqrt(n));
      expect(Math.abs(variance - std * std)).toBeLessThan(5 * std * std * Math.sqrt(2 / (n - 1)));
      // KS critical value at α = 1e-5 is √(−ln(α/2)/2)/√n ≈ 2.47/√n (the CSPRNG draws differ every run).
      expect(ksStatistic(noise, std)).toBeLessThan(2.47 / Math.sqrt(n));
    }
  });

  it('when the noise has the wrong scale, then the same checks would catch it', () => {
    const std = noiseStd(z, C);
    const { noise, variance } = noiseStats(seededNoise(12), std * 1.1, 20_000);
    expect(Math.abs(variance - std * std)).toBeGreaterThan(5 * std * std * Math.sqrt(2 / 19_999));
    expect(ksStatistic(noise, std)).toBeGreaterThan(2.47 / Math.sqrt(20_000));
  });

  it('when the same seed is used, then the seeded noise repeats; the CSPRNG does not', () => {
    const a = addGaussianNoise(new Float32Array(5), 1, seededNoise(1));
    const b = addGaussianNoise(new Float32Array(5), 1, seededNoise(1));
    expect(Array.from(a)).toEqual(Array.from(b));
    const c = addGaussianNoise(new Float32Array(5), 1, cryptoNoise());
    const d = addGaussianNoise(new Float32Array(5), 1, cryptoNoise());
    expect(Array.from(c)).not.toEqual(Array.from(d));
  });

  it('when noise is added, then the input sum is not modified and zero std adds nothing', () => {
    const sum = Float32Array.from([1, 2, 3]);
    const noisy = addGaussianNoise(sum, 2, seededNoise(2));
    expect(Array.from(sum)).toEqual([1, 2, 3]);
    expect(Array.from(noisy)).not.toEqual([1, 2, 3]);
    expect(Array.from(addGaussianNoise(sum, 0, seededNoise(2)))).toEqual([1, 2, 3]);
  });

  it('when each of ≥ min participants adds a share, then any sum of at least min shares has std ≥ z·C', () => {
    const min = 8;
    const share = noiseShareStd(z, C, min);
    expect(share).toBeCloseTo(noiseStd(z, C) / Math.sqrt(8), 12);
    // min shares summed: variance min·share² = (z·C)²; 12 answering (more than min): more, never less.
    const n = 10_000;
    for (const answered of [min, 12]) {
      const source = seededNoise(answered);
      const sums = Array.from({ length: n }, () => {
        let s = 0;
        for (let p = 0; p < answered; p++) s += share * source.gaussian();
        return s;
      });
      const variance = sums.reduce((a, b) => a + b * b, 0) / n;
      const expected = answered * share * share;
      expect(Math.abs(variance - expected)).toBeLessThan(5 * expected * Math.sqrt(2 / n));
      expect(expected).toBeGreaterThanOrEqual(noiseStd(z, C) ** 2 * (1 - 1e-12));
    }
  });
});
