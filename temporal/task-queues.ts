/**
 * The worker-pool registry: every pool once, with its task queue, why it is a pool of its own and how many activities
 * one of its workers runs at a time. Workflow-safe (no Node imports), so workflows use it too (workflows/proxy.ts);
 * common/config.ts (WORKER_QUEUES) and workers/pools.ts (one Worker per pool) take their pool lists from it.
 *
 * A deployment may prefix every queue (TASK_QUEUE_PREFIX) to share a namespace; a workflow derives the prefix
 * from the queue it runs on, so the API, the workers and the workflows agree without passing queue names around.
 */
export interface PoolSpec {
  /** The task queue, before TASK_QUEUE_PREFIX. */
  readonly queue: string;
  /** Why the pool exists: what runs on it and what bounds it. */
  readonly reason: string;
  /** A worker's maxConcurrentActivityTaskExecutions; absent for a workflows-only pool (the SDK default). */
  readonly maxConcurrentActivities?: number;
}

const POOL_SPECS = {
  orchestration: {
    queue: 'agency-orchestration',
    reason: 'workflows only: deterministic code, no activities, no I/O',
  },
  planning: {
    queue: 'agency-planning',
    reason: 'planner and language-model calls: mostly waiting on I/O',
    maxConcurrentActivities: 20,
  },
  council: {
    queue: 'agency-council',
    reason: 'judges: rules are CPU-light; model judges wait on I/O',
    maxConcurrentActivities: 20,
  },
  execution: {
    queue: 'agency-execution',
    reason: "tools in the isolated workspace and quality gates run real programs: bounded by the machine's cores",
    maxConcurrentActivities: 4,
  },
  inference: {
    queue: 'agency-inference',
    reason: 'ONNX sessions, in one worker thread per process',
    maxConcurrentActivities: 4,
  },
  federation: {
    queue: 'agency-federation',
    reason: 'local training and secure aggregation: CPU-bound',
    maxConcurrentActivities: 2,
  },
  decryptor: {
    queue: 'agency-federation-decryptor',
    reason: "decrypts recorded CKKS aggregates of federation rounds: the only pool that reads campaigns' secret keys",
    maxConcurrentActivities: 2,
  },
} satisfies Record<string, PoolSpec>;

export type PoolName = keyof typeof POOL_SPECS;

export const POOL_QUEUES: Readonly<Record<PoolName, PoolSpec>> = POOL_SPECS;

/** Every pool, in registry order. */
export const POOL_NAMES = Object.keys(POOL_SPECS) as readonly PoolName[];

export function queueFor(pool: PoolName, prefix = ''): string {
  return `${prefix}${POOL_QUEUES[pool].queue}`;
}

/** The prefix of a queue name produced by queueFor (the orchestration queue a workflow runs on). */
export function prefixOfQueue(orchestrationQueue: string): string {
  const base = POOL_QUEUES.orchestration.queue;
  return orchestrationQueue.endsWith(base) ? orchestrationQueue.slice(0, -base.length) : '';
}
