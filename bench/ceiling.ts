/**
 * The pipeline's ceiling: the shape of a real task (its workflows, their activities and children, in order, with
 * what ran in parallel) read from the task's Temporal histories, replayed by ceilingWorkflow with activities that do
 * nothing, on the same server, with each pool's concurrency from the registry. Pipeline throughput / ceiling
 * throughput, measured in one run, is the figure the benchmark tracks; the shape follows the pipeline as it changes.
 */
import type { Client } from '@temporalio/client';
import type proto from '@temporalio/proto';
import { type NativeConnection, Worker } from '@temporalio/worker';
import path from 'node:path';
import { PROJECT_ROOT } from '../common/config.js';
import { POOL_NAMES, POOL_QUEUES, queueFor, type PoolName } from '../temporal/task-queues.js';
import type { ShapeItem, WorkflowShape } from './ceiling.workflows.js';

type History = proto.temporal.api.history.v1.IHistory;

function poolOfQueue(queue: string): PoolName {
  const pool = POOL_NAMES.find((p) => queue.endsWith(POOL_QUEUES[p].queue));
  if (!pool) throw new Error(`task queue ${queue} belongs to no pool of the registry`);
  return pool;
}

/**
 * The shape of one workflow and, through `childHistory`, of its children. Commands issued by one workflow task
 * form a group: they ran in parallel, and the next group waited for them.
 */
export async function shapeOf(
  history: History,
  childHistory: (workflowId: string, type: string) => Promise<History>,
): Promise<WorkflowShape> {
  const events = history.events ?? [];
  const type = events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '?';
  const groups: ShapeItem[][] = [];
  let current: ShapeItem[] | undefined;
  for (const e of events) {
    if (e.workflowTaskCompletedEventAttributes) {
      current = [];
      groups.push(current);
    } else if (e.activityTaskScheduledEventAttributes) {
      const a = e.activityTaskScheduledEventAttributes;
      current?.push({ activity: a.activityType?.name ?? '?', pool: poolOfQueue(a.taskQueue?.name ?? '') });
    } else if (e.startChildWorkflowExecutionInitiatedEventAttributes) {
      const c = e.startChildWorkflowExecutionInitiatedEventAttributes;
      const childType = c.workflowType?.name ?? '?';
      current?.push({ child: await shapeOf(await childHistory(c.workflowId ?? '', childType), childHistory) });
    }
  }
  return { type, groups: groups.filter((g) => g.length > 0) };
}

/** Activities and child workflows in a shape, its children's included. */
export function countShape(shape: WorkflowShape): { activities: number; children: number; types: Set<string> } {
  const out = { activities: 0, children: 0, types: new Set<string>() };
  for (const item of shape.groups.flat()) {
    if ('activity' in item) {
      out.activities++;
      out.types.add(item.activity);
    } else {
      const inner = countShape(item.child);
      out.activities += inner.activities;
      out.children += 1 + inner.children;
      for (const t of inner.types) out.types.add(t);
    }
  }
  return out;
}

/** The shape of a task that ran on `client`'s server, from its histories and its children's. */
export async function shapeOfTask(client: Client, workflowId: string): Promise<WorkflowShape> {
  const fetch = (id: string): Promise<History> => client.workflow.getHandle(id).fetchHistory();
  return shapeOf(await fetch(workflowId), (id) => fetch(id));
}

export interface CeilingResult {
  tasks: number;
  completed: number;
  wallMs: number;
  tasksPerMin: number;
  activitiesPerTask: number;
  childrenPerTask: number;
}

/**
 * Runs `tasks` ceiling workflows of `shape` at once on workers of this process (one per pool the shape uses, with
 * the pool's concurrency; queues prefixed so they never meet the platform's), and times first start → last close.
 */
export async function runCeiling(
  client: Client,
  connection: NativeConnection,
  shape: WorkflowShape,
  tasks: number,
): Promise<CeilingResult> {
  const prefix = `ceiling-${process.pid}-`;
  const { activities, children, types } = countShape(shape);
  const noop = Object.fromEntries([...types].map((t) => [t, () => Promise.resolve(undefined)]));
  const pools = new Set<PoolName>(['orchestration']);
  const collect = (s: WorkflowShape): void =>
    s.groups.flat().forEach((i) => ('activity' in i ? pools.add(i.pool as PoolName) : collect(i.child)));
  collect(shape);
  const workers = await Promise.all(
    [...pools].map((pool) =>
      Worker.create({
        connection,
        namespace: client.options.namespace,
        taskQueue: queueFor(pool, prefix),
        ...(pool === 'orchestration'
          ? { workflowsPath: path.join(PROJECT_ROOT, 'bench', 'ceiling.workflows.ts') }
          : { activities: noop, maxConcurrentActivityTaskExecutions: POOL_QUEUES[pool].maxConcurrentActivities }),
        shutdownGraceTime: '2s',
      }),
    ),
  );
  const running = workers.map((w) => w.run());
  try {
    const began = Date.now();
    const results = await Promise.allSettled(
      Array.from({ length: tasks }, (_, i) =>
        client.workflow.execute('ceilingWorkflow', {
          taskQueue: queueFor('orchestration', prefix),
          workflowId: `${prefix}${i}`,
          args: [shape],
        }),
      ),
    );
    const wallMs = Date.now() - began;
    const completed = results.filter((r) => r.status === 'fulfilled').length;
    return {
      tasks,
      completed,
      wallMs,
      tasksPerMin: completed / (wallMs / 60_000),
      activitiesPerTask: activities,
      childrenPerTask: children,
    };
  } finally {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.allSettled(running);
  }
}
