/**
 * The model registry (common/models.ts) over HTTP, per tenant:
 *
 *   GET  /api/v1/models                                        viewer    the tenant's models (latest, active)
 *   GET  /api/v1/models/:name                                  viewer    one model and its versions, newest first
 *   POST /api/v1/models/:name/versions                         operator  register a version:
 *        Content-Type application/octet-stream: the ONNX file itself, streamed into the blob store (never buffered
 *        whole; at most MODEL_UPLOAD_MAX_BYTES), ?version= optional (default: next patch);
 *        Content-Type application/json: { version?, artifact: { sha256 } | from: { campaignId }, metrics?, settings?,
 *        data? } — a blob the tenant already stores, or the ONNX result a federation campaign of the tenant recorded.
 *   GET  /api/v1/models/:name/versions/:version                viewer    the version, with its status history
 *   GET  /api/v1/models/:name/versions/:version/artifact       viewer    the ONNX file, streamed and verified
 *   POST /api/v1/models/:name/versions/:version/validate       operator  starts modelValidationWorkflow (202)
 *   POST /api/v1/models/:name/versions/:version/retire         admin     registered|validated|active → retired
 * Registration with ?validate=true (upload) or "validate": true (JSON) starts the validation at once.
 *
 * The API reads nothing inside the file: the signature is what ONNX Runtime reports when the validation activity
 * (activities/inference/validation.ts) loads it on the inference pool. Another tenant's model is a 404.
 */
import { Transform, type Readable } from 'node:stream';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { blobStoreOf } from '../../common/blob-store/index.js';
import { BlobNotFoundError, type BlobRef } from '../../common/blob-store/types.js';
import { getCampaign } from '../../common/federation.js';
import {
  MetricsSchema,
  ModelNameSchema,
  ModelTransitionError,
  ModelVersionExistsError,
  ProvenanceSchema,
  SemverSchema,
  VersionSettingsSchema,
  getModelVersion,
  listModelVersions,
  listModels,
  registerModelVersion,
  setVersionStatus,
  versionTransitions,
  type ModelVersion,
  type Provenance,
} from '../../common/models.js';
import { ModelKey } from '../../temporal/search-attributes.js';
import { queueFor } from '../../temporal/task-queues.js';
import { campaignWorkflowId } from '../../workflows/federation/definitions.js';
import {
  modelValidationWorkflowId,
  type modelValidationWorkflow,
} from '../../workflows/models/model-validation.workflow.js';
import type { AppDeps } from '../app.js';
import { sendBlob } from '../blob-response.js';
import { conflict, HttpProblem, notFound, validate } from '../errors.js';
import { SHA256 } from '../schemas.js';
import { auditByCaller, principalOf, requireRole } from '../principal.js';

export const ModelParamsSchema = z.object({ name: ModelNameSchema }).strict();
export const VersionParamsSchema = z.object({ name: ModelNameSchema, version: SemverSchema }).strict();
const ValidateFlag = z.enum(['true', 'false']).transform((v) => v === 'true');
export const UploadQuerySchema = z
  .object({ version: SemverSchema.optional(), validate: ValidateFlag.optional() })
  .strict();

export const RegisterVersionBodySchema = z
  .object({
    version: SemverSchema.optional(),
    artifact: z
      .object({
        sha256: SHA256,
        tenantId: z.string().optional().meta({ description: 'if given, the caller’s own tenant' }),
        sizeBytes: z.number().int().min(0).optional(),
      })
      .strict()
      .optional()
      .meta({ description: 'a blob of the tenant (a BlobRef), already in the blob store' }),
    from: z
      .object({ campaignId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a federation campaign id') })
      .strict()
      .optional()
      .meta({ description: 'the ONNX model a federation campaign of the tenant recorded as its result' }),
    metrics: MetricsSchema.optional(),
    settings: VersionSettingsSchema.optional(),
    data: ProvenanceSchema.shape.data.optional().meta({ description: 'what the model was trained on' }),
    validate: z.boolean().optional().meta({ description: 'start the validation workflow at once' }),
  })
  .strict()
  .refine((b) => (b.artifact ? 1 : 0) + (b.from ? 1 : 0) === 1, {
    message: 'give exactly one of artifact (a stored blob) and from (a federation campaign)',
  });

export const ValidateBodySchema = z
  .object({
    latency_bound_ms: z.number().positive().max(60_000).optional(),
    runs: z.number().int().min(1).max(1000).optional(),
    rows: z.number().int().min(1).max(1024).optional(),
    force: z.boolean().optional().meta({ description: 'validate a validated version again (against a newer active)' }),
  })
  .strict();

export const RetireBodySchema = z.object({ reason: z.string().min(1).max(2000).optional() }).strict();

export function versionView(v: ModelVersion) {
  return {
    name: v.name,
    version: v.version,
    status: v.status,
    artifact: { sha256: v.artifact.sha256, size_bytes: v.artifact.sizeBytes },
    signature: v.signature,
    provenance: v.provenance,
    metrics: v.metrics,
    settings: v.settings,
    validation: v.validation,
    created_by: v.createdBy,
    created_at: v.createdAt,
    status_changed_at: v.statusChangedAt,
  };
}

/** Counts bytes as they pass and fails the stream past `max`, so an oversized upload stops early, not at the end. */
function capped(max: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > max) done(new UploadTooLarge(max));
      else done(null, chunk);
    },
  });
}

class UploadTooLarge extends Error {
  constructor(readonly max: number) {
    super(`the model exceeds ${max} bytes (MODEL_UPLOAD_MAX_BYTES)`);
  }
}

export function modelRoutes({
  db,
  config,
  log,
  temporal,
}: Pick<AppDeps, 'db' | 'config' | 'log' | 'temporal'>): Router {
  const router = Router();

  /** Starts modelValidationWorkflow for the version; its outcome lands in the registry (GET the version). */
  async function startValidation(
    res: Response,
    v: ModelVersion,
    opts: z.infer<typeof ValidateBodySchema> = {},
  ): Promise<string> {
    const workflowId = modelValidationWorkflowId(v.tenantId, v.name, v.version);
    try {
      await temporal.workflow.start<typeof modelValidationWorkflow>('modelValidationWorkflow', {
        args: [
          {
            tenantId: v.tenantId,
            name: v.name,
            version: v.version,
            actor: principalOf(res).subject,
            ...(opts.latency_bound_ms ? { latencyBoundMs: opts.latency_bound_ms } : {}),
            ...(opts.runs ? { runs: opts.runs } : {}),
            ...(opts.rows ? { rows: opts.rows } : {}),
            ...(opts.force ? { force: true } : {}),
          },
        ],
        workflowId,
        taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
        typedSearchAttributes: [{ key: ModelKey, value: `${v.tenantId}/${v.name}` }],
        // A finished validation may run again (force, after a newer active version); a running one may not.
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError)
        throw conflict(`a validation of ${v.name} ${v.version} is running`, { workflow_id: workflowId });
      throw err;
    }
    return workflowId;
  }

  const loadVersion = async (req: Request, res: Response): Promise<ModelVersion> => {
    const { name, version } = validate(VersionParamsSchema, req.params, 'params');
    const v = await getModelVersion(db, principalOf(res).tenantId, name, version);
    if (!v) throw notFound(`no version ${version} of model ${name}`);
    return v;
  };

  /** Streams the request body into the blob store; the bytes never sit whole in this process. */
  async function storeUpload(req: Request, tenantId: string): Promise<BlobRef> {
    const max = config.MODEL_UPLOAD_MAX_BYTES;
    const declared = Number(req.get('content-length') ?? NaN);
    if (declared > max) throw new HttpProblem(413, 'Content Too Large', new UploadTooLarge(max).message);
    if (declared === 0) throw new HttpProblem(400, 'Bad Request', 'the request body is empty: send the ONNX file');
    const limiter = capped(max);
    (req as Readable).pipe(limiter);
    req.on('error', (err) => limiter.destroy(err));
    try {
      const ref = await blobStoreOf(db).put(tenantId, limiter, { mediaType: 'application/onnx' });
      if (ref.sizeBytes === 0)
        throw new HttpProblem(400, 'Bad Request', 'the request body is empty: send the ONNX file');
      return ref;
    } catch (err) {
      req.unpipe(limiter);
      req.resume(); // drain what is left, so the answer can go out on this connection
      if (err instanceof UploadTooLarge) throw new HttpProblem(413, 'Content Too Large', err.message);
      throw err;
    }
  }

  /** The artifact and provenance a JSON registration names: a blob of the tenant, or a campaign's ONNX result. */
  async function resolveSource(
    body: z.infer<typeof RegisterVersionBodySchema>,
    res: Response,
  ): Promise<{ artifact: BlobRef; provenance: Provenance }> {
    const p = principalOf(res);
    if (body.from) {
      const campaign = await getCampaign(db, body.from.campaignId);
      if (!campaign || campaign.tenantId !== p.tenantId) throw notFound(`no campaign ${body.from.campaignId}`);
      const onnx = (campaign.result as { onnx?: BlobRef } | null)?.onnx;
      if (!onnx?.sha256) throw conflict(`campaign ${campaign.id} has recorded no ONNX model yet (${campaign.status})`);
      return {
        artifact: { tenantId: p.tenantId, sha256: onnx.sha256, sizeBytes: onnx.sizeBytes },
        provenance: {
          by: {
            kind: 'workflow',
            workflowId: campaignWorkflowId(campaign.id),
            workflowType: 'federationCampaignWorkflow',
          },
          data: { ...body.data, campaignId: campaign.id, registeredBy: p.subject },
        },
      };
    }
    const given = body.artifact!;
    if (given.tenantId !== undefined && given.tenantId !== p.tenantId) throw notFound(`no blob ${given.sha256}`);
    const head = await blobStoreOf(db).head(p.tenantId, given.sha256);
    if (!head) throw notFound(`no blob ${given.sha256}`);
    return {
      artifact: { tenantId: p.tenantId, sha256: head.sha256, sizeBytes: head.sizeBytes },
      provenance: { by: { kind: 'person', principal: p.subject }, data: body.data ?? {} },
    };
  }

  router.get('/api/v1/models', requireRole('viewer'), async (_req, res) => {
    res.json({ items: await listModels(db, principalOf(res).tenantId) });
  });

  router.get('/api/v1/models/:name', requireRole('viewer'), async (req, res) => {
    const { name } = validate(ModelParamsSchema, req.params, 'params');
    const versions = await listModelVersions(db, principalOf(res).tenantId, name);
    if (versions.length === 0) throw notFound(`no model ${name}`);
    res.json({
      name,
      active: versions.find((v) => v.status === 'active')?.version ?? null,
      versions: versions.map(versionView),
    });
  });

  router.post('/api/v1/models/:name/versions', requireRole('operator'), async (req, res) => {
    const { name } = validate(ModelParamsSchema, req.params, 'params');
    const p = principalOf(res);
    let input: Parameters<typeof registerModelVersion>[1];
    let validateNow: boolean;
    if (req.is('application/octet-stream')) {
      const { version, validate: flag } = validate(UploadQuerySchema, req.query, 'query');
      validateNow = flag ?? false;
      const artifact = await storeUpload(req, p.tenantId);
      const provenance: Provenance = { by: { kind: 'person', principal: p.subject }, data: { upload: 'api' } };
      input = {
        tenantId: p.tenantId,
        name,
        ...(version ? { version } : {}),
        artifact,
        provenance,
        createdBy: p.subject,
      };
    } else if (req.is('application/json')) {
      const body = validate(RegisterVersionBodySchema, req.body);
      validateNow = body.validate ?? false;
      const source = await resolveSource(body, res);
      input = {
        tenantId: p.tenantId,
        name,
        ...(body.version ? { version: body.version } : {}),
        ...source,
        ...(body.metrics ? { metrics: body.metrics } : {}),
        ...(body.settings ? { settings: body.settings } : {}),
        createdBy: p.subject,
      };
    } else {
      throw new HttpProblem(
        415,
        'Unsupported Media Type',
        'send the ONNX file as application/octet-stream, or a JSON registration as application/json',
      );
    }
    let created: ModelVersion;
    try {
      created = await registerModelVersion(db, input);
    } catch (err) {
      if (err instanceof ModelVersionExistsError) throw conflict(err.message);
      if (err instanceof BlobNotFoundError) throw notFound(err.message);
      throw err;
    }
    await auditByCaller(db, res, 'model.registered', `${name}@${created.version}`, {
      sha256: created.artifact.sha256,
      sizeBytes: created.artifact.sizeBytes,
      provenance: created.provenance,
    });
    const validation = validateNow && created.status === 'registered' ? await startValidation(res, created) : null;
    res
      .status(201)
      .location(`/api/v1/models/${name}/versions/${created.version}`)
      .json({ ...versionView(created), ...(validation ? { validation_workflow_id: validation } : {}) });
  });

  router.get('/api/v1/models/:name/versions/:version', requireRole('viewer'), async (req, res) => {
    const v = await loadVersion(req, res);
    const history = await versionTransitions(db, v.tenantId, v.name, v.version);
    res.json({ ...versionView(v), history });
  });

  router.get('/api/v1/models/:name/versions/:version/artifact', requireRole('viewer'), async (req, res) => {
    const v = await loadVersion(req, res);
    const stream = await blobStoreOf(db).get(v.tenantId, v.artifact.sha256);
    res.setHeader('content-disposition', `attachment; filename="${v.name}-${v.version}.onnx"`);
    await sendBlob(req, res, log, { ...v.artifact, mediaType: 'application/onnx', stream });
  });

  router.post('/api/v1/models/:name/versions/:version/validate', requireRole('operator'), async (req, res) => {
    const v = await loadVersion(req, res);
    const opts = validate(ValidateBodySchema, req.body);
    if (v.status !== 'registered' && !(v.status === 'validated' && opts.force))
      throw conflict(
        `${v.name} ${v.version} is ${v.status}: only a registered version is validated (a validated one with force)`,
        { status_now: v.status },
      );
    const workflowId = await startValidation(res, v, opts);
    await auditByCaller(db, res, 'model.validation.requested', `${v.name}@${v.version}`, { workflowId });
    res.status(202).location(`/api/v1/models/${v.name}/versions/${v.version}`).json({ workflow_id: workflowId });
  });

  router.post('/api/v1/models/:name/versions/:version/retire', requireRole('admin'), async (req, res) => {
    const v = await loadVersion(req, res);
    const { reason } = validate(RetireBodySchema, req.body);
    const p = principalOf(res);
    try {
      const retired = await setVersionStatus(db, p.tenantId, v.name, v.version, {
        to: 'retired',
        actor: p.subject,
        evidence: { reason: reason ?? null, via: 'api' },
      });
      res.json(versionView(retired));
    } catch (err) {
      if (err instanceof ModelTransitionError) throw conflict(err.message, { status_now: err.current });
      throw err;
    }
  });

  return router;
}
