/**
 * A deliberately changed agentTaskWorkflow for the negative replay test: it schedules a different first activity
 * than the recorded histories, which is exactly the unpatched change that replay must catch.
 */
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { PlanningActivities } from '../../../activities/planning/index.js';
import { prefixOfQueue, queueFor } from '../../../temporal/task-queues.js';
import type { AgentTaskInput, TaskRef } from '../../../workflows/task/definitions.js';

export async function agentTaskWorkflow(input: AgentTaskInput): Promise<string> {
  const planning = proxyActivities<PlanningActivities>({
    taskQueue: queueFor('planning', prefixOfQueue(workflowInfo().taskQueue)),
    startToCloseTimeout: '1 minute',
  });
  const task: TaskRef = {
    tenantId: input.tenantId,
    taskId: input.id,
    workflowId: '',
    executionKey: '',
    correlationId: '',
  };
  const plan = await planning.planTask(task, {
    workspace: input.workspace,
    title: input.title,
    description: input.description,
  });
  return plan.kind;
}
