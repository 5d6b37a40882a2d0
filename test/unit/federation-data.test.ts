/**
 * The federation's data (activities/federation/data.ts): the real MNIST digits of the `mnist` package, a stratified
 * held-out split that no participant receives, and seeded partitions — IID, label-skewed shards (McMahan et al. 2017)
 * and Dirichlet(α) — that are the same in every process for the same seed and differ across seeds.
 */
import { describe, expect, it } from 'vitest';
import {
  createRng,
  federatedMnist,
  IMAGE_SIZE,
  labelHistogram,
  loadMnist,
  partitionIndices,
  splitTrainTest,
} from '../../activities/federation/data.js';

/** How many distinct labels a participant holds (at least `min` examples of it). */
function labelsHeld(labels: Uint8Array, indices: Uint32Array, min = 1): number {
  return labelHistogram(labels, indices).filter((c) => c >= min).length;
}

/** Total-variation distance between a participant's label mix and the overall one (0 = identical, 1 = disjoint). */
function labelSkew(labels: Uint8Array, indices: Uint32Array): number {
  const mine = labelHistogram(labels, indices);
  const all = labelHistogram(labels);
  return mine.reduce((s, c, k) => s + Math.abs(c / indices.length - all[k]! / labels.length), 0) / 2;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('MNIST from the mnist package', () => {
  it('when loaded, then it holds the 10,000 labelled 28×28 digits with pixels in [0, 1]', () => {
    const data = loadMnist();
    expect(data.n).toBe(10_000);
    expect(data.x.length).toBe(10_000 * IMAGE_SIZE);
    expect(labelHistogram(data.y)).toEqual([1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
    let min = Infinity;
    let max = -Infinity;
    for (const v of data.x) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    expect([min, max]).toEqual([0, 1]);
  });

  it('when split, then the test part is stratified, disjoint from the training part, and fixed by the seed', () => {
    const data = loadMnist();
    const a = splitTrainTest(data, { testFraction: 0.2, seed: 7 });
    const b = splitTrainTest(data, { testFraction: 0.2, seed: 7 });
    const c = splitTrainTest(data, { testFraction: 0.2, seed: 8 });
    expect(a.test.n + a.train.n).toBe(10_000);
    expect(a.test.n).toBe(2000);
    expect(Array.from(a.testIndices)).toEqual(Array.from(b.testIndices));
    expect(Array.from(a.testIndices)).not.toEqual(Array.from(c.testIndices));
    const train = new Set(a.trainIndices);
    expect(Array.from(a.testIndices).some((i) => train.has(i))).toBe(false);
    const testShare = labelHistogram(a.test.y).map((count, k) => count / labelHistogram(data.y)[k]!);
    for (const share of testShare) expect(share).toBeCloseTo(0.2, 2);
  });
});

describe('partitions', () => {
  const { train } = splitTrainTest(loadMnist(), { testFraction: 0.2, seed: 1 });

  it('when IID, then each participant gets an equal share with close to the overall label mix', () => {
    const parts = partitionIndices(train.y, 10, { kind: 'iid' }, 3);
    expect(parts.map((p) => p.length)).toEqual(new Array(10).fill(800));
    expect(new Set(parts.flatMap((p) => Array.from(p))).size).toBe(8000);
    expect(Math.max(...parts.map((p) => labelSkew(train.y, p)))).toBeLessThan(0.06);
  });

  it('when label-skewed shards (2 per participant), then each participant holds about two digits', () => {
    const parts = partitionIndices(train.y, 20, { kind: 'shards', shardsPerParticipant: 2 }, 3);
    expect(parts.map((p) => p.length)).toEqual(new Array(20).fill(400));
    expect(new Set(parts.flatMap((p) => Array.from(p))).size).toBe(8000);
    // A shard of 200 label-sorted examples spans at most two labels (most span one): so at most 4 labels each,
    // against all 10 for every IID participant.
    for (const p of parts) expect(labelsHeld(train.y, p)).toBeLessThanOrEqual(4);
    expect(mean(parts.map((p) => labelsHeld(train.y, p, 20)))).toBeLessThan(3);
    expect(mean(parts.map((p) => labelSkew(train.y, p)))).toBeGreaterThan(0.6);
  });

  it('when Dirichlet, then a small α skews labels far more than a large one and everyone gets data', () => {
    const skewed = partitionIndices(train.y, 10, { kind: 'dirichlet', alpha: 0.1 }, 3);
    const mild = partitionIndices(train.y, 10, { kind: 'dirichlet', alpha: 100 }, 3);
    for (const parts of [skewed, mild]) {
      expect(parts.reduce((s, p) => s + p.length, 0)).toBe(8000);
      expect(new Set(parts.flatMap((p) => Array.from(p))).size).toBe(8000);
      expect(Math.min(...parts.map((p) => p.length))).toBeGreaterThanOrEqual(10);
    }
    expect(mean(skewed.map((p) => labelSkew(train.y, p)))).toBeGreaterThan(0.5);
    expect(mean(mild.map((p) => labelSkew(train.y, p)))).toBeLessThan(0.1);
  });

  it('when the same seed is used twice, then the partition is identical; another seed gives another', () => {
    for (const spec of [{ kind: 'iid' }, { kind: 'shards' }, { kind: 'dirichlet', alpha: 0.5 }] as const) {
      const a = partitionIndices(train.y, 8, spec, 42).map((p) => Array.from(p));
      const b = partitionIndices(train.y, 8, spec, 42).map((p) => Array.from(p));
      const c = partitionIndices(train.y, 8, spec, 43).map((p) => Array.from(p));
      expect(a).toEqual(b);
      expect(a).not.toEqual(c);
    }
  });

  it('when asked for impossible partitions, then it refuses clearly', () => {
    expect(() => partitionIndices(train.y, 0, { kind: 'iid' }, 1)).toThrow(/positive integer/);
    expect(() => partitionIndices(train.y, 5000, { kind: 'shards' }, 1)).toThrow(/shards/);
    expect(() => partitionIndices(train.y, 4, { kind: 'dirichlet', alpha: 0 }, 1)).toThrow(/alpha/);
  });

  it('when the simulated federation is built, then the shards are the partition of the training part only', () => {
    const fed = federatedMnist({ participants: 5, partition: { kind: 'iid' }, seed: 9, trainLimit: 1000 });
    expect(fed.train.n).toBe(1000);
    expect(fed.test.n).toBe(2000);
    expect(fed.shards.map((s) => s.n)).toEqual([200, 200, 200, 200, 200]);
    // Shard rows are copies of the training rows they index.
    const s = fed.shards[2]!;
    const src = fed.indices[2]![7]!;
    expect(Array.from(s.x.subarray(7 * IMAGE_SIZE, 8 * IMAGE_SIZE))).toEqual(
      Array.from(fed.train.x.subarray(src * IMAGE_SIZE, (src + 1) * IMAGE_SIZE)),
    );
    expect(federatedMnist({ participants: 5, partition: { kind: 'iid' }, seed: 9, trainLimit: 1000 })).toBe(fed);
  });
});

describe('createRng', () => {
  it('when seeded, then the stream repeats, and its normals and gammas have the right moments', () => {
    const a = createRng(5);
    const b = createRng(5);
    expect(Array.from({ length: 5 }, () => a.next())).toEqual(Array.from({ length: 5 }, () => b.next()));
    const rng = createRng(11);
    const n = 20_000;
    const normals = Array.from({ length: n }, () => rng.normal());
    expect(Math.abs(mean(normals))).toBeLessThan(0.03);
    expect(mean(normals.map((v) => v * v))).toBeCloseTo(1, 1);
    for (const shape of [0.3, 2.5]) {
      const g = Array.from({ length: n }, () => rng.gamma(shape));
      expect(mean(g)).toBeCloseTo(shape, 1); // Gamma(k, 1): mean k, variance k
      expect(mean(g.map((v) => (v - shape) ** 2))).toBeCloseTo(shape, 0);
    }
  });
});
