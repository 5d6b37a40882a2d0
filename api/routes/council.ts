/**
 * Council routes: list and read sessions (councilDeliberation workflows), decide an escalated or approval-gated
 * session (delivered to its task as the `decide` Update), and review a diff without executing anything.
 */
import { randomUUID } from 'node:crypto';
import { Router, type Response } from 'express';
import { WorkflowNotFoundError, type WorkflowExecutionDescription } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { decodeMapFromPayloads } from '@temporalio/common/lib/internal-non-workflow/codec-helpers.js';
import { z } from 'zod';
import { putArtifact } from '../../common/artifacts.js';
import { hashJson } from '../../common/hash.js';
import { councilDeliberationWorkflow, type agentTaskWorkflow } from '../../workflows/index.js';
import { ConsensusStrategySchema, GateStatusSchema } from '../../workflows/council/definitions.js';
import { sessionQuery, type CouncilSession } from '../../workflows/council/session.js';
import { TenantKey } from '../../temporal/search-attributes.js';
import { queueFor } from '../../temporal/task-queues.js';
import { DEFAULT_TIER_POLICY } from '../../workflows/task/policy.js';
import type { AppDeps } from '../app.js';
import { HttpProblem, notFound, validationProblem } from '../errors.js';
import { principalOf, requireRole } from '../principal.js';
import { checkSpec } from '../spec-input.js';
import { decide } from './tasks.js';

export const SessionIdSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,200}$/, 'a council session id');
export const DecisionBodySchema = z
  .object({ hash: z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 hex digest'), reason: z.string().max(2000).optional() })
  .strict();
export const ReviewBodySchema = z
  .object({
    diff: z.string().min(1).max(5_000_000),
    spec: z.union([z.string().min(1), z.record(z.string(), z.unknown())]),
    strict_spec: z.boolean().default(false),
    consensus: ConsensusStrategySchema.default('weighted'),
    /** Evidence from the caller's own run (CI): without gate results the council cannot accept. */
    gates: z.array(GateStatusSchema.strict()).max(50).default([]),
  })
  .strict();
export const ListQuerySchema = z
  .object({ limit: z.coerce.number().int().min(1).max(100).default(20), cursor: z.string().max(4096).optional() })
  .strict();

export function councilRoutes({ temporal, db, config }: AppDeps): Router {
  const router = Router();

  async function describeSession(rawId: string, res: Response): Promise<WorkflowExecutionDescription> {
    const parsed = SessionIdSchema.safeParse(rawId);
    if (!parsed.success) throw validationProblem(parsed.error, 'params');
    try {
      const d = await temporal.workflow.getHandle(parsed.data).describe();
      if (d.type !== councilDeliberationWorkflow.name || d.memo?.tenantId !== principalOf(res).tenantId)
        throw notFound(`no council session ${parsed.data}`);
      return d;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw notFound(`no council session ${parsed.data}`);
      throw err;
    }
  }

  router.get('/api/v1/council/sessions', requireRole('viewer'), async (req, res) => {
    const q = ListQuerySchema.safeParse(req.query);
    if (!q.success) throw validationProblem(q.error, 'query');
    const page = await temporal.workflowService.listWorkflowExecutions({
      namespace: config.TEMPORAL_NAMESPACE,
      pageSize: q.data.limit,
      nextPageToken: q.data.cursor ? Buffer.from(q.data.cursor, 'base64url') : undefined,
      query: `WorkflowType = '${councilDeliberationWorkflow.name}' AND ${TenantKey.name} = '${principalOf(res).tenantId}'`,
    });
    res.json({
      // Memos go through the data converter: with payload encryption on they are ciphertext.
      items: await Promise.all(
        page.executions.map(async (e) => {
          // A memo sealed with a key this process does not hold stays unread rather than failing the whole list.
          const memo = ((await decodeMapFromPayloads(
            temporal.options.loadedDataConverter,
            (e.memo?.fields ?? {}) as Record<string, Payload>,
          ).catch(() => undefined)) ?? {}) as { taskId?: string };
          return { id: e.execution?.workflowId, taskId: memo.taskId ?? null, temporalStatus: e.status };
        }),
      ),
      nextCursor: page.nextPageToken?.length ? Buffer.from(page.nextPageToken).toString('base64url') : null,
    });
  });

  router.get('/api/v1/council/sessions/:id', requireRole('viewer'), async (req, res) => {
    const d = await describeSession(String(req.params.id), res);
    const handle = temporal.workflow.getHandle<typeof councilDeliberationWorkflow>(d.workflowId);
    const session: CouncilSession | undefined = await handle.query(sessionQuery).catch(() => undefined);
    const outcome = d.status.name === 'COMPLETED' ? await handle.result() : session?.outcome;
    const { rows } = await db.query<{ key_id: string; public_key_pem: string }>(
      'SELECT key_id, public_key_pem FROM signing_keys',
    );
    res.json({
      id: d.workflowId,
      taskId: d.memo?.taskId ?? null,
      parentWorkflowId: d.memo?.parentWorkflowId ?? null,
      temporalStatus: d.status.name,
      session: session ?? null,
      outcome: outcome ?? null,
      signingKeys: rows.map((r) => ({ keyId: r.key_id, publicKeyPem: r.public_key_pem })),
    });
  });

  for (const decision of ['approve', 'reject'] as const) {
    router.post(`/api/v1/council/sessions/:id/${decision}`, requireRole('approver'), async (req, res) => {
      const body = DecisionBodySchema.safeParse(req.body ?? {});
      if (!body.success) throw validationProblem(body.error);
      const d = await describeSession(String(req.params.id), res);
      const parent = typeof d.memo?.parentWorkflowId === 'string' ? d.memo.parentWorkflowId : undefined;
      if (!parent)
        throw new HttpProblem(409, 'Conflict', 'this session reviewed a diff on its own; there is no task to decide');
      const handle = temporal.workflow.getHandle<typeof agentTaskWorkflow>(parent);
      res.json({
        sessionId: d.workflowId,
        taskWorkflowId: parent,
        ...(await decide(handle, decision, body.data, principalOf(res).subject)),
      });
    });
  }

  /** Reviews a diff against a spec with the full council, without executing anything. */
  router.post('/api/v1/council/review', requireRole('operator'), async (req, res) => {
    const body = ReviewBodySchema.safeParse(req.body ?? {});
    if (!body.success) throw validationProblem(body.error);
    const { spec } = checkSpec(body.data.spec, body.data.strict_spec);
    const principal = principalOf(res);
    const diffRef = await putArtifact(db, principal.tenantId, body.data.diff, 'text/x-diff');
    const id = `review-${randomUUID()}`;
    const tier = spec.risk_tier;
    const outcome = await temporal.workflow.execute(councilDeliberationWorkflow, {
      workflowId: id,
      taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
      memo: { tenantId: principal.tenantId },
      typedSearchAttributes: [{ key: TenantKey, value: principal.tenantId }],
      args: [
        {
          task: {
            tenantId: principal.tenantId,
            taskId: id,
            workflowId: id,
            executionKey: id,
            correlationId: res.locals.correlationId as string,
          },
          phase: 'result',
          tier,
          strategy: body.data.consensus,
          spec,
          diffRef,
          commands: spec.gates.map((g) => g.run),
          budget: {
            maxFiles: spec.change_budget?.max_files ?? DEFAULT_TIER_POLICY[tier].maxFiles,
            maxLoc: spec.change_budget?.max_loc ?? DEFAULT_TIER_POLICY[tier].maxLoc,
          },
          gates: body.data.gates,
          activeWaivers: [],
          subjectHash: diffRef.sha256,
          consensusTimeoutMs: config.COUNCIL_CONSENSUS_TIMEOUT,
        },
      ],
    });
    res.json({ sessionId: id, specHash: hashJson(spec), diff: diffRef, outcome });
  });

  return router;
}
