/**
 * bench:tuning — what the runtime tuner earns on this machine, on the platform's own models, beside the product
 * documents' claims (2.3× throughput, 40% lower p95).
 *
 * 1. Live: for the federation's MNIST MLP (784-128-10, F1's toOnnx) and a larger MLP built here (784-512-256-10, M1's
 *    builder), the Bayesian optimiser tunes (a) the session settings alone, serving policy at the platform default,
 *    and (b) session settings and serving policy together, each with the same trial budget. Then default, (a) and
 *    (b) are measured again side by side, interleaved, and reported as ratios to the default.
 * 2. Recorded: an exhaustive grid of a small space is measured once on the larger MLP and written to
 *    bench/tuning-table.json; Bayesian and random search then run over that table (deterministic: a trial is a table
 *    look-up) for 20 seeds each: trials needed to come within 5% of the grid's best throughput. `--reuse-table`
 *    skips measuring and reads the recorded table. bench/tuning-trials.svg charts throughput per trial with the
 *    incumbent line, Bayesian vs random (seed 1).
 *
 * Each measurement is the trial's own (activities/inference/tuning/): an ONNX Runtime session in a worker thread with
 * the candidate's settings, behind the serving path's dynamic batcher, closed-loop clients, median of repetitions.
 *   npm run bench:tuning [-- --budget 12 --reuse-table]
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { format, resolveConfig } from 'prettier';
import { initParams, toOnnx } from '../activities/federation/model.js';
import { measure, median } from '../activities/inference/tuning/measure.js';
import { evaluationsToReach, incumbent, type Observation } from '../activities/inference/tuning/optimizer.js';
import { openCandidate } from '../activities/inference/tuning/session.js';
import { buildMlpOnnx, randomMlp } from '../common/onnx/builder.js';
import {
  type Candidate,
  candidateOf,
  DEFAULT_SERVING,
  type Figures,
  MeasurementSchema,
  WorkloadSpecSchema,
} from '../workflows/tuning/definitions.js';
import type { Point, SearchSpace } from '../workflows/tuning/space.js';
import { writeLineChart } from './chart.js';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const BUDGET = option('budget', 12);
const SEEDS = option('seeds', 20);
const TABLE = path.join(import.meta.dirname, 'tuning-table.json');
const CHART = path.join(import.meta.dirname, 'tuning-trials.svg');

const workload = WorkloadSpecSchema.parse({
  concurrency: 16,
  mix: [
    { rows: 1, weight: 0.8 },
    { rows: 8, weight: 0.2 },
  ],
  requests: 200,
});
const measurement = MeasurementSchema.parse({
  warmupRequests: 50,
  minRepetitions: 3,
  maxRepetitions: 4,
  maxSpread: 0.15,
  trialTimeoutMs: 20_000,
});
const DEFAULT: Candidate = { session: {}, serving: DEFAULT_SERVING };

const SESSION_SPACE: SearchSpace = [
  { kind: 'ordinal', name: 'session.intraOpNumThreads', values: [1, 2, 4] },
  { kind: 'ordinal', name: 'session.interOpNumThreads', values: [1, 2, 4] },
  { kind: 'categorical', name: 'session.executionMode', values: ['sequential', 'parallel'] },
  { kind: 'categorical', name: 'session.graphOptimizationLevel', values: ['basic', 'all'] },
  { kind: 'categorical', name: 'session.allowSpinning', values: [true, false] },
  { kind: 'categorical', name: 'session.enableCpuMemArena', values: [true, false] },
];
const SERVING_SPACE: SearchSpace = [
  { kind: 'ordinal', name: 'serving.maxBatchSize', values: [1, 4, 16, 64] },
  { kind: 'ordinal', name: 'serving.maxWaitMs', values: [0, 1, 2, 5] },
  { kind: 'ordinal', name: 'serving.concurrency', values: [1, 2, 4] },
];
/** The recorded grid: 3 × 2 × 4 × 3 = 72 configurations. */
const GRID_SPACE: SearchSpace = [
  { kind: 'ordinal', name: 'session.intraOpNumThreads', values: [1, 2, 4] },
  { kind: 'categorical', name: 'session.executionMode', values: ['sequential', 'parallel'] },
  { kind: 'ordinal', name: 'serving.maxBatchSize', values: [1, 4, 16, 64] },
  { kind: 'ordinal', name: 'serving.concurrency', values: [1, 2, 4] },
];

/** One trial's measurement (no guardrail: the bench measures speed); a candidate past the deadline counts as failed. */
async function measureCandidate(bytes: Uint8Array, candidate: Candidate): Promise<Figures | null> {
  const session = await openCandidate(bytes, candidate);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void session.close();
  }, measurement.trialTimeoutMs);
  try {
    const f = await measure(session, workload, measurement, { shouldStop: () => timedOut });
    return timedOut ? null : f;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
    await session.close();
  }
}

const fmt = (n: number, d = 1) => n.toFixed(d);

async function tune(bytes: Uint8Array, space: SearchSpace): Promise<{ best: Candidate; history: Observation[] }> {
  const history: Observation[] = [];
  const candidates: Candidate[] = [];
  let warm;
  for (let i = 0; i < BUDGET; i++) {
    const { suggest } = await import('../activities/inference/tuning/optimizer.js');
    const s = suggest(space, history, 'bayesian', { seed: 1, warm });
    if (!s.point) break;
    warm = s.hyper ?? warm;
    const candidate = candidateOf(s.point, DEFAULT);
    const f = await measureCandidate(bytes, candidate);
    history.push({ point: s.point, value: f ? -Math.log(f.throughput) : null });
    candidates.push(candidate);
    process.stdout.write(
      `    trial ${i + 1}: ${f ? `${fmt(f.throughput, 0)} rows/s, p95 ${fmt(f.p95Ms, 2)} ms` : 'failed (timeout)'}\n`,
    );
  }
  const best = incumbent(history);
  return { best: best ? candidates[best.index]! : DEFAULT, history };
}

async function live(name: string, bytes: Uint8Array): Promise<void> {
  console.log(`\n${name}: tuning session settings alone (serving at the default ${JSON.stringify(DEFAULT_SERVING)})`);
  const sessionOnly = await tune(bytes, SESSION_SPACE);
  console.log(`${name}: tuning session settings and serving policy`);
  const full = await tune(bytes, [...SESSION_SPACE, ...SERVING_SPACE]);
  // Side by side, interleaved, three rounds: the ratios come from one run on the same machine state.
  const rows: Record<string, Figures[]> = { default: [], session: [], full: [] };
  for (let round = 0; round < 3; round++) {
    for (const [k, c] of [
      ['default', DEFAULT],
      ['session', sessionOnly.best],
      ['full', full.best],
    ] as const) {
      const f = await measureCandidate(bytes, c);
      if (f) rows[k]!.push(f);
    }
  }
  const t = (k: string) => median(rows[k]!.map((f) => f.throughput));
  const p = (k: string) => median(rows[k]!.map((f) => f.p95Ms));
  console.log(`${name}: default vs tuned (median of 3 interleaved measurements each)`);
  console.log(
    `  ${'configuration'.padEnd(28)} ${'rows/s'.padStart(9)} ${'p95 ms'.padStart(8)} ${'throughput ×'.padStart(13)} ${'p95 change'.padStart(11)}`,
  );
  for (const [k, label] of [
    ['default', 'default'],
    ['session', 'session settings alone'],
    ['full', 'settings + serving policy'],
  ] as const) {
    const dp = (100 * (p(k) - p('default'))) / p('default');
    console.log(
      `  ${label.padEnd(28)} ${fmt(t(k), 0).padStart(9)} ${fmt(p(k), 2).padStart(8)} ${fmt(t(k) / t('default'), 2).padStart(12)}× ${`${dp >= 0 ? '+' : ''}${fmt(dp)}%`.padStart(11)}`,
    );
  }
  console.log(`  claims in the product documents: 2.3× throughput, −40% p95`);
  console.log(`  session-only best: ${JSON.stringify(sessionOnly.best.session)}`);
  console.log(`  full best: ${JSON.stringify(full.best)}`);
}

interface TableRow {
  point: Point;
  throughput: number | null;
  p95Ms: number | null;
}

async function recordTable(bytes: Uint8Array): Promise<TableRow[]> {
  if (flag('reuse-table')) return (JSON.parse(await readFile(TABLE, 'utf8')) as { rows: TableRow[] }).rows;
  const { enumerate } = await import('../activities/inference/tuning/encoding.js');
  const points = enumerate(GRID_SPACE);
  console.log(`\nrecording the grid: ${points.length} configurations of the larger MLP`);
  const rows: TableRow[] = [];
  for (const point of points) {
    const f = await measureCandidate(bytes, candidateOf(point, DEFAULT));
    process.stdout.write(`  ${JSON.stringify(point)}: ${f ? `${fmt(f.throughput, 0)} rows/s` : 'timeout'}\n`);
    rows.push({ point, throughput: f?.throughput ?? null, p95Ms: f?.p95Ms ?? null });
  }
  const text = JSON.stringify({ model: 'mlp 784-512-256-10 (seed 5)', workload, measurement, space: GRID_SPACE, rows });
  // Formatted as the repository's prettier check expects, so a re-recorded table needs no manual step.
  await writeFile(TABLE, await format(text, { ...(await resolveConfig(TABLE)), filepath: TABLE }));
  console.log(`wrote ${path.relative(process.cwd(), TABLE)}`);
  return rows;
}

async function replay(rows: TableRow[]): Promise<void> {
  const lookup = new Map(rows.map((r) => [JSON.stringify(GRID_SPACE.map((d) => r.point[d.name])), r]));
  const f = (p: Point) => {
    const r = lookup.get(JSON.stringify(GRID_SPACE.map((d) => p[d.name])))!;
    return r.throughput === null ? null : -Math.log(r.throughput);
  };
  const best = Math.max(...rows.flatMap((r) => (r.throughput === null ? [] : [r.throughput])));
  const worst = Math.min(...rows.flatMap((r) => (r.throughput === null ? [] : [r.throughput])));
  const target = -Math.log(0.95 * best);
  const within = rows.filter((r) => r.throughput !== null && r.throughput >= 0.95 * best).length;
  const runs = { bayesian: [] as number[], random: [] as number[] };
  const curves: Record<string, Observation[]> = {};
  for (const strategy of ['bayesian', 'random'] as const) {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = evaluationsToReach(GRID_SPACE, f, target, strategy, { seed, budget: rows.length });
      runs[strategy].push(r.evaluations);
      if (seed === 1)
        curves[strategy] = evaluationsToReach(GRID_SPACE, f, -Infinity, strategy, { seed, budget: 30 }).history;
    }
  }
  const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
  console.log(
    `\nrecorded grid (${rows.length} configurations, ${within} within 5% of the best ${fmt(best, 0)} rows/s; worst ${fmt(worst, 0)} rows/s, ${fmt(best / worst, 1)}× apart; ${rows.filter((r) => r.throughput === null).length} timed out)`,
  );
  console.log(`trials to come within 5% of the grid's best, over ${SEEDS} seeds:`);
  for (const s of ['bayesian', 'random'] as const)
    console.log(`  ${s.padEnd(9)} mean ${fmt(mean(runs[s]))}, median ${median(runs[s])}, max ${Math.max(...runs[s])}`);
  console.log(`  random / bayesian (means): ${fmt(mean(runs.random) / mean(runs.bayesian), 2)}×`);
  const series = (['bayesian', 'random'] as const).flatMap((s) => {
    const h = curves[s]!;
    let inc = -Infinity;
    const trial = h.map((o, i) => [i + 1, o.value === null ? 0 : Math.exp(-o.value)] as const);
    const line = h.map((o, i) => {
      if (o.value !== null) inc = Math.max(inc, Math.exp(-o.value));
      return [i + 1, inc] as const;
    });
    return [
      { name: `${s}: trial`, points: trial },
      { name: `${s}: incumbent`, points: line },
    ];
  });
  await writeLineChart(CHART, {
    title: 'Throughput per trial over the recorded grid (seed 1)',
    xLabel: 'trial',
    yLabel: 'rows per second',
    series,
  });
  console.log(`wrote ${path.relative(process.cwd(), CHART)}`);
}

async function main(): Promise<void> {
  const keep = setInterval(() => undefined, 1000); // the ONNX threads are unref'd
  try {
    const larger = buildMlpOnnx(randomMlp([784, 512, 256, 10], 5));
    const rows = await recordTable(larger);
    await replay(rows);
    if (!flag('table-only')) {
      await live('federated MNIST MLP (784-128-10)', toOnnx('mlp', initParams('mlp', 1)));
      await live('larger MLP (784-512-256-10)', larger);
    }
  } finally {
    clearInterval(keep);
  }
}

await main();
