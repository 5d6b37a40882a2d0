/**
 * Task routes: validate with the workflow's contract, then start / describe / query / cancel the agentTask workflow.
 * No business logic here: what a task does lives in workflows/task.
 */
import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import { agentTaskWorkflow } from '../../workflows/index.js';
import {
  progressQuery,
  TaskIdSchema,
  TaskRequestSchema,
  taskWorkflowId,
  type AgentTaskInput,
  type TaskProgress,
  type TaskResult,
} from '../../workflows/task/definitions.js';
import { TaskStatusKey, TenantKey } from '../../temporal/search-attributes.js';
import { queueFor } from '../../temporal/task-queues.js';
import type { AppDeps } from '../app.js';
import { conflict, HttpProblem, notFound, validationProblem } from '../errors.js';
import { principalOf } from '../principal.js';

export function taskRoutes({ temporal, config }: AppDeps): Router {
  const router = Router();
  const webUiLink = (workflowId: string): string =>
    `${config.TEMPORAL_UI_URL}/namespaces/${encodeURIComponent(config.TEMPORAL_NAMESPACE)}/workflows/${encodeURIComponent(workflowId)}`;

  /** The task's workflow, if it exists and belongs to the caller's tenant (another tenant's task is a 404). */
  async function describeOwned(
    rawId: string,
    tenantId: string,
  ): Promise<{ id: string; description: WorkflowExecutionDescription }> {
    const parsed = TaskIdSchema.safeParse(rawId);
    if (!parsed.success) throw validationProblem(parsed.error, 'params');
    const id = parsed.data;
    try {
      const description = await temporal.workflow.getHandle(taskWorkflowId(id)).describe();
      if (description.type !== agentTaskWorkflow.name || description.memo?.tenantId !== tenantId)
        throw notFound(`no task ${id}`);
      return { id, description };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw notFound(`no task ${id}`);
      throw err;
    }
  }

  router.post('/api/v1/tasks', async (req, res) => {
    const principal = principalOf(res);
    const parsed = TaskRequestSchema.safeParse(req.body ?? {});
    if (!parsed.success) throw validationProblem(parsed.error);
    const request = parsed.data;
    const id = request.id ?? randomUUID();
    const input: AgentTaskInput = {
      ...request,
      id,
      tenantId: principal.tenantId,
      submittedBy: principal.subject,
      correlationId: res.locals.correlationId as string,
    };
    const workflowId = taskWorkflowId(id);
    try {
      const handle = await temporal.workflow.start(agentTaskWorkflow, {
        args: [input],
        workflowId,
        taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
        memo: { tenantId: principal.tenantId, title: request.title },
        typedSearchAttributes: [
          { key: TenantKey, value: principal.tenantId },
          { key: TaskStatusKey, value: 'pending' },
        ],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      });
      res
        .status(202)
        .location(`/api/v1/tasks/${encodeURIComponent(id)}`)
        .json({ id, workflowId, runId: handle.firstExecutionRunId, status: 'pending', webUi: webUiLink(workflowId) });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError)
        throw conflict(`a task with id ${id} already exists`, { id });
      throw err;
    }
  });

  router.get('/api/v1/tasks/:id', async (req, res) => {
    const { id, description } = await describeOwned(req.params.id, principalOf(res).tenantId);
    const handle = temporal.workflow.getHandle(description.workflowId, description.runId);
    const running = description.status.name === 'RUNNING';
    let progress: TaskProgress | undefined;
    let result: TaskResult | undefined;
    let failure: string | undefined;
    if (running) {
      // A query needs a polling orchestration worker; without one, report what the server knows.
      progress = await handle.query(progressQuery).catch(() => undefined);
    } else if (description.status.name === 'COMPLETED') {
      result = (await handle.result()) as TaskResult;
    } else {
      failure = await handle.result().then(
        () => undefined,
        (err: Error) => (err.cause as Error | undefined)?.message ?? err.message,
      );
    }
    const status =
      result?.status ??
      progress?.status ??
      (running ? 'pending' : description.status.name === 'CANCELLED' ? 'canceled' : 'failed');
    res.json({
      id,
      workflowId: description.workflowId,
      runId: description.runId,
      status,
      temporalStatus: description.status.name,
      step: progress?.step,
      percent: result ? 100 : progress?.percent,
      events: progress?.events,
      result,
      failure,
      startedAt: description.startTime.toISOString(),
      closedAt: description.closeTime?.toISOString(),
      webUi: webUiLink(description.workflowId),
    });
  });

  router.post('/api/v1/tasks/:id/cancel', async (req, res) => {
    const { id, description } = await describeOwned(req.params.id, principalOf(res).tenantId);
    if (description.status.name !== 'RUNNING') {
      throw new HttpProblem(409, 'Conflict', `task ${id} has already ended (${description.status.name.toLowerCase()})`);
    }
    await temporal.workflow.getHandle(description.workflowId, description.runId).cancel();
    res.status(202).json({ id, status: 'cancel_requested' });
  });

  return router;
}
