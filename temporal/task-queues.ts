/**
 * The task-queue registry: one queue per worker pool. Workflow-safe (no Node imports), so workflows use it too.
 *
 * A deployment may prefix every queue (TASK_QUEUE_PREFIX) to share a namespace; a workflow derives the prefix
 * from the queue it runs on, so the API, the workers and the workflows agree without passing queue names around.
 */
export const POOL_QUEUES = {
  orchestration: 'agency-orchestration', // workflows only: deterministic, no I/O
  planning: 'agency-planning', // planner and language-model calls
  council: 'agency-council', // judges
  execution: 'agency-execution', // tools in the isolated workspace, quality gates
  inference: 'agency-inference', // ONNX sessions
  federation: 'agency-federation', // local training, secure aggregation
} as const;

export type PoolName = keyof typeof POOL_QUEUES;

export function queueFor(pool: PoolName, prefix = ''): string {
  return `${prefix}${POOL_QUEUES[pool]}`;
}

/** The prefix of a queue name produced by queueFor (the orchestration queue a workflow runs on). */
export function prefixOfQueue(orchestrationQueue: string): string {
  const base = POOL_QUEUES.orchestration;
  return orchestrationQueue.endsWith(base) ? orchestrationQueue.slice(0, -base.length) : '';
}
