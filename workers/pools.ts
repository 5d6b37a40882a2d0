/**
 * The worker-pool registry: for each pool, how its Worker is built (queue, activities, concurrency).
 * One Worker per task queue; a process runs the pools it is given (workers/main.ts, or a test).
 */
import os from 'node:os';
import path from 'node:path';
import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createAuditActivities } from '../activities/audit/index.js';
import { createCouncilActivities } from '../activities/council/index.js';
import { createExecutionActivities } from '../activities/execution/index.js';
import { createFederationActivities } from '../activities/federation/index.js';
import { createInferenceActivities, type OrtThread } from '../activities/inference/index.js';
import { createPlanningActivities } from '../activities/planning/index.js';
import { PROJECT_ROOT, type Config, type Pool } from '../common/config.js';
import type { Db } from '../common/db.js';
import type { Logger } from '../common/logger.js';
import { dataConverterFromConfig } from '../temporal/codec.js';
import { queueFor } from '../temporal/task-queues.js';

export interface PoolDeps {
  db: Db;
  config: Config;
  ort: OrtThread;
  /** Activity log lines (with each task's correlation id) go here; silent when not given. */
  log?: Logger;
}

export interface PoolContext {
  connection: NativeConnection;
  namespace: string;
  prefix: string;
  deps: PoolDeps;
  /** Identity shown in the Web UI's worker list. */
  identity?: string;
}

type PoolFactory = (ctx: PoolContext) => Promise<Worker>;

function common(
  ctx: PoolContext,
  pool: Pool,
): Pick<WorkerOptions, 'connection' | 'namespace' | 'taskQueue' | 'shutdownGraceTime' | 'identity' | 'dataConverter'> {
  return {
    connection: ctx.connection,
    namespace: ctx.namespace,
    taskQueue: queueFor(pool, ctx.prefix),
    // In-flight activities get this long to finish on SIGTERM; then they are cancelled and the server hands them
    // to another worker once their heartbeat times out.
    shutdownGraceTime: ctx.deps.config.WORKER_SHUTDOWN_GRACE,
    identity: `${ctx.identity ?? `${process.pid}@${os.hostname()}`}/${pool}`,
    // With PAYLOAD_KEYS, every input, result and memo is encrypted with AES-256-GCM (temporal/codec.ts).
    dataConverter: dataConverterFromConfig(ctx.deps.config),
  };
}

export const POOL_FACTORIES: Record<Pool, PoolFactory> = {
  // Workflows only: deterministic code, no activities, no I/O.
  orchestration: (ctx) =>
    Worker.create({
      ...common(ctx, 'orchestration'),
      // A prebuilt bundle (WORKFLOW_BUNDLE_PATH, see scripts/bundle-workflows.ts) starts faster and is what
      // production runs; without one, the worker bundles workflows/index.ts at start.
      ...(ctx.deps.config.WORKFLOW_BUNDLE_PATH
        ? { workflowBundle: { codePath: ctx.deps.config.WORKFLOW_BUNDLE_PATH } }
        : { workflowsPath: path.join(PROJECT_ROOT, 'workflows', 'index.ts') }),
    }),
  // Planner and model calls: mostly waiting on I/O.
  planning: (ctx) =>
    Worker.create({
      ...common(ctx, 'planning'),
      activities: {
        ...createPlanningActivities({ db: ctx.deps.db, config: ctx.deps.config, log: ctx.deps.log }),
        ...createAuditActivities({ db: ctx.deps.db, config: ctx.deps.config }),
      },
      maxConcurrentActivityTaskExecutions: 20,
    }),
  // Judges: rules are CPU-light; model judges wait on I/O.
  council: (ctx) =>
    Worker.create({
      ...common(ctx, 'council'),
      activities: createCouncilActivities({ db: ctx.deps.db, config: ctx.deps.config, log: ctx.deps.log }),
      maxConcurrentActivityTaskExecutions: 20,
    }),
  // Steps and gates run real programs: bounded by the machine's cores.
  execution: (ctx) =>
    Worker.create({
      ...common(ctx, 'execution'),
      activities: createExecutionActivities({ db: ctx.deps.db, config: ctx.deps.config, log: ctx.deps.log }),
      maxConcurrentActivityTaskExecutions: 4,
    }),
  // ONNX sessions in one worker thread per process.
  inference: (ctx) =>
    Worker.create({
      ...common(ctx, 'inference'),
      activities: createInferenceActivities(ctx.deps.ort),
      maxConcurrentActivityTaskExecutions: 4,
    }),
  // Local training and aggregation are CPU-bound.
  federation: (ctx) =>
    Worker.create({
      ...common(ctx, 'federation'),
      activities: createFederationActivities(),
      maxConcurrentActivityTaskExecutions: 2,
    }),
};

/** Creates the Workers of the given pools (not yet running). */
export async function createPoolWorkers(ctx: PoolContext, pools: readonly Pool[]): Promise<Worker[]> {
  return Promise.all(pools.map((pool) => POOL_FACTORIES[pool](ctx)));
}
