/**
 * A deliberately changed agentTaskWorkflow for the negative replay test: it schedules a different first activity
 * than the recorded histories, which is exactly the unpatched change that replay must catch.
 */
import type { PlanningActivities } from '../../../activities/planning/index.js';
import { proxyOn } from '../../../workflows/proxy.js';
import type { AgentTaskInput, TaskRef } from '../../../workflows/task/definitions.js';

export async function agentTaskWorkflow(input: AgentTaskInput): Promise<string> {
  // Only the activity's type matters here: the one call is what the replay must reject.
  const planning = proxyOn<PlanningActivities>('planning', {
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
