/**
 * Predictions and rollouts of served models. The API authorises; the inference pool serves.
 *
 *   POST /api/v1/models/:name/predict                          viewer    forwarded to an inference-pool process
 *   POST /api/v1/models/:name/predictions/:id/feedback         operator  attaches a label to a prediction
 *   POST /api/v1/models/:name/versions/:version/rollout        admin     starts canaryRollout (canary | blue-green)
 *   GET  /api/v1/models/:name/versions/:version/rollout        viewer    its status (step, weights, metrics, decisions)
 *   POST .../rollout/promote | abort                           admin     Temporal updates (refused once final)
 *   POST .../rollout/pause | resume                            operator  signals
 *
 * Why the API forwards rather than serving: sessions must stay warm in the inference pool's processes (ONNX Runtime
 * in their worker threads, one per served version), while the API replicas stay stateless and hold no model. The
 * pool's port is internal (the inference Service, reachable only from the API pods; SERVING_TOKEN on top), so
 * authentication and tenants stay in one place. Each API request goes to one process behind the Service, which
 * splits by exact WRR among its own requests: the sum over processes keeps the split within one request per
 * process. The `x-model-version` header pins a request to a served version or to the arm `canary` / `baseline`
 * (A/B routing); `key` in the body makes the routing sticky.
 *
 * Predictions never touch Temporal; rollouts are workflows and never carry traffic.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { Router, type Response } from 'express';
import { z } from 'zod';
import { attachLabel } from '../../common/model-serving.js';
import { queueFor } from '../../temporal/task-queues.js';
import { ModelKey } from '../../temporal/search-attributes.js';
import { modelLabelledTotal } from '../../activities/inference/serving/metrics.js';
import type { canaryRolloutWorkflow } from '../../workflows/models/canary-rollout.workflow.js';
import {
  abortUpdate,
  ModelNameSchema,
  pauseSignal,
  PersonSchema,
  promoteUpdate,
  resumeSignal,
  RolloutOptionsSchema,
  rolloutWorkflowId,
  statusQuery,
  VersionSchema,
} from '../../workflows/models/rollout-definitions.js';
import type { AppDeps } from '../app.js';
import { conflict, HttpProblem, notFound, unavailable, validate } from '../errors.js';
import { auditByCaller, principalOf, requireRole } from '../principal.js';

const row = z.array(z.number().finite()).min(1).max(65_536);
export const PredictBodySchema = z
  .object({
    /** One input row, or `inputs`: several rows answered together. */
    input: row.optional(),
    inputs: z.array(row).min(1).max(256).optional(),
    /** Sticky routing: requests with the same key reach the same version while the weights stay. */
    key: z.string().min(1).max(256).optional(),
  })
  .strict()
  .refine((b) => (b.input === undefined) !== (b.inputs === undefined), 'give exactly one of input and inputs');
export const FeedbackBodySchema = z.object({ label: z.number().int().min(0).max(1_000_000) }).strict();
export const PredictionIdSchema = z.uuid();
export const PinHeaderSchema = z.string().regex(/^(canary|baseline|\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?)$/);
export const RolloutActionSchema = PersonSchema.pick({ reason: true }).strict();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Feedback may arrive before the serving process has written its prediction (it writes in batches). */
const FEEDBACK_WAIT_MS = 2000;

export function predictionRoutes({ db, config, temporal }: Pick<AppDeps, 'db' | 'config' | 'temporal'>): Router {
  const router = Router();
  const auth: Record<string, string> = config.SERVING_TOKEN ? { authorization: `Bearer ${config.SERVING_TOKEN}` } : {};

  router.post('/api/v1/models/:name/predict', requireRole('viewer'), async (req, res) => {
    const model = validate(ModelNameSchema, req.params.name, 'params');
    const body = validate(PredictBodySchema, req.body);
    const pinHeader = req.get('x-model-version');
    const pin = pinHeader === undefined ? undefined : validate(PinHeaderSchema, pinHeader, 'params');
    const payload = {
      tenantId: principalOf(res).tenantId,
      model,
      inputs: body.inputs ?? [body.input!],
      key: body.key,
      pin,
    };
    let answer: globalThis.Response;
    try {
      answer = await fetch(`${config.SERVING_URL}/v1/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify(payload),
      });
    } catch {
      throw unavailable('no inference process answered');
    }
    const result = (await answer.json()) as Record<string, unknown>;
    if (answer.status === 400) throw new HttpProblem(400, 'Bad Request', String(result.error));
    if (answer.status === 404) throw notFound(`model ${model} is not served`);
    if (!answer.ok) throw unavailable(`the prediction failed: ${String(result.error)}`);
    res.json({
      prediction_id: result.id,
      model,
      version: result.version,
      outputs: result.outputs,
      predicted: result.predicted,
    });
  });

  router.post('/api/v1/models/:name/predictions/:id/feedback', requireRole('operator'), async (req, res) => {
    const model = validate(ModelNameSchema, req.params.name, 'params');
    const id = validate(PredictionIdSchema, req.params.id, 'params');
    const { label } = validate(FeedbackBodySchema, req.body);
    const tenantId = principalOf(res).tenantId;
    const deadline = Date.now() + FEEDBACK_WAIT_MS;
    let found = await attachLabel(db, tenantId, model, id, label);
    while (!found && Date.now() < deadline) {
      await sleep(100);
      found = await attachLabel(db, tenantId, model, id, label);
    }
    if (!found) throw notFound(`no prediction ${id} of model ${model}`);
    modelLabelledTotal.inc({ model, version: found.version, correct: String(found.correct === true) });
    res.json({
      prediction_id: id,
      model,
      version: found.version,
      label,
      predicted: found.predicted,
      correct: found.correct,
    });
  });

  const rollout = (res: Response, params: Record<string, unknown>) => {
    const model = validate(ModelNameSchema, params.name, 'params');
    const version = validate(VersionSchema, params.version, 'params');
    const tenantId = principalOf(res).tenantId;
    return { model, version, tenantId, workflowId: rolloutWorkflowId(tenantId, model, version) };
  };
  const base = '/api/v1/models/:name/versions/:version/rollout';

  router.post(base, requireRole('admin'), async (req, res) => {
    const { model, version, tenantId, workflowId } = rollout(res, req.params);
    const options = validate(RolloutOptionsSchema, req.body ?? {});
    const p = principalOf(res);
    try {
      await temporal.workflow.start<typeof canaryRolloutWorkflow>('canaryRolloutWorkflow', {
        args: [{ tenantId, model, version, requestedBy: p.subject, options }],
        workflowId,
        taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
        typedSearchAttributes: [{ key: ModelKey, value: `${tenantId}/${model}` }],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError)
        throw conflict(`a rollout of ${model} ${version} exists`);
      throw err;
    }
    await auditByCaller(db, res, 'model.rollout.requested', `${model}@${version}`, { options });
    res.status(202).location(`/api/v1/models/${model}/versions/${version}/rollout`).json({ workflow_id: workflowId });
  });

  const handleOf = async (workflowId: string, { running = false } = {}) => {
    const handle = temporal.workflow.getHandle(workflowId);
    let status: string;
    try {
      status = (await handle.describe()).status.name;
    } catch {
      throw notFound(`no rollout ${workflowId}`);
    }
    // A finished rollout takes no more commands (its history keeps the outcome; GET still answers).
    if (running && status !== 'RUNNING') throw conflict(`the rollout is over (${status.toLowerCase()})`);
    return handle;
  };

  router.get(base, requireRole('viewer'), async (req, res) => {
    const { workflowId } = rollout(res, req.params);
    res.json(await (await handleOf(workflowId)).query(statusQuery));
  });

  for (const [action, update] of [
    ['promote', promoteUpdate],
    ['abort', abortUpdate],
  ] as const) {
    router.post(`${base}/${action}`, requireRole('admin'), async (req, res) => {
      const { workflowId } = rollout(res, req.params);
      const { reason } = validate(RolloutActionSchema, req.body ?? {});
      const handle = await handleOf(workflowId, { running: true });
      try {
        res.json(await handle.executeUpdate(update, { args: [{ by: principalOf(res).subject, reason }] }));
      } catch (err) {
        if (err instanceof WorkflowUpdateFailedError) throw conflict(err.cause?.message ?? 'the rollout is over');
        throw err;
      }
    });
  }

  for (const [action, signal] of [
    ['pause', pauseSignal],
    ['resume', resumeSignal],
  ] as const) {
    router.post(`${base}/${action}`, requireRole('operator'), async (req, res) => {
      const { workflowId } = rollout(res, req.params);
      const { reason } = validate(RolloutActionSchema, req.body ?? {});
      await (await handleOf(workflowId, { running: true })).signal(signal, { by: principalOf(res).subject, reason });
      res.status(202).json({ workflow_id: workflowId, action });
    });
  }

  return router;
}
