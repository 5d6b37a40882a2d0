/**
 * Survival: do execution workers that share no disk, one of them SIGKILLed mid-run, change what tasks end with?
 * Re-runs the measurement of issue 12 ("30 demo tasks while a worker process was SIGKILLed three times").
 *
 *   npm run bench:survival
 *   SURVIVAL_TASKS=4 SURVIVAL_KILLS=1 npm run bench:survival
 *
 * The stack (bench/stack.ts): its own Temporal dev server, a scratch database, the API in this process, every pool but
 * `execution` in one worker child, and the execution pool in TWO worker children, each in its own mount namespace
 * with a private tmpfs at the same WORKSPACES_DIR (test/helpers/private-worker.ts): neither sees the other's
 * workspaces, as two pods with their own emptyDir. Needs root (mount) and util-linux `unshare`.
 *
 * N demo tasks (samples/calculator, mode strict by default) are posted at once through the API and followed over HTTP;
 * the bench approves each plan with its hash, as the demo does (bench/load.ts). Meanwhile it SIGKILLs an execution
 * worker K times, mid-task: each time, of the workers that hold a workspace on their disk (read through
 * /proc/<pid>/root), the one running the most execution activities right now (the server's pending activities, by
 * worker identity); when none does within SURVIVAL_KILL_WAIT_S, the one holding the most workspaces. Each killed
 * process is replaced at once by a fresh private-disk process (an empty tmpfs).
 *
 * Without a crash every demo task completes, so a task that does not complete is a changed decision. Printed: tasks
 * completed, failed (of them rejected by the council), canceled, waiting for a person, unfinished; changed decisions;
 * council escalations the bench approved; steps recorded as applied more than once; the kills; wall time. Run with
 * SURVIVAL_KILLS=0 to check the no-crash baseline on this machine. Raw figures: <tmpdir>/agency-bench/survival-<time>.json.
 * Exit code 0 when everything ran, every kill happened and no decision changed; 1 otherwise.
 *
 * Environment (defaults):
 *   SURVIVAL_TASKS=30          tasks posted at once
 *   SURVIVAL_KILLS=3           SIGKILLs of an execution worker process
 *   SURVIVAL_FIRST_KILL_S=0    earliest first kill, seconds after the tasks are posted
 *   SURVIVAL_KILL_GAP_S=8      at least this long between kills (and never before the last one's replacement polls)
 *   SURVIVAL_KILL_WAIT_S=60    how long a kill waits for a worker that runs an execution activity before killing anyway
 *   SURVIVAL_MODE=strict       the tasks' mode (strict | auto)
 *   SURVIVAL_TIMEOUT_S=900     deadline for all tasks, from the POSTs
 *   SURVIVAL_POLL_MS=1000      GET interval per task
 *   SURVIVAL_TMPFS_SIZE=1g     size limit of each execution worker's tmpfs
 *   SURVIVAL_WORKER_ENV=       extra environment for the workers and the API, "NAME=value,NAME=value"
 *                              (e.g. EXECUTION_HANDOVER_TIMEOUT=2s,COUNCIL_JUDGE_HANDOVER=1s)
 *   BENCH_DATABASE_ADMIN_URL   postgres://postgres@127.0.0.1:5432/postgres
 */
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import pg from 'pg';
import { ALL_POOLS, PROJECT_ROOT, type Pool } from '../common/config.js';
import { privateDiskSupport, spawnPrivateWorker } from '../test/helpers/private-worker.js';
import { runLoad, type LoadResult, type TaskSample } from './load.js';
import { Cleanup, sampleRepos, startBenchStack, waitExit, waitForPollers, type BenchStack } from './stack.js';

// ---- options ------------------------------------------------------------------------------------------------------
function intEnv(name: string, def: number, min: number): number {
  const raw = process.env[name];
  const v = raw === undefined || raw === '' ? def : Number(raw);
  if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min} (got ${raw})`);
  return v;
}
function extraEnv(raw = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of raw.split(',').filter((p) => p.trim())) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`SURVIVAL_WORKER_ENV: expected NAME=value, got "${pair}"`);
    out[pair.slice(0, eq).trim()] = pair.slice(eq + 1);
  }
  return out;
}
const mode = (['strict', 'auto'] as const).find((m) => m === (process.env.SURVIVAL_MODE || 'strict'));
if (!mode) throw new Error(`SURVIVAL_MODE must be strict or auto (got ${process.env.SURVIVAL_MODE})`);
const opts = {
  tasks: intEnv('SURVIVAL_TASKS', 30, 1),
  kills: intEnv('SURVIVAL_KILLS', 3, 0),
  firstKillS: intEnv('SURVIVAL_FIRST_KILL_S', 0, 0),
  killGapS: intEnv('SURVIVAL_KILL_GAP_S', 8, 0),
  killWaitS: intEnv('SURVIVAL_KILL_WAIT_S', 60, 0),
  timeoutS: intEnv('SURVIVAL_TIMEOUT_S', 900, 1),
  pollMs: intEnv('SURVIVAL_POLL_MS', 1000, 50),
  mode,
  tmpfsSize: process.env.SURVIVAL_TMPFS_SIZE || '1g',
  workerEnv: extraEnv(process.env.SURVIVAL_WORKER_ENV),
};
const adminUrl = process.env.BENCH_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const outDir = path.join(os.tmpdir(), 'agency-bench');
const logDir = path.join(outDir, 'survival-logs');
const began = performance.now();
const progress = (line: string): void =>
  void process.stderr.write(`[survival +${((performance.now() - began) / 1000).toFixed(1)}s] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const disk = privateDiskSupport();
if (!disk.ok) {
  process.stderr.write(
    `bench:survival needs worker processes with a private disk, and cannot make one: ${disk.reason}\n`,
  );
  process.exit(2);
}

/** Which code was measured: the workers run the working tree as it is when they start. */
async function codeRevision(): Promise<string> {
  const git = async (...a: string[]) => (await promisify(execFile)('git', a, { cwd: PROJECT_ROOT })).stdout.trim();
  try {
    const head = await git('rev-parse', '--short', 'HEAD');
    const dirs = ['workflows', 'activities', 'workers', 'api', 'common', 'temporal'];
    const dirty = (await git('status', '--porcelain', '--', ...dirs)).split('\n').filter(Boolean).length;
    return dirty ? `${head} + ${dirty} uncommitted file(s) in ${dirs.join(', ')}` : `${head} (clean)`;
  } catch {
    return 'unknown (not a git checkout?)';
  }
}
const revision = await codeRevision();

// ---- execution workers with private disks --------------------------------------------------------------------------
interface ExecWorker {
  slot: number;
  generation: number;
  child: ChildProcess;
  pid: number;
  logFile: string;
  startedAt: number;
  readyMs?: number;
}

interface Kill {
  n: number;
  /** Seconds after the POSTs. */
  atS: number;
  slot: number;
  pid: number;
  why:
    | 'holds workspaces and runs execution activities'
    | 'none did within the wait: the worker holding the most workspaces';
  /** The execution activities this process had started when it was killed. */
  activities: { workflowId: string; type: string; attempt: number }[];
  /** Entries under its WORKSPACES_DIR (its private tmpfs) when it was killed; undefined when unreadable. */
  workspacesHeld?: number;
  replacementPid?: number;
  /** Kill to the replacement polling agency-execution. */
  replacementReadyS?: number;
  replacementError?: string;
}

const cleanup = new Cleanup();
cleanup.stopOnSignals(progress);

const problems: string[] = [];
const workers: (ExecWorker | undefined)[] = [undefined, undefined];
const everyWorker: ExecWorker[] = [];
const kills: Kill[] = [];
let stack: BenchStack | undefined;
let load: LoadResult | undefined;
let postedAt = Number.NaN;
let loadEndedAt = Number.NaN;
let duplicateSteps: { workflowId: string; subject: string; n: number }[] = [];
/** Activities still pending when the load ended (tasks left unfinished): what they wait on, and their last failure. */
let pendingAtEnd: { workflowId: string; type: string; state: string; attempt: number; lastFailure?: string }[] = [];
let generation = 0;

async function startExecWorker(s: BenchStack, slot: number): Promise<ExecWorker> {
  const gen = ++generation;
  const logFile = path.join(logDir, `execution-${slot}-${gen}.log`);
  const log = await open(logFile, 'w');
  const child = spawnPrivateWorker(
    { ...s.workerEnv, WORKER_QUEUES: 'execution', WORKER_METRICS_PORT: '0' },
    { stdio: ['ignore', log.fd, log.fd], size: opts.tmpfsSize },
  );
  await log.close();
  const w: ExecWorker = { slot, generation: gen, child, pid: child.pid ?? -1, logFile, startedAt: performance.now() };
  everyWorker.push(w);
  workers[slot] = w;
  cleanup.defer(`stop execution worker ${w.pid}`, async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    if (!(await waitExit(child, 20_000))) {
      child.kill('SIGKILL');
      await waitExit(child, 5_000);
    }
  });
  await waitForPollers(s.client, child, logFile, { pools: ['execution'], pid: w.pid, timeoutMs: 120_000 });
  w.readyMs = performance.now() - w.startedAt;
  return w;
}

/** Execution activities each worker process has started right now, from the server's view of running workflows. */
async function startedActivitiesByPid(client: Client): Promise<Map<number, Kill['activities']>> {
  const ids: string[] = [];
  for await (const wf of client.workflow.list({ query: 'ExecutionStatus="Running"' })) ids.push(wf.workflowId);
  const byPid = new Map<number, Kill['activities']>();
  for (let i = 0; i < ids.length; i += 8) {
    await Promise.all(
      ids.slice(i, i + 8).map(async (workflowId) => {
        const d = await client.workflow
          .getHandle(workflowId)
          .describe()
          .catch(() => undefined);
        for (const a of d?.raw.pendingActivities ?? []) {
          if (Number(a.state) !== 2) continue; // PENDING_ACTIVITY_STATE_STARTED
          const m = /^(\d+)@.*\/execution$/.exec(a.lastWorkerIdentity ?? '');
          if (!m) continue;
          const pid = Number(m[1]);
          if (!byPid.has(pid)) byPid.set(pid, []);
          byPid.get(pid)!.push({ workflowId, type: a.activityType?.name ?? '?', attempt: a.attempt ?? 1 });
        }
      }),
    );
  }
  return byPid;
}

async function workspacesHeld(w: ExecWorker, dir: string): Promise<number | undefined> {
  // The worker's own view of its tmpfs (its mount namespace, through /proc): the bench process's view is empty.
  return readdir(`/proc/${w.pid}/root${dir}`)
    .then((entries) => entries.length)
    .catch(() => undefined);
}

async function killLoop(s: BenchStack, loadDone: () => boolean): Promise<void> {
  const dir = s.workerEnv.WORKSPACES_DIR!;
  let earliest = postedAt + opts.firstKillS * 1000;
  for (let n = 1; n <= opts.kills; n++) {
    while (performance.now() < earliest && !loadDone()) await sleep(250);
    const waitUntil = performance.now() + opts.killWaitS * 1000;
    let victim: ExecWorker | undefined;
    let activities: Kill['activities'];
    let why: Kill['why'] = 'holds workspaces and runs execution activities';
    for (;;) {
      if (loadDone()) {
        problems.push(`kill ${n} of ${opts.kills} did not happen: every task had ended`);
        return;
      }
      const byPid = await startedActivitiesByPid(s.client).catch((err: unknown) => {
        progress(`could not read running activities: ${(err as Error).message}`);
        return new Map<number, Kill['activities']>();
      });
      const live = await Promise.all(
        workers
          .filter((w): w is ExecWorker => !!w)
          .map(async (w) => ({ w, held: (await workspacesHeld(w, dir)) ?? 0, acts: byPid.get(w.pid) ?? [] })),
      );
      const busiest = live.filter((c) => c.held > 0).sort((a, b) => b.acts.length - a.acts.length)[0];
      if (busiest && busiest.acts.length > 0) {
        victim = busiest.w;
        activities = busiest.acts;
        break;
      }
      if (performance.now() > waitUntil) {
        why = 'none did within the wait: the worker holding the most workspaces';
        const most = live.sort((a, b) => b.held - a.held)[0];
        victim = most?.w;
        activities = most?.acts ?? [];
        break;
      }
      await sleep(500);
    }
    if (!victim) {
      problems.push(`kill ${n}: no execution worker to kill`);
      return;
    }
    const held = await workspacesHeld(victim, dir);
    const kill: Kill = {
      n,
      atS: (performance.now() - postedAt) / 1000,
      slot: victim.slot,
      pid: victim.pid,
      why,
      activities,
      workspacesHeld: held,
    };
    victim.child.kill('SIGKILL');
    await waitExit(victim.child, 10_000);
    kills.push(kill);
    workers[victim.slot] = undefined;
    progress(
      `kill ${n}/${opts.kills}: SIGKILL execution worker pid ${victim.pid} (slot ${victim.slot}) at +${kill.atS.toFixed(1)} s, ` +
        `${activities.length} execution activities running${activities.length ? ` (${summarizeTypes(activities)})` : ''}, ` +
        `${held ?? '?'} workspace entries on its disk`,
    );
    const killedAt = performance.now();
    try {
      const fresh = await startExecWorker(s, victim.slot);
      kill.replacementPid = fresh.pid;
      kill.replacementReadyS = (performance.now() - killedAt) / 1000;
      progress(`replacement execution worker pid ${fresh.pid} polls after ${kill.replacementReadyS.toFixed(1)} s`);
    } catch (err) {
      kill.replacementError = (err as Error).message;
      problems.push(`kill ${n}: the replacement worker did not start: ${kill.replacementError}`);
    }
    earliest = killedAt + opts.killGapS * 1000;
  }
}

function summarizeTypes(acts: Kill['activities']): string {
  const counts = new Map<string, number>();
  for (const a of acts) counts.set(a.type, (counts.get(a.type) ?? 0) + 1);
  return [...counts].map(([t, c]) => `${c}x ${t}`).join(', ');
}

async function pendingActivities(client: Client): Promise<typeof pendingAtEnd> {
  const out: typeof pendingAtEnd = [];
  for await (const wf of client.workflow.list({ query: 'ExecutionStatus="Running"' })) {
    const d = await client.workflow.getHandle(wf.workflowId).describe();
    for (const a of d.raw.pendingActivities ?? []) {
      out.push({
        workflowId: wf.workflowId,
        type: a.activityType?.name ?? '?',
        state: ['?', 'scheduled', 'started', 'cancel requested', 'paused', 'pause requested'][Number(a.state)] ?? '?',
        attempt: a.attempt ?? 1,
        ...(a.lastFailure?.message ? { lastFailure: a.lastFailure.message.replace(/\s+/g, ' ').slice(0, 200) } : {}),
      });
    }
  }
  return out;
}

/** Steps PostgreSQL's audit trail records as applied more than once for one task (each should be once). */
async function stepsAppliedTwice(databaseUrl: string, workflowIds: string[]) {
  if (!workflowIds.length) return [];
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query<{ workflow_id: string; subject: string; n: string }>(
      `SELECT workflow_id, subject, count(*) AS n FROM audit_events
        WHERE workflow_id = ANY($1) AND action = 'step.applied' GROUP BY workflow_id, subject HAVING count(*) > 1`,
      [workflowIds],
    );
    return rows.map((r) => ({ workflowId: r.workflow_id, subject: r.subject, n: Number(r.n) }));
  } finally {
    await db.end();
  }
}

// ---- the run ------------------------------------------------------------------------------------------------------
try {
  await mkdir(logDir, { recursive: true });
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'agency-survival-samples-'));
  cleanup.defer('remove sample repositories', () => rm(scratch, { recursive: true, force: true }));

  const otherPools: Pool[] = ALL_POOLS.filter((p) => p !== 'execution');
  stack = await startBenchStack(
    {
      adminUrl,
      logDir,
      progress,
      pools: otherPools,
      // N tasks polled every SURVIVAL_POLL_MS through one key: above the API's default 600 a minute, GETs would be
      // answered 429 and a task's end seen late. The rate limit is not what this bench measures.
      env: { RATE_LIMIT_PER_MINUTE: '1000000', ...opts.workerEnv },
    },
    cleanup,
  );
  progress(`stack up: Temporal ${stack.temporalAddress}, API ${stack.apiUrl}, other pools in pid ${stack.workerPid}`);
  const s = stack;
  progress(`starting two execution workers, each with a private tmpfs at ${s.workerEnv.WORKSPACES_DIR}`);
  await Promise.all([startExecWorker(s, 0), startExecWorker(s, 1)]);
  progress(`execution workers poll: pids ${workers.map((w) => w?.pid).join(', ')}`);

  progress(`preparing ${opts.tasks} sample repositories (not timed)`);
  const workspaces = await sampleRepos(scratch, opts.tasks);

  progress(
    `posting ${opts.tasks} demo tasks (mode ${opts.mode}) at once; ${opts.kills} kill(s) of an execution worker ahead`,
  );
  let done = false;
  postedAt = performance.now();
  const loading = runLoad({
    apiUrl: s.apiUrl,
    apiKey: s.apiKey,
    workspaces,
    pollMs: opts.pollMs,
    timeoutMs: opts.timeoutS * 1000,
    client: s.client,
    mode: opts.mode,
    approve: true,
    title: (i) => `Survival task ${i + 1}: fix average()`,
  }).finally(() => {
    done = true;
    loadEndedAt = performance.now();
  });
  const killing = killLoop(s, () => done);
  load = await loading;
  await killing.catch((err: unknown) => problems.push(`the kill loop stopped: ${(err as Error).stack ?? String(err)}`));
  progress(`every task ended or the deadline passed after ${((loadEndedAt - postedAt) / 1000).toFixed(1)} s`);
  if (load.samples.some((t) => t.postStatus === 202 && !['completed', 'failed', 'canceled'].includes(t.status))) {
    pendingAtEnd = await pendingActivities(s.client).catch((err: unknown) => {
      problems.push(`could not read the pending activities: ${(err as Error).message}`);
      return [];
    });
  }
  duplicateSteps = await stepsAppliedTwice(
    s.databaseUrl,
    load.samples.flatMap((t) => (t.workflowId ? [t.workflowId] : [])),
  ).catch((err: unknown) => {
    problems.push(`could not read the audit trail: ${(err as Error).message}`);
    return [];
  });
} catch (err) {
  problems.push(`the bench stopped: ${(err as Error).stack ?? String(err)}`);
} finally {
  for (const e of await cleanup.finish(progress)) problems.push(`cleanup: ${e}`);
}

// ---- figures ------------------------------------------------------------------------------------------------------
const samples: TaskSample[] = load?.samples ?? [];
const is = (status: string) => samples.filter((t) => t.status === status && !t.error);
const completed = is('completed');
const failed = is('failed');
const canceled = is('canceled');
const rejectedByCouncil = failed.filter(
  (t) => /the council rejected/.test(t.reason ?? '') || t.verdicts.some((v) => v.decision === 'reject'),
);
const waitingForPerson = samples.filter((t) => t.error?.startsWith('waiting for a person'));
const notSubmitted = samples.filter((t) => t.postStatus !== 202);
const unfinished = samples.filter(
  (t) => t.postStatus === 202 && ![completed, failed, canceled, waitingForPerson].some((group) => group.includes(t)),
);
for (const t of notSubmitted) problems.push(`task ${t.index + 1} was not submitted: ${t.error}`);
// Every demo task completes when nothing is killed: any other end is a decision the crash changed.
const changed = samples.filter((t) => !completed.includes(t));
const escalated = samples.filter((t) =>
  t.approvals.some((a) => a.reasons.some((r) => r.startsWith('the council could not decide'))),
);
const wallS = (loadEndedAt - postedAt) / 1000;
const firstSubmit = Math.min(...samples.map((t) => t.submittedAt));
const ended = samples.filter((t) => t.closedAt !== undefined);
// Server close times: polling only detects an end, so these do not depend on the poll interval.
const lastClosedS = ended.length ? (Math.max(...ended.map((t) => t.closedAt!)) - firstSubmit) / 1000 : Number.NaN;
const lastCompletedS = completed.length
  ? (Math.max(...completed.map((t) => t.closedAt ?? Number.NaN)) - firstSubmit) / 1000
  : Number.NaN;
const getErrors = samples.reduce((a, t) => a + t.getErrors.length, 0);
if (getErrors) {
  const first = samples.find((t) => t.getErrors.length)?.getErrors[0]?.slice(0, 160);
  problems.push(`${getErrors} GETs failed while following the tasks (first: ${first})`);
}
if (kills.length < opts.kills && !problems.some((p) => p.startsWith('kill')))
  problems.push(`${kills.length} of ${opts.kills} kills happened`);

/** Failure reasons, grouped (with long paths and hashes cut so that the same cause groups together). */
const reasons = new Map<string, number>();
for (const t of changed) {
  const why = (t.reason ?? t.error ?? t.status).replace(/\s+/g, ' ').slice(0, 200);
  reasons.set(`${t.status}: ${why}`, (reasons.get(`${t.status}: ${why}`) ?? 0) + 1);
}

const out: string[] = [];
const line = (k: string, v: string | number) => out.push(`${k.padEnd(44)} ${v}`);
out.push('');
out.push(`Agent Agency survival bench — ${new Date().toISOString()}`);
out.push(
  `machine: ${os.cpus().length} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}, load avg ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
out.push(`code measured: ${revision}`);
out.push(
  `setup: 2 execution worker processes, each a private tmpfs at the same WORKSPACES_DIR (no shared disk); other pools ` +
    `in one process; API in the bench; ${opts.tasks} demo tasks, mode ${opts.mode}, plans approved by the bench; ` +
    `${opts.kills} SIGKILL(s) of an execution worker${Object.keys(opts.workerEnv).length ? `; extra env ${JSON.stringify(opts.workerEnv)}` : ''}`,
);
out.push('');
line('tasks', samples.length);
line('completed', completed.length);
line('failed', failed.length);
line('  of them rejected by the council', rejectedByCouncil.length);
line('canceled', canceled.length);
line('waiting for a person (not approved by the bench)', waitingForPerson.length);
line('unfinished (deadline, stuck) / not submitted', `${unfinished.length} / ${notSubmitted.length}`);
line('changed decisions (not completed)', `${changed.length} of ${samples.length}`);
line('council escalations the bench approved', escalated.length);
line('steps recorded as applied more than once', duplicateSteps.length);
line('kills (SIGKILL of an execution worker)', `${kills.length} of ${opts.kills}`);
const secs = (v: number) => (Number.isFinite(v) ? `${v.toFixed(1)} s` : 'n/a');
line('wall time (first POST to last task closed)', secs(lastClosedS));
line('  first POST to last task completed', secs(lastCompletedS));
line('  POSTs to the bench seeing every end', secs(wallS));
line('bench wall time (start-up to now)', `${((performance.now() - began) / 1000).toFixed(1)} s`);
if (kills.length) {
  out.push('');
  out.push('kills:');
  for (const k of kills) {
    out.push(
      `  ${k.n}. +${k.atS.toFixed(1)} s pid ${k.pid} (slot ${k.slot}): ${k.why}; ${k.activities.length} running` +
        `${k.activities.length ? ` (${summarizeTypes(k.activities)})` : ''}; ${k.workspacesHeld ?? '?'} workspace entries; ` +
        (k.replacementPid
          ? `replaced by pid ${k.replacementPid}, polling after ${k.replacementReadyS?.toFixed(1)} s`
          : `not replaced: ${k.replacementError ?? 'unknown'}`),
    );
  }
}
if (reasons.size) {
  out.push('');
  out.push('why tasks did not complete:');
  for (const [why, n] of [...reasons].sort((a, b) => b[1] - a[1])) out.push(`  ${n}x ${why}`);
}
if (pendingAtEnd.length) {
  out.push('');
  out.push('activities still pending when the load ended:');
  for (const a of pendingAtEnd.slice(0, 20)) {
    out.push(
      `  ${a.workflowId} ${a.type}: ${a.state}, attempt ${a.attempt}${a.lastFailure ? `, last failure: ${a.lastFailure}` : ''}`,
    );
  }
  if (pendingAtEnd.length > 20) out.push(`  … and ${pendingAtEnd.length - 20} more (in the JSON)`);
}
if (duplicateSteps.length) {
  out.push('');
  out.push('steps applied more than once (audit step.applied):');
  for (const d of duplicateSteps) out.push(`  ${d.workflowId} ${d.subject}: ${d.n}x`);
}

const jsonPath = path.join(outDir, `survival-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
try {
  await mkdir(outDir, { recursive: true });
  await writeFile(
    jsonPath,
    JSON.stringify(
      {
        at: new Date().toISOString(),
        options: opts,
        revision,
        machine: { cpus: os.cpus().length, loadAvg: os.loadavg(), node: process.version },
        counts: {
          tasks: samples.length,
          completed: completed.length,
          failed: failed.length,
          rejectedByCouncil: rejectedByCouncil.length,
          canceled: canceled.length,
          waitingForPerson: waitingForPerson.length,
          unfinished: unfinished.length,
          notSubmitted: notSubmitted.length,
          changedDecisions: changed.length,
          escalationsApproved: escalated.length,
          stepsAppliedTwice: duplicateSteps.length,
          kills: kills.length,
        },
        wallS: { lastClosed: lastClosedS, lastCompleted: lastCompletedS, followed: wallS },
        kills,
        executionWorkers: everyWorker.map((w) => ({
          slot: w.slot,
          generation: w.generation,
          pid: w.pid,
          logFile: w.logFile,
          readyMs: w.readyMs,
        })),
        duplicateSteps,
        pendingAtEnd,
        reasons: Object.fromEntries(reasons),
        samples,
        problems,
      },
      null,
      2,
    ),
  );
  out.push('');
  out.push(`raw figures: ${jsonPath}; logs: ${logDir}`);
} catch (err) {
  problems.push(`could not write ${jsonPath}: ${(err as Error).message}`);
}
if (problems.length) {
  out.push('');
  out.push('problems:');
  for (const p of problems) out.push(`  - ${p}`);
}
process.stdout.write(`${out.join('\n')}\n`);
process.exit(problems.length === 0 && changed.length === 0 && samples.length === opts.tasks ? 0 : 1);
