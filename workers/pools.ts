/**
 * How each pool's Worker is built: its activities (or workflows), on the queue and with the concurrency of the pool
 * registry (temporal/task-queues.ts). One Worker per task queue; a process runs the pools it is given
 * (workers/main.ts, or a test).
 */
import os from 'node:os';
import path from 'node:path';
import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createAuditActivities } from '../activities/audit/index.js';
import { createBlobActivities } from '../activities/blobs/index.js';
import { createCouncilActivities } from '../activities/council/index.js';
import { createExecutionActivities } from '../activities/execution/index.js';
import { createFederationActivities } from '../activities/federation/index.js';
import { createDecryptorActivities } from '../activities/federation/decryptor.js';
import { createRoundActivities } from '../activities/federation/round.js';
import { createInferenceActivities, type OrtThread } from '../activities/inference/index.js';
import { createServingActivities, type ServingHost } from '../activities/inference/serving/index.js';
import { createValidationActivities } from '../activities/inference/validation.js';
import { createTuningActivities } from '../activities/inference/tuning/index.js';
import { createPlanningActivities } from '../activities/planning/index.js';
import { createBlobStore, useBlobStore } from '../common/blob-store/index.js';
import { PROJECT_ROOT, type Config, type Pool } from '../common/config.js';
import type { Db } from '../common/db.js';
import type { Logger } from '../common/logger.js';
import { dataConverterFromConfig } from '../temporal/codec.js';
import { POOL_QUEUES, queueFor } from '../temporal/task-queues.js';

export interface PoolDeps {
  db: Db;
  config: Config;
  ort: OrtThread;
  /** The inference pool's serving host (workers/main.ts starts it); absent: the first predictModel starts one. */
  servingHost?: ServingHost;
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
): Pick<
  WorkerOptions,
  | 'connection'
  | 'namespace'
  | 'taskQueue'
  | 'maxConcurrentActivityTaskExecutions'
  | 'shutdownGraceTime'
  | 'identity'
  | 'dataConverter'
> {
  return {
    connection: ctx.connection,
    namespace: ctx.namespace,
    taskQueue: queueFor(pool, ctx.prefix),
    // Undefined (a workflows-only pool) leaves the SDK's default.
    maxConcurrentActivityTaskExecutions: POOL_QUEUES[pool].maxConcurrentActivities,
    // In-flight activities get this long to finish on SIGTERM; then they are cancelled and the server hands them
    // to another worker once their heartbeat times out.
    shutdownGraceTime: ctx.deps.config.WORKER_SHUTDOWN_GRACE,
    identity: `${ctx.identity ?? `${process.pid}@${os.hostname()}`}/${pool}`,
    // With PAYLOAD_KEYS, every input, result and memo is encrypted with AES-256-GCM (temporal/codec.ts).
    dataConverter: dataConverterFromConfig(ctx.deps.config),
  };
}

/** Why each pool exists, and its concurrency, are in the registry (temporal/task-queues.ts). */
export const POOL_FACTORIES: Record<Pool, PoolFactory> = {
  orchestration: (ctx) =>
    Worker.create({
      ...common(ctx, 'orchestration'),
      // A prebuilt bundle (WORKFLOW_BUNDLE_PATH, see scripts/bundle-workflows.ts) starts faster and is what
      // production runs; without one, the worker bundles workflows/index.ts at start.
      ...(ctx.deps.config.WORKFLOW_BUNDLE_PATH
        ? { workflowBundle: { codePath: ctx.deps.config.WORKFLOW_BUNDLE_PATH } }
        : { workflowsPath: path.join(PROJECT_ROOT, 'workflows', 'index.ts') }),
    }),
  planning: (ctx) =>
    Worker.create({
      ...common(ctx, 'planning'),
      activities: {
        ...createPlanningActivities({ db: ctx.deps.db, config: ctx.deps.config, log: ctx.deps.log }),
        ...createAuditActivities({ db: ctx.deps.db, config: ctx.deps.config }),
        ...createBlobActivities({ db: ctx.deps.db, config: ctx.deps.config }),
      },
    }),
  council: (ctx) =>
    Worker.create({
      ...common(ctx, 'council'),
      activities: createCouncilActivities({ db: ctx.deps.db, config: ctx.deps.config, log: ctx.deps.log }),
    }),
  execution: (ctx) =>
    Worker.create({
      ...common(ctx, 'execution'),
      activities: createExecutionActivities({ db: ctx.deps.db, config: ctx.deps.config, log: ctx.deps.log }),
    }),
  inference: (ctx) =>
    Worker.create({
      ...common(ctx, 'inference'),
      activities: {
        ...createInferenceActivities(ctx.deps.ort),
        // validateModelVersion: loads a registered version in the ORT thread, checks signature, golden set, latency.
        ...createValidationActivities(ctx.deps),
        // Rollout activities and predictModel (activities/inference/serving): the process's serving host.
        ...createServingActivities({ ...ctx.deps, host: ctx.deps.servingHost }),
        // Tuning trials (one at a time per process), the optimiser, and readHostState for deferrable work.
        ...createTuningActivities({ db: ctx.deps.db }),
      },
    }),
  federation: (ctx) =>
    Worker.create({
      ...common(ctx, 'federation'),
      activities: { ...createFederationActivities(), ...createRoundActivities({ db: ctx.deps.db }) },
    }),
  // The only pool given the key directory (common/config.ts FEDERATION_KEY_DIR; activities/federation/decryptor.ts).
  decryptor: (ctx) =>
    Worker.create({
      ...common(ctx, 'decryptor'),
      activities: createDecryptorActivities({
        db: ctx.deps.db,
        keyDir: ctx.deps.config.FEDERATION_KEY_DIR ?? path.join(ctx.deps.config.AGENCY_HOME, 'federation-keys'),
      }),
    }),
};

/**
 * Creates the Workers of the given pools (not yet running). Activity pools store artifacts and blobs in the configured
 * blob store (BLOB_BACKEND), set here once for the process's database pool.
 */
export async function createPoolWorkers(ctx: PoolContext, pools: readonly Pool[]): Promise<Worker[]> {
  if (pools.some((pool) => pool !== 'orchestration')) {
    useBlobStore(ctx.deps.db, await createBlobStore(ctx.deps.config, ctx.deps.db));
  }
  return Promise.all(pools.map((pool) => POOL_FACTORIES[pool](ctx)));
}
