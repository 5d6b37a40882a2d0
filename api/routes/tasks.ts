/**
 * Task routes: validate with the workflow's contracts, then start / list / describe / query / signal / update the
 * agentTask workflow, or read its records from PostgreSQL. No business logic here: what a task does lives in
 * workflows/task.
 */
import { randomUUID } from 'node:crypto';
import { Router, type Response } from 'express';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { z } from 'zod';
import { listAuditEvents } from '../../common/audit.js';
import { getArtifact } from '../../common/artifacts.js';
import { agentTaskWorkflow } from '../../workflows/index.js';
import {
  clarifySignal,
  decideUpdate,
  pauseSignal,
  progressQuery,
  resumeSignal,
  TaskIdSchema,
  TaskRequestSchema,
  TaskStatusSchema,
  taskWorkflowId,
  type AgentTaskInput,
  type TaskProgress,
  type TaskResult,
} from '../../workflows/task/definitions.js';
import { TaskStatusKey, TenantKey } from '../../temporal/search-attributes.js';
import { queueFor } from '../../temporal/task-queues.js';
import type { AppDeps } from '../app.js';
import { conflict, HttpProblem, notFound, validationProblem } from '../errors.js';
import { principalOf, requireRole } from '../principal.js';
import { checkSpec } from '../spec-input.js';

export const ListQuerySchema = z
  .object({
    status: TaskStatusSchema.optional(),
    risk_tier: z.coerce.number().int().min(1).max(3).optional(),
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().max(4096).optional(),
  })
  .strict();
export const DecisionBodySchema = z
  .object({ hash: z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 hex digest'), reason: z.string().max(2000).optional() })
  .strict();
export const ClarifyBodySchema = z
  .object({
    spec: z.union([z.string().min(1), z.record(z.string(), z.unknown())]),
    strict_spec: z.boolean().default(false),
  })
  .strict();
export const EmptyBodySchema = z.object({}).strict();
export const SHA256 = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 hex digest');

export function taskRoutes({ temporal, db, config }: AppDeps): Router {
  const router = Router();
  const webUiLink = (workflowId: string): string =>
    `${config.TEMPORAL_UI_URL}/namespaces/${encodeURIComponent(config.TEMPORAL_NAMESPACE)}/workflows/${encodeURIComponent(workflowId)}`;

  /** The task's workflow, if it exists and belongs to the caller's tenant (another tenant's task is a 404). */
  async function describeOwned(
    rawId: string,
    res: Response,
  ): Promise<{ id: string; description: WorkflowExecutionDescription }> {
    const parsed = TaskIdSchema.safeParse(rawId);
    if (!parsed.success) throw validationProblem(parsed.error, 'params');
    const id = parsed.data;
    try {
      const description = await temporal.workflow.getHandle(taskWorkflowId(id)).describe();
      if (description.type !== agentTaskWorkflow.name || description.memo?.tenantId !== principalOf(res).tenantId) {
        throw notFound(`no task ${id}`);
      }
      return { id, description };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw notFound(`no task ${id}`);
      throw err;
    }
  }
  async function runningTask(rawId: string, res: Response) {
    const owned = await describeOwned(rawId, res);
    if (owned.description.status.name !== 'RUNNING') {
      throw new HttpProblem(
        409,
        'Conflict',
        `task ${owned.id} has already ended (${owned.description.status.name.toLowerCase()})`,
      );
    }
    return { ...owned, handle: temporal.workflow.getHandle<typeof agentTaskWorkflow>(owned.description.workflowId) };
  }
  const parse = <T>(schema: z.ZodType<T>, value: unknown, where: 'body' | 'query' = 'body'): T => {
    const parsed = schema.safeParse(value ?? {});
    if (!parsed.success) throw validationProblem(parsed.error, where);
    return parsed.data;
  };

  router.post('/api/v1/tasks', requireRole('operator'), async (req, res) => {
    const principal = principalOf(res);
    const request = parse(TaskRequestSchema, req.body);
    const checked = request.spec === undefined ? undefined : checkSpec(request.spec, request.strict_spec);
    const id = request.id ?? randomUUID();
    const input: AgentTaskInput = {
      id,
      tenantId: principal.tenantId,
      submittedBy: principal.subject,
      correlationId: res.locals.correlationId as string,
      title: request.title,
      description: request.description,
      workspace: request.workspace,
      spec: checked?.spec,
      specWarnings: checked?.warnings,
      mode: request.mode,
      budgets: request.budgets,
      consensus: request.consensus,
      settings: {
        approvalTimeoutMs: config.TASK_APPROVAL_TIMEOUT,
        clarificationTimeoutMs: config.TASK_CLARIFICATION_TIMEOUT,
        consensusTimeoutMs: config.COUNCIL_CONSENSUS_TIMEOUT,
        maxIterations: config.TASK_MAX_ITERATIONS,
        continueAsNewAfterSteps: config.EXECUTION_CONTINUE_AS_NEW_AFTER,
      },
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
        .json({
          id,
          workflowId,
          runId: handle.firstExecutionRunId,
          status: 'pending',
          specWarnings: checked?.warnings ?? [],
          webUi: webUiLink(workflowId),
        });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError)
        throw conflict(`a task with id ${id} already exists`, { id });
      throw err;
    }
  });

  router.get('/api/v1/tasks', requireRole('viewer'), async (req, res) => {
    const q = parse(ListQuerySchema, req.query, 'query');
    const clauses = [
      `WorkflowType = '${agentTaskWorkflow.name}'`,
      `${TenantKey.name} = '${principalOf(res).tenantId}'`,
    ];
    if (q.status) clauses.push(`${TaskStatusKey.name} = '${q.status}'`);
    if (q.risk_tier) clauses.push(`AgencyRiskTier = ${q.risk_tier}`);
    let nextPageToken: Uint8Array | undefined;
    if (q.cursor) nextPageToken = Buffer.from(q.cursor, 'base64url');
    const page = await temporal.workflowService.listWorkflowExecutions({
      namespace: config.TEMPORAL_NAMESPACE,
      pageSize: q.limit,
      nextPageToken,
      query: clauses.join(' AND '),
    });
    const attribute = (e: (typeof page.executions)[number], name: string): unknown => {
      const payload = e.searchAttributes?.indexedFields?.[name];
      return payload ? defaultPayloadConverter.fromPayload(payload) : undefined;
    };
    res.json({
      items: page.executions.map((e) => ({
        id: (e.execution?.workflowId ?? '').replace(/^task-/, ''),
        workflowId: e.execution?.workflowId,
        status: attribute(e, TaskStatusKey.name),
        riskTier: attribute(e, 'AgencyRiskTier'),
        temporalStatus: e.status,
        startedAt: e.startTime?.seconds ? new Date(Number(e.startTime.seconds) * 1000).toISOString() : undefined,
      })),
      nextCursor: page.nextPageToken?.length ? Buffer.from(page.nextPageToken).toString('base64url') : null,
    });
  });

  router.get('/api/v1/tasks/:id', requireRole('viewer'), async (req, res) => {
    const { id, description } = await describeOwned(String(req.params.id), res);
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
      progress,
      result,
      failure,
      startedAt: description.startTime.toISOString(),
      closedAt: description.closeTime?.toISOString(),
      webUi: webUiLink(description.workflowId),
    });
  });

  router.get('/api/v1/tasks/:id/result', requireRole('viewer'), async (req, res) => {
    const { id, description } = await describeOwned(String(req.params.id), res);
    if (description.status.name === 'RUNNING') throw new HttpProblem(409, 'Conflict', `task ${id} has not ended yet`);
    if (description.status.name !== 'COMPLETED')
      throw new HttpProblem(
        409,
        'Conflict',
        `task ${id} ended ${description.status.name.toLowerCase()} without a result`,
      );
    res.json(await temporal.workflow.getHandle(description.workflowId, description.runId).result());
  });

  router.get('/api/v1/tasks/:id/artifacts', requireRole('viewer'), async (req, res) => {
    const { id, description } = await describeOwned(String(req.params.id), res);
    const { rows } = await db.query<{ sha256: string; media_type: string; size_bytes: number }>(
      `SELECT DISTINCT a.sha256, a.media_type, a.size_bytes FROM artifacts a
         JOIN audit_events e ON e.tenant_id = a.tenant_id AND e.workflow_id = $2
        WHERE a.tenant_id = $1 AND e.payload::text LIKE '%' || a.sha256 || '%'`,
      [principalOf(res).tenantId, description.workflowId],
    );
    const named =
      description.status.name === 'COMPLETED'
        ? ((await temporal.workflow.getHandle(description.workflowId).result()) as TaskResult).artifacts
        : [];
    res.json({
      id,
      items: [
        ...named.map((a) => ({ ...a, href: `/api/v1/tasks/${id}/artifacts/${a.sha256}` })),
        ...rows
          .filter((r) => !named.some((a) => a.sha256 === r.sha256))
          .map((r) => ({
            name: null,
            sha256: r.sha256,
            mediaType: r.media_type,
            sizeBytes: r.size_bytes,
            href: `/api/v1/tasks/${id}/artifacts/${r.sha256}`,
          })),
      ],
    });
  });

  router.get('/api/v1/tasks/:id/artifacts/:sha256', requireRole('viewer'), async (req, res) => {
    await describeOwned(String(req.params.id), res);
    const sha = parse(SHA256, req.params.sha256, 'query');
    const artifact = await getArtifact(db, principalOf(res).tenantId, sha);
    if (!artifact) throw notFound(`no artifact ${sha}`);
    res.type(artifact.mediaType).setHeader('etag', `"${artifact.sha256}"`).send(artifact.content);
  });

  router.get('/api/v1/tasks/:id/audit', requireRole('viewer'), async (req, res) => {
    const { id, description } = await describeOwned(String(req.params.id), res);
    res.json({
      id,
      events: await listAuditEvents(db, { tenantId: principalOf(res).tenantId, workflowId: description.workflowId }),
    });
  });

  /** Server-sent events from the task's audit trail; resumable with Last-Event-ID (the event's sequence number). */
  router.get('/api/v1/tasks/:id/events', requireRole('viewer'), async (req, res) => {
    const { description } = await describeOwned(String(req.params.id), res);
    const start = z.coerce
      .number()
      .int()
      .min(0)
      .safeParse(req.get('last-event-id') ?? req.query.after ?? 0);
    if (!start.success) throw validationProblem(start.error, 'query');
    let cursor = start.data;
    let open = true;
    req.on('close', () => (open = false));
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(': stream of task events; reconnect with Last-Event-ID to resume\n\n');
    let idle = 0;
    while (open) {
      const { rows } = await db.query<{
        seq: string;
        action: string;
        actor: string;
        occurred_at: Date;
        payload: unknown;
      }>(
        'SELECT seq, action, actor, occurred_at, payload FROM audit_events WHERE tenant_id = $1 AND workflow_id = $2 AND seq > $3 ORDER BY seq LIMIT 200',
        [principalOf(res).tenantId, description.workflowId, cursor],
      );
      for (const row of rows) {
        res.write(
          `id: ${row.seq}\nevent: ${row.action}\ndata: ${JSON.stringify({ actor: row.actor, at: row.occurred_at.toISOString(), payload: row.payload })}\n\n`,
        );
        cursor = Number(row.seq);
        if (/^task\.(completed|failed|canceled)$/.test(row.action)) open = false;
      }
      if (!open) break;
      if (rows.length === 0 && ++idle % 30 === 0) res.write(': keep-alive\n\n');
      await new Promise((r) => setTimeout(r, rows.length ? 0 : 500));
    }
    res.end();
  });

  router.post('/api/v1/tasks/:id/pause', requireRole('operator'), async (req, res) => {
    parse(EmptyBodySchema, req.body);
    const { id, handle } = await runningTask(String(req.params.id), res);
    await handle.signal(pauseSignal, { by: principalOf(res).subject });
    res.status(202).json({ id, status: 'pause_requested' });
  });

  router.post('/api/v1/tasks/:id/resume', requireRole('operator'), async (req, res) => {
    parse(EmptyBodySchema, req.body);
    const { id, handle } = await runningTask(String(req.params.id), res);
    await handle.signal(resumeSignal, { by: principalOf(res).subject });
    res.status(202).json({ id, status: 'resume_requested' });
  });

  router.post('/api/v1/tasks/:id/cancel', requireRole('operator'), async (req, res) => {
    const { id, handle } = await runningTask(String(req.params.id), res);
    await handle.cancel();
    res.status(202).json({ id, status: 'cancel_requested' });
  });

  router.post('/api/v1/tasks/:id/clarify', requireRole('operator'), async (req, res) => {
    const body = parse(ClarifyBodySchema, req.body);
    const checked = checkSpec(body.spec, body.strict_spec);
    const { id, handle } = await runningTask(String(req.params.id), res);
    const progress = await handle.query(progressQuery);
    if (!progress.pendingClarification)
      throw new HttpProblem(409, 'Conflict', `task ${id} is not waiting for clarification (${progress.status})`);
    await handle.signal(clarifySignal, { spec: checked.spec, by: principalOf(res).subject });
    res.status(202).json({ id, status: 'clarification_sent', specWarnings: checked.warnings });
  });

  for (const decision of ['approve', 'reject'] as const) {
    router.post(`/api/v1/tasks/:id/${decision}`, requireRole('approver'), async (req, res) => {
      const body = parse(DecisionBodySchema, req.body);
      const { id, handle } = await runningTask(String(req.params.id), res);
      res.status(200).json({ id, ...(await decide(handle, decision, body, principalOf(res).subject)) });
    });
  }

  return router;
}

/** Sends an approval decision as an Update; a refused decision answers 409 with the workflow's reason. */
export async function decide(
  handle: ReturnType<AppDeps['temporal']['workflow']['getHandle']>,
  decision: 'approve' | 'reject',
  body: { hash: string; reason?: string },
  approver: string,
): Promise<{ accepted: boolean; note: string; status: string }> {
  let outcome;
  try {
    outcome = await handle.executeUpdate(decideUpdate, {
      args: [{ decision, approver, hash: body.hash, reason: body.reason }],
    });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError || err instanceof WorkflowNotFoundError) {
      throw new HttpProblem(409, 'Conflict', `the decision could not be delivered: ${err.message}`);
    }
    throw err;
  }
  if (!outcome.accepted)
    throw new HttpProblem(409, 'Conflict', outcome.note, { accepted: false, status: outcome.status });
  return outcome;
}
