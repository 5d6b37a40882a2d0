/**
 * Activities and children on a pool's queue, from inside a workflow: the queue carries the TASK_QUEUE_PREFIX of the
 * orchestration queue the workflow runs on (temporal/task-queues.ts), so no queue name is passed around.
 */
import {
  proxyActivities,
  workflowInfo,
  type ActivityInterfaceFor,
  type ActivityProxyOptions,
} from '@temporalio/workflow';
import { prefixOfQueue, queueFor, type PoolName } from '../temporal/task-queues.js';

/** The task queue of `pool` in this workflow's deployment (for activities, or a child's `taskQueue`). */
export function queueOf(pool: PoolName): string {
  return queueFor(pool, prefixOfQueue(workflowInfo().taskQueue));
}

/** proxyActivities on `pool`'s queue: `options` are everything but the queue (say why its timeouts and retries). */
export function proxyOn<A>(
  pool: PoolName,
  options: Omit<ActivityProxyOptions<A>, 'taskQueue'>,
): ActivityInterfaceFor<A> {
  return proxyActivities<A>({ ...options, taskQueue: queueOf(pool) });
}
