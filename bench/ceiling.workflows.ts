/**
 * Bench-only (bundled by the ceiling's worker, never by the platform's): a task's shape with no work in it. Each
 * group of a workflow's commands starts together and is awaited together; activities are no-ops of the same names on
 * the same pools' queues (prefixed), children are ceilingWorkflows of their own shapes.
 */
import { executeChild, workflowInfo } from '@temporalio/workflow';
import type { PoolName } from '../temporal/task-queues.js';
import { proxyOn } from '../workflows/proxy.js';

export type ShapeItem = { activity: string; pool: string } | { child: WorkflowShape };
export interface WorkflowShape {
  /** The real workflow's type, for reading. */
  type: string;
  groups: ShapeItem[][];
}

type Noop = Record<string, () => Promise<unknown>>;

export async function ceilingWorkflow(shape: WorkflowShape): Promise<void> {
  const proxies = new Map<string, Noop>();
  const on = (pool: string): Noop => {
    if (!proxies.has(pool)) proxies.set(pool, proxyOn<Noop>(pool as PoolName, { startToCloseTimeout: '1 minute' }));
    return proxies.get(pool)!;
  };
  const { workflowId } = workflowInfo();
  for (const [g, group] of shape.groups.entries()) {
    await Promise.all(
      group.map((item, i) =>
        'activity' in item
          ? on(item.pool)[item.activity]!()
          : executeChild(ceilingWorkflow, { args: [item.child], workflowId: `${workflowId}/${g}.${i}` }),
      ),
    );
  }
}
