/**
 * bench:models — the serving data plane and canary rollouts, measured in one run on this machine, printed beside the
 * product documents' claims ("zero downtime", "sub-second traffic shifting", "rollback under 30 s", "<1% latency
 * increase during transitions"):
 *
 *   1. router overhead: one request at a time through the serving host's router vs the same session run directly;
 *   2. requests per second through the router (16 concurrent callers, in process);
 *   3. p95 during a swap (canary loaded and warmed, weights moved, promoted) vs steady state, as a ratio, and failures;
 *   4. time from a rollback decision (the weight set to 0) to zero canary traffic in every serving process (this
 *      one and two separate serving processes), over 5 rollbacks;
 *   5. a real canaryRollout of an erroring canary (Temporal dev server, worker process) rolled back by the analysis,
 *      and a chart of canary vs baseline error rate and p95 latency over it (SVG under $TMPDIR/agency-bench).
 *
 *   npm run bench:models
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { floatTensor, OrtThread } from '../activities/inference/ort.js';
import { startServing } from '../activities/inference/serving/index.js';
import { PROJECT_ROOT } from '../common/config.js';
import { createDb } from '../common/db.js';
import { setServing } from '../common/model-serving.js';
import { queueFor } from '../temporal/task-queues.js';
import type { canaryRolloutWorkflow } from '../workflows/models/canary-rollout.workflow.js';
import { RolloutOptionsSchema, rolloutWorkflowId } from '../workflows/models/rollout-definitions.js';
import { RolloutLoad } from '../test/helpers/rollout-load.js';
import { inputRow, modelBytes, registerServed } from '../test/helpers/served-models.js';
import { writeLineChart } from './chart.js';
import { Cleanup, startBenchStack } from './stack.js';
import { quantile } from './stats.js';

const cleanup = new Cleanup();
const log = (line: string) => process.stderr.write(`[bench:models] ${line}\n`);
const adminUrl = process.env.BENCH_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const keepAlive = setInterval(() => undefined, 1000);

try {
  const stack = await startBenchStack(
    {
      adminUrl,
      logDir: path.join(os.tmpdir(), 'agency-bench', 'models-logs'),
      progress: log,
      pools: ['orchestration', 'inference'],
      env: { SERVING_RELOAD_INTERVAL: '1s', SERVING_PORT: '0' },
    },
    cleanup,
  );
  const config = stack.config;
  const db = createDb(config.DATABASE_URL);
  cleanup.defer('close db', () => db.end());
  const now = { batch: { maxBatchSize: 16, maxWaitMs: 0, concurrency: 2 } };
  await registerServed(db, 'bench', '1.0.0', 'good', now.batch);
  await registerServed(db, 'bench', '1.1.0', 'good', now.batch);
  await setServing(db, 'default', 'bench', { baselineVersion: '1.0.0' });
  const serving = await startServing({ db, config }, 0);
  cleanup.defer('stop serving', () => serving.close());
  const host = serving.host;

  // 1. Router overhead, one request at a time.
  log('router overhead');
  const ort = new OrtThread();
  cleanup.defer('close ort', () => ort.close());
  await ort.load({
    key: 'direct',
    bytes: modelBytes('good'),
    settings: { intraOpNumThreads: 1, interOpNumThreads: 1 },
  });
  const N = 2000;
  const direct: number[] = [];
  const routed: number[] = [];
  for (let i = 0; i < N + 200; i++) {
    const row = Float32Array.from(inputRow(i));
    let t = performance.now();
    await ort.run({ key: 'direct', feeds: { input: floatTensor(row, [1, row.length]) } });
    if (i >= 200) direct.push(performance.now() - t);
    t = performance.now();
    await host.predict('default', 'bench', [inputRow(i)]);
    if (i >= 200) routed.push(performance.now() - t);
  }
  const med = (v: number[]) => quantile(v, 0.5);

  // 2. Throughput.
  log('throughput');
  const rpsLoad = new RolloutLoad(host, 'bench', { concurrency: 16 }).start();
  await sleep(3000);
  await rpsLoad.stop();
  const rps = rpsLoad.samples.length / 3;

  // 3. p95 during a swap vs steady state.
  log('p95 during a swap');
  const swapLoad = new RolloutLoad(host, 'bench', { concurrency: 8 }).start();
  await sleep(2000);
  const steadyEnd = swapLoad.samples.length;
  const swapStart = swapLoad.samples.length;
  await setServing(db, 'default', 'bench', { canaryVersion: '1.1.0', canaryWeight: 0 });
  while (!host.snapshot('default', 'bench')?.loaded.includes('1.1.0')) await sleep(5);
  for (const w of [500, 2500, 5000]) {
    await setServing(db, 'default', 'bench', { canaryWeight: w });
    await sleep(300);
  }
  await setServing(db, 'default', 'bench', { baselineVersion: '1.1.0', canaryVersion: null, canaryWeight: 0 });
  while (host.snapshot('default', 'bench')?.loaded.join() !== '1.1.0') await sleep(5);
  await sleep(300);
  const swapEnd = swapLoad.samples.length;
  await swapLoad.stop();
  const steadyP95 = quantile(
    swapLoad.samples.slice(0, steadyEnd).map((s) => s.ms),
    0.95,
  );
  const swapP95 = quantile(
    swapLoad.samples.slice(swapStart, swapEnd).map((s) => s.ms),
    0.95,
  );
  const failedDuringSwap = swapLoad.failed;

  // 4. Rollback decision → zero canary traffic in every serving process (this one + two others).
  log('rollback to zero canary traffic in three serving processes');
  const children: ChildProcess[] = [];
  cleanup.defer('stop serving processes', () => Promise.resolve(children.forEach((c) => c.kill('SIGKILL'))));
  const spawnServing = async (): Promise<string> => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(PROJECT_ROOT, 'test/helpers/serving-child.ts')],
      {
        cwd: PROJECT_ROOT,
        env: {
          PATH: process.env.PATH ?? '',
          DATABASE_URL: config.DATABASE_URL,
          SERVING_RELOAD_INTERVAL: '1s',
          LOG_LEVEL: 'silent',
        },
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    children.push(child);
    const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve));
    return (JSON.parse(line) as { url: string }).url;
  };
  const urls = await Promise.all([spawnServing(), spawnServing()]);
  const canaryWeight = async (url: string) =>
    ((await (await fetch(`${url}/v1/models/default/bench`)).json()) as { canary?: { weight: number } }).canary
      ?.weight ?? 0;
  const rollbackMs: number[] = [];
  for (let r = 0; r < 5; r++) {
    await setServing(db, 'default', 'bench', { canaryVersion: '1.0.0', canaryWeight: 5000 });
    for (;;) {
      const weights = [
        host.snapshot('default', 'bench')?.canary?.weight ?? 0,
        ...(await Promise.all(urls.map(canaryWeight))),
      ];
      if (weights.every((w) => w === 5000)) break;
      await sleep(20);
    }
    const t0 = performance.now();
    await setServing(db, 'default', 'bench', { canaryVersion: null, canaryWeight: 0 });
    const done = await Promise.all([
      (async () => {
        while (host.snapshot('default', 'bench')?.canary) await sleep(1);
        return performance.now() - t0;
      })(),
      ...urls.map(async (url) => {
        while ((await canaryWeight(url)) > 0) await sleep(1);
        return performance.now() - t0;
      }),
    ]);
    rollbackMs.push(Math.max(...done));
  }

  // 5. A real rollout of an erroring canary, rolled back by the analysis; the chart.
  log('a canaryRollout of an erroring canary');
  await registerServed(db, 'chart', '1.0.0', 'good', now.batch);
  await registerServed(db, 'chart', '1.1.0', { kind: 'error', rate: 0.3 }, now.batch);
  const start = (version: string, options: Record<string, unknown>) =>
    stack.client.workflow.start<typeof canaryRolloutWorkflow>('canaryRolloutWorkflow', {
      args: [
        {
          tenantId: 'default',
          model: 'chart',
          version,
          requestedBy: 'user:bench',
          options: RolloutOptionsSchema.parse(options),
        },
      ],
      workflowId: rolloutWorkflowId('default', 'chart', version),
      taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
    });
  await (await start('1.0.0', {})).result();
  while (host.snapshot('default', 'chart')?.baseline !== '1.0.0') await sleep(10);
  const chartLoad = new RolloutLoad(host, 'chart', { concurrency: 4 }).start();
  await sleep(1500);
  const began = Date.now();
  const status = await (
    await start('1.1.0', { steps: [10, 25, 50, 100], min_samples: 300, min_step_ms: 1500, analysis_interval_ms: 200 })
  ).result();
  await sleep(1500);
  await chartLoad.stop();
  await host.flush();
  const { rows } = await db.query<{ t: string; arm: string; error_rate: number | null; p95: number | null }>(
    `SELECT floor(extract(epoch FROM created_at) * 4) / 4 AS t, arm, avg((NOT ok)::int)::float8 AS error_rate,
            percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE ok) AS p95
       FROM model_predictions WHERE model = 'chart' AND route IN ('weights', 'sticky') AND created_at >= $1
      GROUP BY 1, 2 ORDER BY 1`,
    [new Date(began - 1500)],
  );
  const series = (arm: string, key: 'error_rate' | 'p95') => ({
    name: arm,
    points: rows
      .filter((r) => r.arm === arm && r[key] !== null)
      .map((r) => [Number(r.t) - began / 1000, Number(r[key]) * (key === 'error_rate' ? 100 : 1)] as const),
  });
  const outDir = path.join(os.tmpdir(), 'agency-bench');
  await mkdir(outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const errorsSvg = path.join(outDir, `models-rollback-errors-${stamp}.svg`);
  const latencySvg = path.join(outDir, `models-rollback-latency-${stamp}.svg`);
  await writeLineChart(errorsSvg, {
    title: `Canary 1.1.0 (30% run errors) vs baseline: ${status.phase}`,
    xLabel: 'seconds since the rollout started',
    yLabel: 'error rate (%) per 250 ms',
    series: [series('baseline', 'error_rate'), series('canary', 'error_rate')],
  });
  await writeLineChart(latencySvg, {
    title: 'Canary vs baseline p95 latency over the same rollout',
    xLabel: 'seconds since the rollout started',
    yLabel: 'p95 latency (ms) per 250 ms',
    series: [series('baseline', 'p95'), series('canary', 'p95')],
  });
  const decision = status.decisions.find((d) => d.action === 'rollback');
  const lastCanary = await db.query<{ at: Date }>(
    `SELECT max(created_at) AS at FROM model_predictions WHERE model = 'chart' AND arm = 'canary' AND route = 'weights'`,
  );
  const decisionToLastCanaryMs = decision
    ? new Date(lastCanary.rows[0]!.at).getTime() - new Date(decision.at).getTime()
    : NaN;

  const f = (x: number, d = 3) => x.toFixed(d);
  const lines = [
    '',
    'bench:models — serving and canary rollouts on this machine (one run)',
    '',
    `router overhead (sequential, n=${N}): direct session median ${f(med(direct))} ms, through the router ${f(med(routed))} ms` +
      ` → +${f((med(routed) - med(direct)) * 1000, 0)} µs per request (×${f(med(routed) / med(direct), 2)})`,
    `requests per second through the router (16 callers, in process): ${f(rps, 0)}`,
    `p95 steady ${f(steadyP95)} ms, during the swap ${f(swapP95)} ms → ratio ${f(swapP95 / steadyP95, 2)}; failed requests during the swap: ${failedDuringSwap}`,
    `rollback (weight → 0) to zero canary traffic in all 3 serving processes: median ${f(med(rollbackMs), 0)} ms, max ${f(Math.max(...rollbackMs), 0)} ms (5 rollbacks)`,
    `canaryRollout of an erroring canary: ${status.phase} after ${status.steps.length} step(s) by "${decision?.reasons.join('; ') ?? '-'}";` +
      ` last canary request ${f(decisionToLastCanaryMs, 0)} ms after the decision's timestamp (negative: before it); failed requests ${chartLoad.failed}`,
    '',
    'claim                                   | ours',
    '----------------------------------------|-----------------------------------------------',
    `zero downtime                           | ${failedDuringSwap + chartLoad.failed} failed requests across the swap and the rolled-back rollout`,
    `sub-second traffic shifting             | weight changes applied in every process in ≤ ${f(Math.max(...rollbackMs), 0)} ms`,
    `rollback under 30 s                     | ${f(Math.max(...rollbackMs), 0)} ms from the weight change; decision → last canary request ${f(decisionToLastCanaryMs, 0)} ms`,
    `<1% latency increase during transitions | p95 during the swap ×${f(swapP95 / steadyP95, 2)} of steady state (${f((swapP95 / steadyP95 - 1) * 100, 1)}%)`,
    '',
    `charts: ${errorsSvg}`,
    `        ${latencySvg}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  clearInterval(keepAlive);
  const errors = await cleanup.run();
  for (const e of errors) log(`cleanup: ${e}`);
}
