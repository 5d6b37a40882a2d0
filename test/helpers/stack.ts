/**
 * Helpers that run the real platform pieces inside a test: configuration pointing at the run's Temporal server and
 * database, worker pools on per-test task queues, the API on a free port, and sample repositories.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { afterAll, beforeAll, inject } from 'vitest';
import { OrtThread } from '../../activities/inference/index.js';
import { closeToolClients } from '../../activities/execution/index.js';
import { createLazyTemporalClient, startServer, stopServer } from '../../api/server.js';
import { ALL_POOLS, loadConfig, PROJECT_ROOT, type Config, type Pool } from '../../common/config.js';
import { createDb, type Db } from '../../common/db.js';
import { createLogger, type Logger } from '../../common/logger.js';
import { createPoolWorkers } from '../../workers/pools.js';
import { dataConverterFromConfig } from '../../temporal/codec.js';
import { installRuntime } from '../../workers/runtime.js';
import { bootstrapAdminKey } from '../../scripts/bootstrap.js';
import { sampleGitRepo } from './sample-repo.js';

export const testLog = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

/**
 * The calculator sample's commands for the gates the tier policy requires (tests, coverage, mutation), each writing
 * its report into the output directory the platform names (`{out}`); samples/calculator.gates.json, which `npm run dev`
 * and the benches use too. Every test's tenants get them as their default (TENANT_GATE_COMMANDS), as an operator would
 * register them.
 */
export const CALCULATOR_GATES = JSON.parse(
  readFileSync(path.join(PROJECT_ROOT, 'samples', 'calculator.gates.json'), 'utf8'),
) as Record<'tests' | 'coverage' | 'mutation', { run: string[]; report: string }>;

/** Configuration for this test: the run's Temporal and database, a unique task-queue prefix, its own workspaces dir. */
export function testEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    TEMPORAL_NAMESPACE: 'agency',
    DATABASE_URL: inject('databaseUrl'),
    WORKFLOW_BUNDLE_PATH: inject('workflowBundlePath'),
    TASK_QUEUE_PREFIX: `t${randomUUID().slice(0, 8)}-`,
    WORKSPACES_DIR: path.join(os.tmpdir(), `agency-ws-${randomUUID().slice(0, 8)}`),
    WORKER_SHUTDOWN_GRACE: '2s',
    // Worker processes a test spawns serve no metrics port (several run at once); observability.test.ts starts its own.
    WORKER_METRICS_PORT: '0',
    // Nor a prediction port (a process running the inference pool serves one); tests that need it pick a free port.
    SERVING_PORT: '0',
    LOG_LEVEL: 'silent',
    // The tests' repositories are made under the temp directory (sampleRepo) and submitted as `workspace`: the
    // migration path, allowed here explicitly (test/api/repositories.test.ts covers registered repositories).
    LOCAL_WORKSPACE_ROOTS: JSON.stringify({ '*': [os.tmpdir()] }),
    TENANT_GATE_COMMANDS: JSON.stringify({ '*': CALCULATOR_GATES }),
    ...overrides,
  };
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig(testEnv(overrides));
}

export interface RunningWorkers {
  db: Db;
  stop(): Promise<void>;
}

/** Runs the given pools in this process on the config's task queues until stop(). */
/** `log`: where activity log lines go (the SDK's too, if this is the first runtime of the process). */
export async function startWorkers(
  config: Config,
  pools: readonly Pool[] = ALL_POOLS,
  { log = testLog }: { log?: Logger } = {},
): Promise<RunningWorkers> {
  installRuntime(log);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const db = createDb(config.DATABASE_URL);
  const ort = new OrtThread();
  const workers: Worker[] = await createPoolWorkers(
    {
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      prefix: config.TASK_QUEUE_PREFIX,
      deps: { db, config, ort, log },
    },
    pools,
  );
  const running = Promise.all(workers.map((w) => w.run()));
  return {
    db,
    async stop() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await running;
      await closeToolClients();
      await ort.close();
      await db.end();
      await connection.close();
    },
  };
}

export async function temporalClient(config: Config): Promise<Client> {
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  return new Client({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    dataConverter: dataConverterFromConfig(config),
  });
}

export interface RunningApi {
  url: string;
  /** An admin API key of the bootstrap tenant, made for this API instance. */
  key: string;
  /** The audit actor of that key: user:<key name>. */
  subject: string;
  /** fetch against this API with the admin key. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  db: Db;
  temporal: Client;
  stop(): Promise<void>;
}

export async function startApi(config: Config, { log = testLog }: { log?: Logger } = {}): Promise<RunningApi> {
  const db = createDb(config.DATABASE_URL);
  const temporal = await createLazyTemporalClient(config);
  const server: Server = await startServer({ temporal, db, config, log }, 0, '127.0.0.1');
  const { port } = server.address() as { port: number };
  const url = `http://127.0.0.1:${port}`;
  const name = `test-admin-${randomUUID().slice(0, 8)}`;
  const key = await bootstrapAdminKey(db, config.BOOTSTRAP_TENANT, name);
  return {
    url,
    key,
    subject: `user:${name}`,
    fetch: (path, init = {}) =>
      fetch(`${url}${path}`, { ...init, headers: { 'x-api-key': key, ...(init.headers as Record<string, string>) } }),
    db,
    temporal,
    async stop() {
      await stopServer(server);
      await db.end();
      await temporal.connection.close();
    },
  };
}

export interface TestStack {
  config: Config;
  workers: RunningWorkers;
  api: RunningApi;
}

export interface TestStackOptions {
  /** testConfig overrides; a function is called in beforeAll, after the hooks registered before useStack. */
  env?: Record<string, string> | (() => Record<string, string>);
  pools?: readonly Pool[];
  log?: Logger;
}

/**
 * Runs the enclosing suite (a describe block, or the file) against the real stack: in beforeAll, workers for `pools`
 * in this process, then the API, on testConfig(env), handed to `started` for the suite's own variables; in afterAll,
 * the API and then the workers stopped. Hooks the suite registers after this call run after the start (beforeAll) and
 * before the stop (afterAll).
 */
export function useStack(
  started: (stack: TestStack) => void,
  { env = {}, pools = ALL_POOLS, log = testLog }: TestStackOptions = {},
): void {
  let workers: RunningWorkers | undefined;
  let api: RunningApi | undefined;
  beforeAll(async () => {
    const config = testConfig(typeof env === 'function' ? env() : env);
    workers = await startWorkers(config, pools, { log });
    api = await startApi(config, { log });
    started({ config, workers, api });
  });
  afterAll(async () => {
    await api?.stop();
    await workers?.stop();
  });
}

/**
 * For a suite that works on the run's database directly: a pool of `size` connections, opened in beforeAll and handed
 * to `started`, closed in afterAll.
 */
export function useDb(started: (db: Db) => void, size = 4): void {
  let db: Db | undefined;
  beforeAll(() => {
    db = createDb(inject('databaseUrl'), size);
    started(db);
  });
  afterAll(async () => {
    await db?.end();
  });
}

/** A fresh git repository holding a copy of samples/<name>. */
export function sampleRepo(name = 'calculator'): Promise<string> {
  return sampleGitRepo(path.join(os.tmpdir(), `agency-sample-${name}-`), name);
}

/** Polls a condition until it returns a value (not undefined/false) or the timeout passes. */
export async function eventually<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 30_000, intervalMs = 200, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function json<T = Record<string, unknown>>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

/** Starts `workers/main.ts` as a separate process (every pool unless WORKER_QUEUES says otherwise). */
export function spawnWorkerProcess(env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'workers', 'main.ts')], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'ignore', process.env.TEST_LOG_LEVEL ? 'inherit' : 'ignore'],
  });
}

/** Kills a process without letting it clean up, as a crash or OOM kill would. */
export function killHard(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** The activity types the server shows as running for a workflow right now. */
export async function runningActivities(client: Client, workflowId: string): Promise<string[]> {
  const description = await client.workflow.getHandle(workflowId).describe();
  return (description.raw.pendingActivities ?? [])
    .filter((a) => Number(a.state) === 2) // PENDING_ACTIVITY_STATE_STARTED
    .map((a) => a.activityType?.name ?? '');
}
