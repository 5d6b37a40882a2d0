/**
 * The platform as the benchmark runs it: its own headless Temporal dev server on a free port (state in a temp dir),
 * a scratch database agency_bench_<pid> (dropped at the end), every worker pool (or StackOptions.pools) in ONE child
 * process running workers/main.ts (as `npm run worker` does), the API in another child process (api/server.ts) on a free
 * port, so that neither shares an event loop with the bench's client, and a bench worker in-process on its own task
 * queue for the council bench.
 *
 * Everything started is registered with a Cleanup and stopped in reverse order, also when start-up fails half-way.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { NativeConnection } from '@temporalio/worker';
import pg from 'pg';
import { pino, type Logger } from 'pino';
import { bootstrapAdminKey } from '../scripts/bootstrap.js';
import { ALL_POOLS, loadConfig, PROJECT_ROOT, type Config, type Pool } from '../common/config.js';
import { createDb, migrate } from '../common/db.js';
import { startDevServer } from '../temporal/dev-server.js';
import { queueFor } from '../temporal/task-queues.js';
import { freePort } from '../test/helpers/ports.js';
import { sampleGitRepo } from '../test/helpers/sample-repo.js';
import { installRuntime } from '../workers/runtime.js';

const run = promisify(execFile);
const { TaskQueueType, TaskQueueKind } = proto.temporal.api.enums.v1;

/** Stops what was started, last first; collects errors instead of stopping at the first. */
export class Cleanup {
  private readonly steps: { name: string; fn: () => Promise<unknown> }[] = [];
  private closed = false;
  /** Whether a signal began the clean-up (stopOnSignals): the steps are running or have run. */
  private interrupted = false;
  /** Registers a stop step; once run() has begun (a signal during start-up), the step runs at once instead. */
  defer(name: string, fn: () => Promise<unknown>): void {
    if (this.closed) void fn().catch(() => undefined);
    else this.steps.push({ name, fn });
  }
  async run(): Promise<string[]> {
    this.closed = true;
    const errors: string[] = [];
    while (this.steps.length) {
      const step = this.steps.pop()!;
      try {
        await step.fn();
      } catch (err) {
        errors.push(`${step.name}: ${(err as Error).message}`);
      }
    }
    return errors;
  }
  /** On SIGINT or SIGTERM: says so through `progress`, runs the stop steps and exits with 130. */
  stopOnSignals(progress: (line: string) => void): void {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        this.interrupted = true;
        progress(`${signal}: stopping what the bench started`);
        void this.run().finally(() => process.exit(130));
      });
    }
  }
  /** At the end of a run: the stop steps, unless a signal already ran them; returns what failed. */
  finish(progress: (line: string) => void): Promise<string[]> {
    if (this.interrupted) return Promise.resolve([]);
    progress('stopping the API, workers, Temporal; dropping the database');
    return this.run();
  }
}

export interface BenchStack {
  temporalAddress: string;
  databaseUrl: string;
  config: Config;
  apiUrl: string;
  /** An admin API key of the bootstrap tenant, made for this run. */
  apiKey: string;
  /** A client of the bench's own (not the API's), for describes and histories. */
  client: Client;
  /** A worker connection of the bench's own (the ceiling's workers use it). */
  nativeConnection: NativeConnection;
  workerPid: number;
  /** The API's process (api/server.ts) and the Temporal dev server's, for CPU accounting (bench/cpu.ts). */
  apiPid: number;
  temporalPid: number | undefined;
  /** The environment the worker child runs with, for more worker processes of the same stack (bench/survival.ts). */
  workerEnv: Record<string, string>;
  logDir: string;
  startupMs: number;
}

export interface StackOptions {
  adminUrl: string;
  logDir: string;
  progress: (line: string) => void;
  /** The pools the worker child runs (WORKER_QUEUES); every pool by default. */
  pools?: readonly Pool[];
  /** Added to the workers' and the API's environment (e.g. shorter hand-over timeouts). */
  env?: Record<string, string>;
}

export function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function tail(file: string, chars = 3000): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).slice(-chars);
}

/**
 * Waits until each of `pools` polls its queue (the server lists it as a poller); with `pid`, a poller of that process
 * (worker identity `<pid>@host/<pool>`), since the server keeps listing a killed worker's pollers for a while.
 */
export async function waitForPollers(
  client: Client,
  child: ChildProcess,
  logFile: string,
  { pools = ALL_POOLS, pid, timeoutMs = 180_000 }: { pools?: readonly Pool[]; pid?: number; timeoutMs?: number } = {},
) {
  const queues = pools.map((pool) => ({
    name: queueFor(pool, ''),
    type: pool === 'orchestration' ? TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  }));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`the worker process exited during start-up; its log ends with:\n${await tail(logFile)}`);
    const polled = await Promise.all(
      queues.map(async (q) => {
        const res = await client.workflowService.describeTaskQueue({
          namespace: client.options.namespace,
          taskQueue: { name: q.name, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
          taskQueueType: q.type,
        });
        return pid === undefined ? res.pollers.length > 0 : res.pollers.some((p) => p.identity?.startsWith(`${pid}@`));
      }),
    );
    if (polled.every(Boolean)) return;
    if (Date.now() > deadline)
      throw new Error(`the worker process did not poll ${pools.join(', ')} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A bench's scratch database, named for this process: its admin URL, name, URL, and how to drop it. */
export function scratchDatabase(
  kind: string,
  adminUrl = process.env.BENCH_DATABASE_ADMIN_URL ??
    process.env.TEST_DATABASE_ADMIN_URL ??
    'postgres://postgres@127.0.0.1:5432/postgres',
) {
  const name = `agency_bench_${kind}_${process.pid}`;
  const url = adminUrl.replace(/\/[^/]*$/, `/${name}`);
  return { adminUrl, name, url, drop: () => dropDatabase(adminUrl, name) };
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

/** `node --import tsx <script>` with `env` (and PATH, HOME), its stdout and stderr into `logFile`. */
async function spawnLogged(script: string, logFile: string, env: Record<string, string>): Promise<ChildProcess> {
  const logHandle = await open(logFile, 'w');
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', logHandle.fd, logHandle.fd],
  });
  await logHandle.close();
  return child;
}

/** SIGTERM, then SIGKILL after 20 s. */
async function stopChild(child: ChildProcess): Promise<void> {
  child.kill('SIGTERM');
  if (!(await waitExit(child, 20_000))) {
    child.kill('SIGKILL');
    await waitExit(child, 5_000);
  }
}

/** Waits until the API answers GET /health (or its process exits). */
async function waitForHealth(apiUrl: string, child: ChildProcess, logFile: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`the API process exited during start-up; its log ends with:\n${await tail(logFile)}`);
    const ok = await fetch(`${apiUrl}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`the API did not answer ${apiUrl}/health within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function startBenchStack(opts: StackOptions, cleanup: Cleanup): Promise<BenchStack> {
  const began = performance.now();
  const { progress, logDir } = opts;
  await mkdir(logDir, { recursive: true });
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'agency-bench-state-'));
  cleanup.defer('remove state dir', () => rm(stateDir, { recursive: true, force: true }));

  progress('starting a headless Temporal dev server on a free port');
  const server = await startDevServer({ port: await freePort(), ui: false, namespace: 'agency', stateDir });
  cleanup.defer('stop Temporal dev server', () => server.stop());

  const dbName = `agency_bench_${process.pid}`;
  const databaseUrl = new URL(opts.adminUrl);
  databaseUrl.pathname = `/${dbName}`;
  progress(`creating and migrating database ${dbName}`);
  await dropDatabase(opts.adminUrl, dbName);
  cleanup.defer(`drop database ${dbName}`, () => dropDatabase(opts.adminUrl, dbName));
  await migrate(databaseUrl.toString());

  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: server.address,
    TEMPORAL_NAMESPACE: 'agency',
    DATABASE_URL: databaseUrl.toString(),
    AGENCY_HOME: path.join(stateDir, 'home'),
    WORKSPACES_DIR: path.join(stateDir, 'workspaces'),
    WORKER_SHUTDOWN_GRACE: '2s',
    LOG_LEVEL: 'warn',
    // The bench submits sample repositories made under the temp directory as `workspace` (the migration path).
    LOCAL_WORKSPACE_ROOTS: JSON.stringify({ '*': [os.tmpdir()] }),
    // The sample's commands for the gates the tier policy requires, as the tenant's default.
    TENANT_GATE_COMMANDS: JSON.stringify({
      '*': JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'samples', 'calculator.gates.json'), 'utf8')) as unknown,
    }),
    ...(opts.pools ? { WORKER_QUEUES: opts.pools.join(',') } : {}),
    ...opts.env,
  };
  const config = loadConfig(env);
  const pools = opts.pools ?? ALL_POOLS;

  progress(
    `starting ${opts.pools ? `the pools ${pools.join(', ')}` : 'every worker pool'} in one child process (workers/main.ts)`,
  );
  const workerLog = path.join(logDir, 'workers.log');
  const child = await spawnLogged(path.join(PROJECT_ROOT, 'workers', 'main.ts'), workerLog, env);
  cleanup.defer('stop worker process', () => stopChild(child));

  const clientConnection = await Connection.connect({ address: server.address });
  cleanup.defer('close bench client', () => clientConnection.close());
  const client = new Client({ connection: clientConnection, namespace: 'agency' });

  // The ceiling's worker (bench/ceiling.ts) runs in this process on this connection.
  const sdkLog: Logger = pino({ level: 'warn' }, pino.destination({ dest: path.join(logDir, 'bench-sdk.log') }));
  installRuntime(sdkLog);
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  cleanup.defer('close bench worker connection', () => nativeConnection.close());
  await waitForPollers(client, child, workerLog, { pools });

  // The API in its own process, as deployed: the bench's client (34 fetches, polling) must not share its event loop.
  const apiPort = await freePort();
  progress(`starting the API in a child process (api/server.ts) on port ${apiPort}`);
  const apiLog = path.join(logDir, 'api.log');
  const api = await spawnLogged(path.join(PROJECT_ROOT, 'api', 'server.ts'), apiLog, {
    ...env,
    API_PORT: String(apiPort),
    API_HOST: '127.0.0.1',
  });
  cleanup.defer('stop API process', () => stopChild(api));
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  await waitForHealth(apiUrl, api, apiLog);
  const db = createDb(config.DATABASE_URL, 2);
  cleanup.defer('close bench database pool', () => db.end());
  const apiKey = await bootstrapAdminKey(db, config.BOOTSTRAP_TENANT, `bench-${process.pid}`);

  return {
    temporalAddress: server.address,
    databaseUrl: databaseUrl.toString(),
    config,
    apiUrl,
    apiKey,
    client,
    nativeConnection,
    workerPid: child.pid ?? -1,
    apiPid: api.pid ?? -1,
    temporalPid: server.pid,
    workerEnv: env,
    logDir,
    startupMs: performance.now() - began,
  };
}

/** `n` sample repositories under `parent`, made four at a time. */
export async function sampleRepos(parent: string, n: number): Promise<string[]> {
  const repos: string[] = [];
  for (let i = 0; i < n; i += 4) {
    repos.push(...(await Promise.all(Array.from({ length: Math.min(4, n - i) }, () => sampleRepo(parent)))));
  }
  return repos;
}

/** A fresh git repository under `parent` holding a copy of samples/<name>. */
export function sampleRepo(parent: string, name = 'calculator'): Promise<string> {
  return sampleGitRepo(path.join(parent, `${name}-`), name, { name: 'bench', email: 'bench@example.com' });
}

/** The sample's fix as a unified diff, made by git in a scratch copy: the diff the result-phase council judges. */
export async function sampleFixDiff(parent: string): Promise<string> {
  const dir = await sampleRepo(parent);
  const file = path.join(dir, 'src', 'calculator.js');
  const before = await readFile(file, 'utf8');
  const after = before.replace('return sum(values) / (values.length - 1);', 'return sum(values) / values.length;');
  if (after === before) throw new Error('samples/calculator no longer contains the line its spec fixes');
  await writeFile(file, after);
  const { stdout } = await run('git', ['diff'], { cwd: dir });
  return stdout;
}
