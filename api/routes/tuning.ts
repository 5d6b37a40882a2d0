/**
 * Runtime tuning runs (workflows/tuning/runtime-tuning.workflow.ts). The API validates, authorises and talks to
 * Temporal; trials run on the inference pool.
 *
 *   POST /api/v1/tuning/runs              operator  starts a run for a registered version (404 unknown, 409 not tunable
 *                                                   or the same request already running)
 *   GET  /api/v1/tuning/runs/:id          viewer    the `trials` query: settings, figures, incumbent, scheduling
 *   POST /api/v1/tuning/runs/:id/apply    admin     records the best (or a chosen) trial as a new version and rolls it out
 *   POST /api/v1/tuning/runs/:id/cancel   operator  stops the run (a trial in progress is cancelled)
 *
 * A run's id is derived from the request (model, version and a digest of the canonical body): the same request while
 * it runs is "already running" (409), not a second run. Runs are the tenant's own: the workflow id carries the tenant,
 * so another tenant's id is simply not found.
 */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { Router, type Response } from 'express';
import { z } from 'zod';
import { hashJson } from '../../common/hash.js';
import { getModelVersion } from '../../common/models.js';
import { ModelKey } from '../../temporal/search-attributes.js';
import { queueFor } from '../../temporal/task-queues.js';
import {
  ApplyRequestSchema,
  applyUpdate,
  cancelUpdate,
  TuningInputSchema,
  trialsQuery,
  tuningWorkflowId,
} from '../../workflows/tuning/definitions.js';
import type { runtimeTuningWorkflow } from '../../workflows/tuning/runtime-tuning.workflow.js';
import type { AppDeps } from '../app.js';
import { conflict, notFound, validate } from '../errors.js';
import { auditByCaller, principalOf, requireRole } from '../principal.js';

export const TuningRunIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,200}$/, 'a tuning run id as returned by POST /api/v1/tuning/runs');
export const TuningRunParamsSchema = z.object({ id: TuningRunIdSchema }).strict();
export const CancelBodySchema = z.object({ reason: z.string().max(2000).optional() }).strict();
/** The request body of POST /api/v1/tuning/runs. */
export const TuningRequestSchema = TuningInputSchema;

const TUNABLE = ['validated', 'canary', 'active'];

export function tuningRoutes({ temporal, db, config }: AppDeps): Router {
  const router = Router();
  const runOf = (res: Response, params: unknown) => {
    const { id } = validate(TuningRunParamsSchema, params, 'params');
    const tenantId = principalOf(res).tenantId;
    return { id, workflowId: tuningWorkflowId(tenantId, id) };
  };
  const handleOf = async (workflowId: string, { running = false } = {}) => {
    const handle = temporal.workflow.getHandle<typeof runtimeTuningWorkflow>(workflowId);
    let state: string;
    try {
      state = (await handle.describe()).status.name;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw notFound(`no tuning run ${workflowId}`);
      throw err;
    }
    // A finished run (applied, cancelled, or its apply window over) takes no more updates.
    if (running && state !== 'RUNNING') throw conflict(`the tuning run is over (${state.toLowerCase()})`);
    return handle;
  };
  const updateOrConflict = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) throw conflict(err.cause?.message ?? 'refused by the tuning run');
      throw err;
    }
  };

  router.post('/api/v1/tuning/runs', requireRole('operator'), async (req, res) => {
    const body = validate(TuningRequestSchema, req.body ?? {});
    const p = principalOf(res);
    const version = await getModelVersion(db, p.tenantId, body.model, body.version);
    if (!version) throw notFound(`no version ${body.version} of model ${body.model}`);
    if (!TUNABLE.includes(version.status))
      throw conflict(
        `version ${body.version} is ${version.status}: only validated, canary or active versions are tuned`,
      );
    const id = `${body.model}-${body.version}-${hashJson(body).slice(0, 10)}`.toLowerCase();
    const workflowId = tuningWorkflowId(p.tenantId, id);
    try {
      await temporal.workflow.start<typeof runtimeTuningWorkflow>('runtimeTuningWorkflow', {
        args: [{ ...body, tenantId: p.tenantId, requestedBy: p.subject }],
        workflowId,
        taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
        typedSearchAttributes: [{ key: ModelKey, value: `${p.tenantId}/${body.model}` }],
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError)
        throw conflict(`tuning run ${id} is already running`, { id });
      throw err;
    }
    await auditByCaller(db, res, 'model.tuning.started', `${body.model}@${body.version}`, { id, budget: body.budget });
    res.status(201).location(`/api/v1/tuning/runs/${id}`).json({ id, workflow_id: workflowId });
  });

  router.get('/api/v1/tuning/runs/:id', requireRole('viewer'), async (_req, res) => {
    const { id, workflowId } = runOf(res, res.req.params);
    const status = await (await handleOf(workflowId)).query(trialsQuery);
    res.json({ id, workflow_id: workflowId, ...status });
  });

  router.post('/api/v1/tuning/runs/:id/apply', requireRole('admin'), async (req, res) => {
    const { id, workflowId } = runOf(res, req.params);
    const body = validate(ApplyRequestSchema, req.body ?? {});
    const handle = await handleOf(workflowId, { running: true });
    const status = await updateOrConflict(() =>
      handle.executeUpdate(applyUpdate, { args: [{ ...body, by: principalOf(res).subject }] }),
    );
    await auditByCaller(db, res, 'model.tuning.applied', id, { version: status.appliedVersion });
    res.json({ id, workflow_id: workflowId, ...status });
  });

  router.post('/api/v1/tuning/runs/:id/cancel', requireRole('operator'), async (req, res) => {
    const { id, workflowId } = runOf(res, req.params);
    validate(CancelBodySchema, req.body ?? {});
    const handle = await handleOf(workflowId, { running: true });
    const status = await updateOrConflict(() =>
      handle.executeUpdate(cancelUpdate, { args: [{ by: principalOf(res).subject }] }),
    );
    res.json({ id, workflow_id: workflowId, ...status });
  });

  return router;
}
