/**
 * Council routes: list and read sessions (councilDeliberation workflows), decide an escalated or approval-gated
 * session (delivered to its task as the `decide` Update), and review a diff without executing anything (started at
 * once, polled until the council has decided: api/review-service.ts).
 */
import { Router, type Response } from 'express';
import type { Payload } from '@temporalio/common';
import { decodeMapFromPayloads } from '@temporalio/common/lib/internal-non-workflow/codec-helpers.js';
import { listSigningKeys } from '../../common/signing.js';
import { checkVerdict } from '../../common/verdict-check.js';
import { councilDeliberationWorkflow, type agentTaskWorkflow } from '../../workflows/index.js';
import { sessionQuery, type CouncilSession } from '../../workflows/council/session.js';
import type { AppDeps } from '../app.js';
import { HttpProblem, validate } from '../errors.js';
import { ownedWorkflow } from '../ownership.js';
import { principalOf, requireRole } from '../principal.js';
import { getReview, startReview } from '../review-service.js';
import { DecisionBodySchema, PageQuerySchema, SessionIdSchema } from '../schemas.js';
import { decide } from '../task-service.js';
import { listWorkflowPage, tenantWorkflowsQuery } from '../visibility.js';

export function councilRoutes(deps: AppDeps): Router {
  const { temporal, db } = deps;
  const router = Router();

  async function describeSession(rawId: string, res: Response) {
    const id = validate(SessionIdSchema, rawId, 'params');
    return ownedWorkflow(temporal, principalOf(res), id, {
      type: councilDeliberationWorkflow.name,
      what: `council session ${id}`,
    });
  }

  router.get('/api/v1/council/sessions', requireRole('viewer'), async (req, res) => {
    const q = validate(PageQuerySchema, req.query, 'query');
    const query = tenantWorkflowsQuery(councilDeliberationWorkflow.name, principalOf(res).tenantId);
    const page = await listWorkflowPage(deps, query, q);
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
      nextCursor: page.nextCursor,
    });
  });

  router.get('/api/v1/council/sessions/:id', requireRole('viewer'), async (req, res) => {
    const d = await describeSession(String(req.params.id), res);
    const handle = temporal.workflow.getHandle<typeof councilDeliberationWorkflow>(d.workflowId);
    const session: CouncilSession | undefined = await handle.query(sessionQuery).catch(() => undefined);
    const outcome = d.status.name === 'COMPLETED' ? await handle.result() : session?.outcome;
    const signingKeys = await listSigningKeys(db);
    const tenantId = principalOf(res).tenantId;
    res.json({
      id: d.workflowId,
      taskId: d.memo?.taskId ?? null,
      parentWorkflowId: d.memo?.parentWorkflowId ?? null,
      temporalStatus: d.status.name,
      session: session ?? null,
      outcome: outcome ?? null,
      // Whether the signed verdict verifies, with which key: a failing one is flagged, never shown as valid.
      verdictCheck: outcome?.kind === 'final' ? await checkVerdict(db, tenantId, outcome.record, signingKeys) : null,
      signingKeys,
    });
  });

  for (const decision of ['approve', 'reject'] as const) {
    router.post(`/api/v1/council/sessions/:id/${decision}`, requireRole('approver'), async (req, res) => {
      const body = validate(DecisionBodySchema, req.body);
      const d = await describeSession(String(req.params.id), res);
      const parent = typeof d.memo?.parentWorkflowId === 'string' ? d.memo.parentWorkflowId : undefined;
      if (!parent)
        throw new HttpProblem(409, 'Conflict', 'this session reviewed a diff on its own; there is no task to decide');
      const handle = temporal.workflow.getHandle<typeof agentTaskWorkflow>(parent);
      res.json({
        sessionId: d.workflowId,
        taskWorkflowId: parent,
        ...(await decide(handle, decision, body, principalOf(res), deps.config)),
      });
    });
  }

  /** Reviews a diff against a spec with the full council, without executing anything: 202, then poll the Location. */
  router.post('/api/v1/council/review', requireRole('operator'), async (req, res) => {
    const accepted = await startReview(deps, principalOf(res), req.body, res.locals.correlationId as string);
    res.status(202).location(accepted.href).json(accepted);
  });

  /** A review's status and, once the council has decided, its verdict. */
  router.get('/api/v1/council/review/:id', requireRole('viewer'), async (req, res) => {
    res.json(await getReview(deps, principalOf(res), req.params.id));
  });

  return router;
}
