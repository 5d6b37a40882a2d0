/**
 * The benchmark: one run measures, on this machine, what the product documents claim.
 *
 *   node --import tsx bench/run.ts [--tasks 34] [--idle-tasks 10] [--council-runs 10] [--seed 42] [--poll-ms 1000]
 *                                  [--timeout-s 180]
 *   npm run bench -- --tasks 10
 *
 * 1. Load: its own Temporal dev server, a scratch database, every worker pool in one child process (workers/main.ts),
 *    the API in another (api/server.ts); N tasks posted concurrently, each on a fresh copy of samples/calculator,
 *    followed to a final state over HTTP. Throughput, end-to-end latency, POST/GET latency, and where the time went (histories).
 *    Then the ceiling (bench/ceiling.ts): the shape of the first idle task, read from its histories, run N times at
 *    once with no-op activities on the same server; the pipeline's throughput as a ratio of it is the tracked figure.
 *    The idle tasks, one after another before the load (after one warm-up task, not counted), also give the idle POST
 *    latency the load's is compared with. Between them, Temporal alone: single starts and a burst of N starts on the
 *    same server (bench/starts.ts), the floor under the burst's POSTs; and the CPU each process took during the burst.
 * 2. Council: the real councilDeliberationWorkflow on the sample's diff, K times (offline judges); its parallelism is
 *    the sum of its judges' run times over its wall time, read from each session's history.
 * Prints "metric | measured here | product claim" and writes every raw figure as JSON to the OS temp dir.
 * Exit code 0 when everything ran and every task completed; 1 otherwise (the table is still printed).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { PROJECT_ROOT } from '../common/config.js';
import { runRealCouncil, type RealCouncilRun } from './council.js';
import { collectSpans, type Spans } from './history.js';
import { runCeiling, shapeOfTask, type CeilingResult } from './ceiling.js';
import { cpuByRole, cpuSnapshot } from './cpu.js';
import { councilSessionDurations, runLoad, type LoadResult } from './load.js';
import { singleStarts, startBurst } from './starts.js';
import { Cleanup, sampleFixDiff, sampleRepo, sampleRepos, startBenchStack, type BenchStack } from './stack.js';
import { mean, quantile, summarize } from './stats.js';

/** The pipeline's throughput as a share of its ceiling: the goal the benchmark reports (not a test). */
const CEILING_GOAL = 0.75;
/** POST p95 under the load within this factor of its p95 on the idle stack. */
const POST_GOAL = 3;

const CLAIMS = {
  tasksPerMin: 33.7,
  concurrentTasks: 34,
  postP95Ms: 500,
  councilSpeedup: 3,
};

const { values: args } = parseArgs({
  options: {
    tasks: { type: 'string', default: '34' },
    'idle-tasks': { type: 'string', default: '10' },
    'council-runs': { type: 'string', default: '10' },
    seed: { type: 'string', default: '42' },
    'poll-ms': { type: 'string', default: '1000' },
    'timeout-s': { type: 'string', default: '180' },
  },
  strict: true,
});
const int = (name: keyof typeof args, min: number): number => {
  const v = Number(args[name]);
  if (!Number.isInteger(v) || v < min) throw new Error(`--${name} must be an integer >= ${min} (got ${args[name]})`);
  return v;
};
const opts = {
  tasks: int('tasks', 1),
  idleTasks: int('idle-tasks', 1),
  councilRuns: int('council-runs', 1),
  seed: int('seed', 0),
  pollMs: int('poll-ms', 50),
  timeoutS: int('timeout-s', 1),
};

const outDir = path.join(os.tmpdir(), 'agency-bench');
const began = performance.now();
const progress = (line: string): void =>
  void process.stderr.write(`[bench +${((performance.now() - began) / 1000).toFixed(1)}s] ${line}\n`);

const loadAvg = (): number[] => os.loadavg().map((l) => Math.round(l * 100) / 100);
const machine = {
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? 'unknown',
  memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
  loadAvgAtStart: loadAvg(),
  node: process.version,
  platform: `${os.platform()} ${os.release()} ${os.arch()}`,
};

/** Which code was measured: the workers bundle the working tree as it is when they start. */
async function codeRevision(): Promise<string> {
  const git = async (...a: string[]) => (await promisify(execFile)('git', a, { cwd: PROJECT_ROOT })).stdout.trim();
  try {
    const head = await git('rev-parse', '--short', 'HEAD');
    const dirty = (await git('status', '--porcelain', '--', ...PLATFORM_DIRS)).split('\n').filter(Boolean).length;
    return dirty ? `${head} + ${dirty} uncommitted file(s) in ${PLATFORM_DIRS.join(', ')}` : `${head} (clean)`;
  } catch {
    return 'unknown (not a git checkout?)';
  }
}
const PLATFORM_DIRS = ['workflows', 'activities', 'workers', 'api', 'common', 'temporal'];
const revision = await codeRevision();

const ms = (v: number): string => (Number.isFinite(v) ? `${Math.round(v)} ms` : 'n/a');
const sec = (v: number): string => (Number.isFinite(v) ? `${(v / 1000).toFixed(1)} s` : 'n/a');
const x = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}x` : 'n/a');

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n');
}

const problems: string[] = [];
const cleanup = new Cleanup();
cleanup.stopOnSignals(progress);

let stack: BenchStack | undefined;
let baseline: LoadResult | undefined;
let load: LoadResult | undefined;
let loadSessionsMs: number[] = [];
let spans: Spans | undefined;
let realCouncil: RealCouncilRun[] = [];
let ceiling: CeilingResult | undefined;
/** Temporal alone on the same server: single starts, and a burst of N starts at once (bench/starts.ts). */
let starts: { single: number[]; burst: number[] } | undefined;
/** CPU by process from the first POST of the burst to its last answer (bench/cpu.ts). */
let burstCpu: { wallMs: number; byRole: Record<string, number> } | undefined;

try {
  await mkdir(outDir, { recursive: true });
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'agency-bench-samples-'));
  cleanup.defer('remove sample repositories', () => rm(scratch, { recursive: true, force: true }));

  stack = await startBenchStack(
    {
      adminUrl: process.env.BENCH_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
      logDir: path.join(outDir, 'logs'),
      progress,
    },
    cleanup,
  );
  progress(
    `stack up in ${sec(stack.startupMs)}: Temporal ${stack.temporalAddress}, API ${stack.apiUrl}, workers pid ${stack.workerPid}`,
  );

  progress(
    `baseline: a warm-up task, then ${opts.idleTasks} tasks one after another on the idle stack (not counted in the load figures)`,
  );
  // The warm-up's POST is the API's first (lazy imports, JIT, new connections): not what an idle stack answers.
  for (let i = -1; i < opts.idleTasks; i++) {
    const one = await runLoad({
      apiUrl: stack.apiUrl,
      apiKey: stack.apiKey,
      workspaces: [await sampleRepo(scratch)],
      pollMs: Math.min(opts.pollMs, 250),
      timeoutMs: opts.timeoutS * 1000,
      client: stack.client,
    });
    if (i >= 0) baseline = baseline ? { ...baseline, samples: [...baseline.samples, ...one.samples] } : one;
  }

  progress(`preparing ${opts.tasks} sample repositories (not timed)`);
  const workspaces = await sampleRepos(scratch, opts.tasks);

  progress(`Temporal alone: ${opts.idleTasks} single starts, then ${opts.tasks} at once (no API, no worker)`);
  starts = {
    single: await singleStarts(stack.client, opts.idleTasks, `bench-start-single-${process.pid}`),
    burst: await startBurst(stack.client, opts.tasks, `bench-start-burst-${process.pid}`),
  };
  await new Promise((r) => setTimeout(r, 2_000)); // let the terminations settle before the load

  progress(
    `load: posting ${opts.tasks} tasks concurrently, polling each every ${opts.pollMs} ms (deadline ${opts.timeoutS} s)`,
  );
  const roles = { api: stack.apiPid, workers: stack.workerPid, temporal: stack.temporalPid, bench: process.pid };
  const burstBegan = { at: performance.now(), cpu: cpuSnapshot() };
  load = await runLoad({
    apiUrl: stack.apiUrl,
    apiKey: stack.apiKey,
    workspaces,
    pollMs: opts.pollMs,
    timeoutMs: opts.timeoutS * 1000,
    client: stack.client,
    onAllPosted: () => {
      burstCpu = {
        wallMs: performance.now() - burstBegan.at,
        byRole: cpuByRole(burstBegan.cpu, cpuSnapshot(), roles),
      };
    },
  });
  const done = load.samples.filter((s) => s.status === 'completed').length;
  progress(`load: ${done}/${opts.tasks} completed`);

  progress('reading the histories of the tasks and their children');
  const ended = load.samples.filter((s) => s.workflowId);
  spans = await collectSpans(
    stack.client,
    ended.map((s) => s.workflowId!),
  );
  loadSessionsMs = await councilSessionDurations(
    stack.client,
    load.samples.flatMap((s) => s.councilSessions),
  );

  const shapeTask = baseline?.samples.find((s) => s.status === 'completed' && s.workflowId);
  if (shapeTask?.workflowId) {
    const shape = await shapeOfTask(stack.client, shapeTask.workflowId);
    progress(`ceiling: the shape of ${shapeTask.workflowId}, ${opts.tasks} at once, no-op activities`);
    ceiling = await runCeiling(stack.client, stack.nativeConnection, shape, opts.tasks);
  } else problems.push('ceiling: no idle task completed, so there is no shape to measure');

  progress(`real councilDeliberationWorkflow on the sample's diff, ${opts.councilRuns} runs (offline judges)`);
  const diff = await sampleFixDiff(scratch);
  const specYaml = await readFile(
    path.join(PROJECT_ROOT, 'samples', 'calculator', '.caws', 'working-spec.yaml'),
    'utf8',
  );
  realCouncil = await runRealCouncil(stack.apiUrl, stack.client, {
    runs: opts.councilRuns,
    diff,
    specYaml,
    apiKey: stack.apiKey,
  });
} catch (err) {
  problems.push(`the bench stopped: ${(err as Error).stack ?? String(err)}`);
} finally {
  for (const e of await cleanup.finish(progress)) problems.push(`cleanup: ${e}`);
}

// ---- figures ------------------------------------------------------------------------------------------------------
const samples = load?.samples ?? [];
const completed = samples.filter((s) => s.status === 'completed');
const failed = samples.filter((s) => s.status === 'failed' || s.status === 'canceled');
const unfinished = samples.filter((s) => !['completed', 'failed', 'canceled'].includes(s.status));
const firstSubmit = load?.firstSubmitAt ?? Number.NaN;
const lastCompletion = Math.max(...completed.map((s) => s.closedAt ?? Number.NaN));
const wallMs = completed.length ? lastCompletion - firstSubmit : Number.NaN;
const tasksPerMin = completed.length && wallMs > 0 ? completed.length / (wallMs / 60_000) : Number.NaN;
const e2e = summarize(completed.map((s) => s.e2eMs ?? Number.NaN).filter(Number.isFinite));
const post = summarize(samples.map((s) => s.postMs));
const get = summarize(samples.flatMap((s) => s.getMs));
const sessions = summarize(loadSessionsMs);
const realOk = realCouncil.filter((r) => r.workflowMs !== undefined);
const real = summarize(realOk.map((r) => r.workflowMs!));
const realHttp = summarize(realOk.map((r) => r.httpMs));
/** Sum of the judges' run times over the session's wall time, per real session. */
const realParallelism = summarize(
  realOk.map((r) => (r.judgeRunMs ?? []).reduce((a, b) => a + b, 0) / r.workflowMs!).filter(Number.isFinite),
);

const verdicts = samples.flatMap((s) => s.verdicts);
const extraRounds = verdicts.filter((v) => v.rounds > 1).length;
const uncertainVotes = verdicts.reduce((a, v) => a + v.uncertainVotes, 0);
const idlePost = summarize((baseline?.samples ?? []).map((s) => s.postMs));
const idleE2e = summarize((baseline?.samples ?? []).map((s) => s.e2eMs ?? Number.NaN).filter(Number.isFinite));
const ceilingRatio = ceiling ? tasksPerMin / ceiling.tasksPerMin : Number.NaN;
const postRatio = post.p95 / idlePost.p95;
const applyStep = spans?.byType.applyStep;
/** Where the POST's time went (Server-Timing): p95 of each phase, under the burst and on the idle stack. */
const POST_PHASES = ['pre', 'source', 'keys', 'start', 'total'] as const;
const phaseP95 = (list: { postPhases?: Record<string, number> }[], phase: string) =>
  quantile(list.map((s) => s.postPhases?.[phase] ?? Number.NaN).filter(Number.isFinite), 0.95);
const startsSingle = summarize(starts?.single ?? []);
const startsBurst = summarize(starts?.burst ?? []);
/** CPU the burst took outside the API (Temporal, workers, PostgreSQL, this client, the rest), in ms. */
const burstCpuRest = Object.entries(burstCpu?.byRole ?? {})
  .filter(([role]) => role !== 'api')
  .reduce((sum, [, used]) => sum + used, 0);
const postPhases = POST_PHASES.map((phase) => ({
  phase,
  load: phaseP95(samples, phase),
  idle: phaseP95(baseline?.samples ?? [], phase),
}));
for (const s of [...(baseline?.samples ?? []), ...samples]) {
  if (s.postStatus !== 202) problems.push(`task ${s.index + 1}: ${s.error}`);
  else if (s.status !== 'completed')
    problems.push(`task ${s.id}: ${s.status}${s.reason ? ` (${s.reason})` : ''}${s.error ? `: ${s.error}` : ''}`);
}
for (const r of realCouncil) if (r.error) problems.push(`real council: ${r.error}`);

const rows: string[][] = [
  [
    'Tasks submitted concurrently (POST at once)',
    `${samples.length}: ${completed.length} completed, ${failed.length} failed, ${unfinished.length} unfinished`,
    `${CLAIMS.concurrentTasks} concurrent tasks`,
  ],
  [
    'Throughput (completed / first submit→last completion)',
    `${Number.isFinite(tasksPerMin) ? tasksPerMin.toFixed(1) : 'n/a'} tasks/min (${x(tasksPerMin / CLAIMS.tasksPerMin)} the claim), wall ${sec(wallMs)}`,
    `${CLAIMS.tasksPerMin} tasks/min`,
  ],
  [
    'Task end-to-end p50 / p95 / max (POST→workflow closed)',
    `${sec(e2e.p50)} / ${sec(e2e.p95)} / ${sec(e2e.max)}`,
    '-',
  ],
  [
    `Ceiling: same shape, no-op activities, ${ceiling?.tasks ?? '?'} at once (${ceiling?.activitiesPerTask ?? '?'} activities, ${ceiling?.childrenPerTask ?? '?'} children per task)`,
    ceiling ? `${ceiling.tasksPerMin.toFixed(1)} tasks/min, wall ${sec(ceiling.wallMs)}` : 'n/a',
    '-',
  ],
  [
    'Pipeline throughput / ceiling (the tracked ratio)',
    `${Number.isFinite(ceilingRatio) ? ceilingRatio.toFixed(2) : 'n/a'} -> ${ceilingRatio >= CEILING_GOAL ? 'meets' : 'misses'} the goal >= ${CEILING_GOAL}`,
    '-',
  ],
  [
    `Idle tasks, one at a time, end-to-end p50 (${idleE2e.n})`,
    `${sec(idleE2e.p50)} (load p50 is ${x(e2e.p50 / idleE2e.p50)} that)`,
    '-',
  ],
  [
    `POST /api/v1/tasks p95 under load / idle p95 (${idlePost.n} idle)`,
    `${ms(post.p95)} / ${ms(idlePost.p95)} = ${x(postRatio)} -> ${postRatio <= POST_GOAL ? 'meets' : 'misses'} the goal <= ${POST_GOAL}x`,
    '-',
  ],
  [
    'POST phases p95, burst / idle (Server-Timing: pre = auth + parsing, source, keys, start = StartWorkflowExecution)',
    postPhases.map((p) => `${p.phase} ${ms(p.load)} / ${ms(p.idle)}`).join('; '),
    '-',
  ],
  [
    `Temporal alone on the same server: one start p50 (${startsSingle.n}); ${startsBurst.n} at once p95`,
    `${ms(startsSingle.p50)}; ${ms(startsBurst.p95)} = ${x(startsBurst.p95 / idlePost.p95)} the idle POST p95 (the POST burst's floor: each POST is one start)`,
    '-',
  ],
  [
    `CPU from the first POST to the last answer (${ms(burstCpu?.wallMs ?? Number.NaN)} wall, ${machine.cpus} cores)`,
    burstCpu
      ? `${Object.entries(burstCpu.byRole)
          .map(([role, used]) => `${role} ${ms(used)}`)
          .join(', ')}; API per POST ${ms((burstCpu.byRole.api ?? 0) / samples.length)}; ` +
        `the other processes' share alone keeps all ${machine.cpus} cores busy ${ms(burstCpuRest / machine.cpus)} = ` +
        `${x(burstCpuRest / machine.cpus / idlePost.p95)} the idle POST p95`
      : 'not measured (no /proc)',
    '-',
  ],
  [
    `applyStep run p50 / p95 under load (${applyStep?.runMs.length ?? 0}); queue wait p50`,
    applyStep
      ? `${ms(quantile(applyStep.runMs, 0.5))} / ${ms(quantile(applyStep.runMs, 0.95))}; ${ms(quantile(applyStep.waitMs, 0.5))}`
      : 'n/a',
    '-',
  ],
  [
    `POST /api/v1/tasks p50 / p95 / max (${post.n} concurrent)`,
    `${ms(post.p50)} / ${ms(post.p95)} / ${ms(post.max)} -> ${post.p95 < CLAIMS.postP95Ms ? 'meets' : 'misses'} p95 < ${CLAIMS.postP95Ms} ms`,
    `p95 < ${CLAIMS.postP95Ms} ms`,
  ],
  [`GET /api/v1/tasks/:id p50 / p95 under load (${get.n} polls)`, `${ms(get.p50)} / ${ms(get.p95)}`, '-'],
  [`Council sessions inside the tasks p50 / p95 (${sessions.n})`, `${ms(sessions.p50)} / ${ms(sessions.p95)}`, '-'],
  [
    'Council sessions in the load: >1 voting round / uncertain votes',
    `${extraRounds} of ${verdicts.length} sessions / ${uncertainVotes} of ${verdicts.length * 4} votes`,
    '-',
  ],
  [
    `Real councilDeliberation, idle, offline judges mean / p95 (${real.n})`,
    `${ms(real.mean)} / ${ms(real.p95)} (POST /council/review ${ms(realHttp.mean)} mean)`,
    '-',
  ],
  [
    'Real councilDeliberation: judges run time summed / wall time (mean; its parallel speed-up)',
    x(realParallelism.mean),
    `${CLAIMS.councilSpeedup}x`,
  ],
];

const spanRows = Object.entries(spans?.byType ?? {})
  .sort((a, b) => mean(b[1].runMs) * b[1].runMs.length - mean(a[1].runMs) * a[1].runMs.length)
  .map(([type, s]) => [
    type,
    String(s.runMs.length),
    `${ms(quantile(s.waitMs, 0.5))} / ${ms(quantile(s.waitMs, 0.95))}`,
    `${ms(quantile(s.runMs, 0.5))} / ${ms(quantile(s.runMs, 0.95))}`,
  ]);

const out: string[] = [];
out.push('');
out.push(`Agent Agency benchmark — ${new Date().toISOString()}`);
out.push(
  `machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memGiB} GiB, node ${machine.node}, ${machine.platform}, load avg (1/5/15 min) at start ${machine.loadAvgAtStart.join(' ')}, at end ${loadAvg().join(' ')}`,
);
out.push(
  `setup: Temporal dev server (headless, SQLite) + PostgreSQL scratch DB; all six worker pools in one child process (workers/main.ts); API in its own child process (api/server.ts); LLM_PROVIDER=offline; COUNCIL_CONSENSUS_TIMEOUT ${stack?.config.COUNCIL_CONSENSUS_TIMEOUT ?? '?'} ms`,
);
out.push(`code measured: ${revision}`);
out.push('percentiles by linear interpolation');
out.push('');
out.push(table(['metric', 'measured here', 'product claim'], rows));
if (spanRows.length) {
  out.push('');
  out.push(
    `where the time went in the load phase (${spans?.workflows} workflow histories; wait = scheduled→started, run = started→completed):`,
  );
  out.push(table(['activity type', 'n', 'queue wait p50 / p95', 'run p50 / p95'], spanRows));
}
const jsonPath = path.join(outDir, 'latest.json');
const raw = {
  at: new Date().toISOString(),
  options: opts,
  machine,
  revision,
  claims: CLAIMS,
  stack: stack && { temporalAddress: stack.temporalAddress, startupMs: stack.startupMs, logDir: stack.logDir },
  baseline: baseline?.samples,
  ceiling: ceiling && { ...ceiling, ratio: ceilingRatio, goal: CEILING_GOAL },
  post: { idle: idlePost, load: post, ratio: postRatio, goal: POST_GOAL, phases: postPhases, burstCpu },
  temporalStarts: starts && { single: startsSingle, burst: startsBurst, raw: starts },
  load: {
    firstSubmitAt: firstSubmit,
    lastCompletionAt: lastCompletion,
    wallMs,
    tasksPerMin,
    completed: completed.length,
    failed: failed.length,
    unfinished: unfinished.length,
    e2eMs: e2e,
    postMs: post,
    getMs: get,
    councilSessionsMs: { summary: sessions, values: loadSessionsMs },
    samples,
  },
  spans:
    spans &&
    Object.fromEntries(
      Object.entries(spans.byType).map(([k, v]) => [k, { wait: summarize(v.waitMs), run: summarize(v.runMs) }]),
    ),
  realCouncil: { summary: real, http: realHttp, parallelism: realParallelism, runs: realCouncil },
  problems,
};
try {
  await writeFile(jsonPath, JSON.stringify(raw, null, 2));
  out.push('');
  out.push(`raw figures: ${jsonPath}; logs: ${path.join(outDir, 'logs')}`);
} catch (err) {
  problems.push(`could not write ${jsonPath}: ${(err as Error).message}`);
}
if (problems.length) {
  out.push('');
  out.push(`PROBLEMS (${problems.length}):`);
  for (const p of problems.slice(0, 20)) out.push(`  - ${p}`);
  if (problems.length > 20) out.push(`  … and ${problems.length - 20} more in ${jsonPath}`);
}
process.stdout.write(`${out.join('\n')}\n`);
process.exitCode = problems.length ? 1 : 0;
