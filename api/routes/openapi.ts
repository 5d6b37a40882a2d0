/**
 * GET /api/v1/openapi.json: the API's OpenAPI 3.1 document, generated from the zod schemas the routes validate with
 * (@asteasolutions/zod-to-openapi, which supports zod 4). Nothing here restates an input schema: each operation points
 * at the one its route validates with (api/schemas.ts or the route module's own), so a changed contract changes the
 * document.
 *
 * OPERATIONS lists every route the app registers. test/unit/openapi.test.ts walks the Express router stack of
 * createApp() and fails when a registered route is missing here, so a new route needs its line below.
 *
 * Public (mounted before authentication in app.ts), like /health and /metrics.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { OpenAPIRegistry, OpenApiGeneratorV31, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import { Router } from 'express';
import { z } from 'zod';
import { PROJECT_ROOT } from '../../common/config.js';
import { TaskIdSchema, TaskRequestSchema } from '../../workflows/task/definitions.js';
import { MCP_PATH, McpMessageSchema } from '../mcp.js';
import type { Role } from '../principal.js';
import * as schemas from '../schemas.js';
import * as audit from './audit.js';
import * as codec from './codec.js';
import * as keys from './keys.js';
import * as waivers from './waivers.js';
import * as tools from '../../common/tool-registry.js';
import * as toolRoutesModule from './tools.js';
import * as repositories from '../../common/repositories.js';
import { FEDERATION_OPERATIONS } from './federation-openapi.js';
import { TUNING_OPERATIONS } from './tuning-openapi.js';
import * as models from './models.js';
import * as predictionDefs from './predictions.js';
import * as rolloutDefs from '../../workflows/models/rollout-definitions.js';

export const OPENAPI_PATH = '/api/v1/openapi.json';

type Method = 'get' | 'post' | 'patch' | 'put' | 'delete' | 'options';

export interface Operation {
  method: Method;
  /** Express style: /api/v1/tasks/:id */
  path: string;
  summary: string;
  tag: string;
  /** The role the route requires, `public` (no authentication), or `authenticated` (any role; checked per call). */
  access: Role | 'public' | 'authenticated';
  params?: Record<string, z.ZodType>;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Other media types the body may have instead of JSON (e.g. a raw file upload), each with its schema. */
  altBodies?: Record<string, z.ZodType>;
  /** The success answer: status, media type (JSON by default) and, when the route has one, its schema. */
  ok: { status: number; description: string; type?: string; schema?: z.ZodType };
  /** Error statuses specific to the route (authentication, rate limiting and 500 are added for every one). */
  errors?: number[];
  /** The route needs Temporal: 503 with Retry-After while it is unreachable (api/dependencies.ts). */
  temporal?: boolean;
}

const taskId = { id: TaskIdSchema };
const JSON_TYPE = 'application/json';

/** What the routes answer with on every error (api/errors.ts). */
export const ProblemSchema = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    instance: z.string().optional(),
    issues: z.array(z.object({ path: z.string(), code: z.string(), message: z.string() })).optional(),
  })
  .meta({ description: 'RFC 9457 problem details' });

const TaskAcceptedSchema = z.object({
  id: z.string(),
  workflowId: z.string(),
  runId: z.string(),
  status: z.literal('pending'),
  specWarnings: z.array(z.string()),
  webUi: z.string(),
});

const ReviewAcceptedSchema = z.object({
  sessionId: z.string().meta({ description: 'the review’s id (its council session): review- and a sha256' }),
  specHash: z.string(),
  diff: z.object({ sha256: z.string(), mediaType: z.string(), sizeBytes: z.number().int() }),
  href: z.string().meta({ description: 'where to poll the review (also the Location header)' }),
});

const ReviewViewSchema = ReviewAcceptedSchema.extend({
  status: z.enum(['deliberating', 'decided', 'escalated', 'failed']),
  temporalStatus: z.string(),
  outcome: z
    .looseObject({ kind: z.enum(['final', 'escalate']) })
    .nullable()
    .meta({ description: 'once ended: the signed verdict record (final) or the escalation' }),
  verdict: z
    .looseObject({ decision: z.string() })
    .nullable()
    .meta({ description: 'the council’s verdict, once decided' }),
});

const HEALTH = { status: 200, description: 'up (503 names the dependency that is down)' };

export const OPERATIONS: readonly Operation[] = [
  // ---- public
  {
    method: 'get',
    path: '/health',
    summary: 'Temporal and PostgreSQL health',
    tag: 'health',
    access: 'public',
    ok: HEALTH,
    errors: [503],
  },
  {
    method: 'get',
    path: '/health/temporal',
    summary: 'Temporal health',
    tag: 'health',
    access: 'public',
    ok: HEALTH,
    errors: [503],
  },
  {
    method: 'get',
    path: '/health/database',
    summary: 'PostgreSQL health',
    tag: 'health',
    access: 'public',
    ok: HEALTH,
    errors: [503],
  },
  {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics of the API process',
    tag: 'observability',
    access: 'public',
    ok: { status: 200, description: 'text exposition format', type: 'text/plain' },
  },
  {
    method: 'get',
    path: OPENAPI_PATH,
    summary: 'This document',
    tag: 'observability',
    access: 'public',
    ok: { status: 200, description: 'OpenAPI 3.1' },
  },
  // ---- tasks
  {
    method: 'post',
    path: '/api/v1/tasks',
    summary: 'Start a task',
    tag: 'tasks',
    access: 'operator',
    body: TaskRequestSchema,
    ok: { status: 202, description: 'started', schema: TaskAcceptedSchema },
    errors: [409, 413],
    temporal: true,
  },
  {
    method: 'get',
    path: '/api/v1/tasks',
    summary: 'List tasks (Temporal visibility), cursor pagination',
    tag: 'tasks',
    access: 'viewer',
    query: schemas.TaskListQuerySchema,
    ok: { status: 200, description: 'a page of tasks' },
    temporal: true,
  },
  ...(
    [
      ['', 'Status, progress and result of a task'],
      ['/result', 'The result of a task that ended'],
      ['/artifacts', 'The artifacts of a task'],
      ['/audit', 'The audit events of a task'],
    ] as const
  ).map(([suffix, summary]): Operation => ({
    method: 'get',
    path: `/api/v1/tasks/:id${suffix}`,
    summary,
    tag: 'tasks',
    access: 'viewer',
    params: taskId,
    ok: { status: 200, description: summary },
    errors: suffix === '/result' ? [404, 409] : [404],
    temporal: true,
  })),
  {
    method: 'get',
    path: '/api/v1/tasks/:id/artifacts/:sha256',
    summary: 'One artifact of a task, by its sha256',
    tag: 'tasks',
    access: 'viewer',
    params: { ...taskId, sha256: schemas.SHA256 },
    ok: {
      status: 200,
      description:
        'the artifact, streamed with its media type, Content-Length and an ETag of its sha256; verified as it is read, so a corrupted artifact is a 500 or a connection closed short of Content-Length, never wrong bytes',
      type: 'application/octet-stream',
    },
    errors: [404],
    temporal: true,
  },
  {
    method: 'get',
    path: '/api/v1/tasks/:id/events',
    summary: 'Server-sent events from the task’s audit trail; resume with Last-Event-ID',
    tag: 'tasks',
    access: 'viewer',
    params: taskId,
    ok: { status: 200, description: 'an event stream', type: 'text/event-stream' },
    errors: [404],
    temporal: true,
  },
  ...(['pause', 'resume'] as const).map((message): Operation => ({
    method: 'post',
    path: `/api/v1/tasks/:id/${message}`,
    summary: `Ask a running task to ${message}`,
    tag: 'tasks',
    access: 'operator',
    params: taskId,
    body: schemas.EmptyBodySchema,
    ok: { status: 202, description: `${message} requested` },
    errors: [404, 409],
    temporal: true,
  })),
  {
    method: 'post',
    path: '/api/v1/tasks/:id/cancel',
    summary: 'Cancel a running task',
    tag: 'tasks',
    access: 'operator',
    params: taskId,
    ok: { status: 202, description: 'cancel requested' },
    errors: [404, 409],
    temporal: true,
  },
  {
    method: 'post',
    path: '/api/v1/tasks/:id/clarify',
    summary: 'Give a task waiting for clarification its working spec',
    tag: 'tasks',
    access: 'operator',
    params: taskId,
    body: schemas.ClarifyBodySchema,
    ok: { status: 202, description: 'clarification sent' },
    errors: [404, 409],
    temporal: true,
  },
  {
    method: 'post',
    path: '/api/v1/tasks/:id/approval-token',
    summary:
      'A decision signed for the caller (this task, this hash, once, until it expires), to send as the input of the ' +
      '`approve` or `reject` signal from the Web UI or the CLI',
    tag: 'tasks',
    access: 'approver',
    params: taskId,
    body: schemas.ApprovalTokenBodySchema,
    ok: { status: 200, description: '{id, workflowId, signal, input, expires, cli}: `input` is the signal input' },
    errors: [404, 409, 503],
    temporal: true,
  },
  ...(['approve', 'reject'] as const).map((decision): Operation => ({
    method: 'post',
    path: `/api/v1/tasks/:id/${decision}`,
    summary: `${decision === 'approve' ? 'Approve' : 'Reject'} the plan or diff a task waits on (with its hash)`,
    tag: 'tasks',
    access: 'approver',
    params: taskId,
    body: schemas.DecisionBodySchema,
    ok: { status: 200, description: 'the decision was accepted' },
    errors: [404, 409],
    temporal: true,
  })),
  // ---- council
  {
    method: 'get',
    path: '/api/v1/council/sessions',
    summary: 'List council sessions',
    tag: 'council',
    access: 'viewer',
    query: schemas.PageQuerySchema,
    ok: { status: 200, description: 'a page of sessions' },
    temporal: true,
  },
  {
    method: 'get',
    path: '/api/v1/council/sessions/:id',
    summary: 'A council session: votes per round, outcome, signing keys',
    tag: 'council',
    access: 'viewer',
    params: { id: schemas.SessionIdSchema },
    ok: { status: 200, description: 'the session' },
    errors: [404],
    temporal: true,
  },
  ...(['approve', 'reject'] as const).map((decision): Operation => ({
    method: 'post',
    path: `/api/v1/council/sessions/:id/${decision}`,
    summary: `${decision === 'approve' ? 'Approve' : 'Reject'} the task behind an escalated or gated session`,
    tag: 'council',
    access: 'approver',
    params: { id: schemas.SessionIdSchema },
    body: schemas.DecisionBodySchema,
    ok: { status: 200, description: 'the decision was accepted' },
    errors: [404, 409],
    temporal: true,
  })),
  {
    method: 'post',
    path: '/api/v1/council/review',
    summary:
      'Start reviewing a diff against a spec with the full council, without executing anything; the same input ' +
      'names the same review',
    tag: 'council',
    access: 'operator',
    body: schemas.ReviewBodySchema,
    ok: { status: 202, description: 'started (or found): poll href (the Location)', schema: ReviewAcceptedSchema },
    errors: [413],
    temporal: true,
  },
  {
    method: 'get',
    path: '/api/v1/council/review/:id',
    summary: 'A review’s status and, once the council has decided, its verdict',
    tag: 'council',
    access: 'viewer',
    params: { id: schemas.ReviewIdSchema },
    ok: { status: 200, description: 'the review', schema: ReviewViewSchema },
    errors: [404],
    temporal: true,
  },
  // ---- waivers
  {
    method: 'get',
    path: '/api/v1/waivers',
    summary: 'List waivers',
    tag: 'waivers',
    access: 'viewer',
    ok: { status: 200, description: 'the tenant’s waivers' },
  },
  {
    method: 'post',
    path: '/api/v1/waivers',
    summary: 'Create a waiver (pending until approved; at most 90 days)',
    tag: 'waivers',
    access: 'operator',
    body: waivers.CreateSchema,
    ok: { status: 201, description: 'created' },
    errors: [409],
  },
  {
    method: 'get',
    path: '/api/v1/waivers/:id',
    summary: 'One waiver',
    tag: 'waivers',
    access: 'viewer',
    params: { id: waivers.WaiverId },
    ok: { status: 200, description: 'the waiver' },
    errors: [404],
  },
  {
    method: 'patch',
    path: '/api/v1/waivers/:id',
    summary: 'Change a pending waiver',
    tag: 'waivers',
    access: 'operator',
    params: { id: waivers.WaiverId },
    body: waivers.UpdateSchema,
    ok: { status: 200, description: 'the changed waiver' },
    errors: [404, 409],
  },
  ...(['approve', 'revoke'] as const).map((action): Operation => ({
    method: 'post',
    path: `/api/v1/waivers/:id/${action}`,
    summary: `${action === 'approve' ? 'Approve' : 'Revoke'} a waiver`,
    tag: 'waivers',
    access: 'approver',
    params: { id: waivers.WaiverId },
    body: waivers.DecisionSchema,
    ok: { status: 200, description: 'the waiver' },
    errors: [404, 409],
  })),
  // ---- repositories (a tenant's resources; a task names one)
  {
    method: 'get',
    path: '/api/v1/repositories',
    summary: 'List the tenant’s registered repositories',
    tag: 'repositories',
    access: 'viewer',
    ok: { status: 200, description: 'the repositories' },
  },
  {
    method: 'post',
    path: '/api/v1/repositories',
    summary:
      'Register a repository (https://, ssh://, or file:// under a root configured for the tenant) with credentials by secret reference',
    tag: 'repositories',
    access: 'admin',
    body: repositories.RepositoryInputSchema,
    ok: { status: 201, description: 'registered' },
    errors: [409],
  },
  {
    method: 'get',
    path: '/api/v1/repositories/:id',
    summary: 'One of the tenant’s repositories',
    tag: 'repositories',
    access: 'viewer',
    params: { id: repositories.RepositoryIdSchema },
    ok: { status: 200, description: 'the repository' },
    errors: [404],
  },
  {
    method: 'delete',
    path: '/api/v1/repositories/:id',
    summary: 'Remove one of the tenant’s repositories (running tasks keep the source they fetched)',
    tag: 'repositories',
    access: 'admin',
    params: { id: repositories.RepositoryIdSchema },
    ok: { status: 204, description: 'removed' },
    errors: [404],
  },
  // ---- the model registry (api/routes/models.ts): versions, ONNX files in the blob store, status
  {
    method: 'get',
    path: '/api/v1/models',
    summary: 'List the tenant’s models: version count, latest and active version',
    tag: 'models',
    access: 'viewer',
    ok: { status: 200, description: 'the models' },
  },
  {
    method: 'get',
    path: '/api/v1/models/:name',
    summary: 'One model and its versions, newest semantic version first',
    tag: 'models',
    access: 'viewer',
    params: models.ModelParamsSchema.shape,
    ok: { status: 200, description: 'the model' },
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/v1/models/:name/versions',
    summary:
      'Register a version: the ONNX file as application/octet-stream (streamed into the blob store; ?version= optional, default the next patch), or JSON naming a stored blob (artifact) or a federation campaign’s result (from)',
    tag: 'models',
    access: 'operator',
    params: models.ModelParamsSchema.shape,
    query: models.UploadQuerySchema,
    body: models.RegisterVersionBodySchema,
    altBodies: { 'application/octet-stream': z.string().meta({ format: 'binary', description: 'the ONNX file' }) },
    ok: { status: 201, description: 'registered (status registered; validation reads its signature)' },
    errors: [404, 409, 413, 415],
  },
  {
    method: 'get',
    path: '/api/v1/models/:name/versions/:version',
    summary: 'One version: artifact, signature, provenance, metrics, settings, status and its history with evidence',
    tag: 'models',
    access: 'viewer',
    params: models.VersionParamsSchema.shape,
    ok: { status: 200, description: 'the version' },
    errors: [404],
  },
  {
    method: 'get',
    path: '/api/v1/models/:name/versions/:version/artifact',
    summary: 'Download the version’s ONNX file (streamed, verified against its sha256 as it is read)',
    tag: 'models',
    access: 'viewer',
    params: models.VersionParamsSchema.shape,
    ok: {
      status: 200,
      description: 'the ONNX file, with Content-Length and an ETag of its sha256',
      type: 'application/onnx',
    },
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/v1/models/:name/versions/:version/validate',
    summary:
      'Validate a registered version on the inference pool (modelValidationWorkflow): load in ONNX Runtime, signature against the active version, golden set, latency bound; the outcome (validated or rejected, with the report) shows on the version',
    tag: 'models',
    access: 'operator',
    params: models.VersionParamsSchema.shape,
    body: models.ValidateBodySchema,
    ok: { status: 202, description: 'started; the workflow id' },
    errors: [404, 409],
    temporal: true,
  },
  {
    method: 'post',
    path: '/api/v1/models/:name/versions/:version/retire',
    summary: 'Retire a registered, validated or active version (a canary is rolled back through its rollout instead)',
    tag: 'models',
    access: 'admin',
    params: models.VersionParamsSchema.shape,
    body: models.RetireBodySchema,
    ok: { status: 200, description: 'the retired version' },
    errors: [404, 409],
  },
  // ---- predictions and rollouts (api/routes/predictions.ts): served by the inference pool, rolled out by workflows
  {
    method: 'post',
    path: '/api/v1/models/:name/predict',
    summary:
      'Predict with the served model: routed by the rollout weights (exact WRR), sticky by `key`, or pinned by the x-model-version header (a version, canary or baseline); every answer has a prediction_id',
    tag: 'models',
    access: 'viewer',
    params: { name: rolloutDefs.ModelNameSchema },
    body: predictionDefs.PredictBodySchema,
    ok: { status: 200, description: 'the prediction: prediction_id, version, outputs, predicted classes' },
    errors: [404, 503],
  },
  {
    method: 'post',
    path: '/api/v1/models/:name/predictions/:id/feedback',
    summary: 'Attach a label to a prediction, and through it to the version that answered (accuracy)',
    tag: 'models',
    access: 'operator',
    params: { name: rolloutDefs.ModelNameSchema, id: predictionDefs.PredictionIdSchema },
    body: predictionDefs.FeedbackBodySchema,
    ok: { status: 200, description: 'the labelled prediction: version, predicted, correct' },
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/v1/models/:name/versions/:version/rollout',
    summary: 'Start a rollout of a validated version (canary steps with automatic analysis, or blue-green)',
    tag: 'models',
    access: 'admin',
    params: { name: rolloutDefs.ModelNameSchema, version: rolloutDefs.VersionSchema },
    body: rolloutDefs.RolloutOptionsSchema,
    ok: { status: 202, description: 'started; the workflow id' },
    errors: [409],
    temporal: true,
  },
  {
    method: 'get',
    path: '/api/v1/models/:name/versions/:version/rollout',
    summary: 'The rollout’s status: phase, step, weights, analysis, decisions',
    tag: 'models',
    access: 'viewer',
    params: { name: rolloutDefs.ModelNameSchema, version: rolloutDefs.VersionSchema },
    ok: { status: 200, description: 'the status' },
    errors: [404],
    temporal: true,
  },
  ...(['promote', 'abort', 'pause', 'resume'] as const).map((action): Operation => ({
    method: 'post',
    path: `/api/v1/models/:name/versions/:version/rollout/${action}`,
    summary: {
      promote: 'Promote the canary now (skip to 100%; it becomes active, the old version retires)',
      abort: 'Abort: the canary’s weight goes to 0 at once and the version is rolled back',
      pause: 'Pause the rollout at its current step',
      resume: 'Resume a paused rollout',
    }[action],
    tag: 'models',
    access: action === 'promote' || action === 'abort' ? 'admin' : 'operator',
    params: { name: rolloutDefs.ModelNameSchema, version: rolloutDefs.VersionSchema },
    body: predictionDefs.RolloutActionSchema,
    ok: { status: action === 'promote' || action === 'abort' ? 200 : 202, description: 'done' },
    errors: action === 'promote' || action === 'abort' ? [404, 409] : [404],
    temporal: true,
  })),
  // ---- tools (the MCP tool registry)
  {
    method: 'get',
    path: '/api/v1/tools/servers',
    summary: 'List the MCP tool servers the tenant sees (its own and the platform’s), with health',
    tag: 'tools',
    access: 'viewer',
    ok: { status: 200, description: 'the servers' },
    temporal: true,
  },
  {
    method: 'post',
    path: '/api/v1/tools/servers',
    summary: 'Register an MCP server (stdio or Streamable HTTP) and discover its tools',
    tag: 'tools',
    access: 'admin',
    body: tools.ToolServerInputSchema,
    ok: { status: 201, description: 'registered; the answer carries the discovered tools and the health' },
    errors: [409],
    temporal: true,
  },
  {
    method: 'get',
    path: '/api/v1/tools/servers/:id',
    summary: 'One MCP server, with its discovered tools (input schemas, capabilities, levels) and health',
    tag: 'tools',
    access: 'viewer',
    params: { id: tools.ServerIdSchema },
    ok: { status: 200, description: 'the server' },
    errors: [404],
    temporal: true,
  },
  {
    method: 'post',
    path: '/api/v1/tools/servers/:id/refresh',
    summary: 'Discover the server’s tools again (tools/list); an unreachable server is marked unhealthy',
    tag: 'tools',
    access: 'admin',
    params: { id: tools.ServerIdSchema },
    ok: { status: 200, description: 'the server as discovered now' },
    errors: [404],
    temporal: true,
  },
  {
    method: 'patch',
    path: '/api/v1/tools/servers/:id',
    summary: 'Enable or disable one of the tenant’s servers',
    tag: 'tools',
    access: 'admin',
    params: { id: tools.ServerIdSchema },
    body: toolRoutesModule.PatchServerSchema,
    ok: { status: 200, description: 'the changed server' },
    errors: [404, 409],
    temporal: true,
  },
  // ---- keys and tenants
  {
    method: 'get',
    path: '/api/v1/keys',
    summary: 'List the tenant’s API keys',
    tag: 'keys',
    access: 'admin',
    ok: { status: 200, description: 'the keys (never their secrets)' },
  },
  {
    method: 'post',
    path: '/api/v1/keys',
    summary: 'Create an API key (its secret is shown once)',
    tag: 'keys',
    access: 'admin',
    body: keys.CreateKeySchema,
    ok: { status: 201, description: 'created' },
    errors: [409],
  },
  {
    method: 'post',
    path: '/api/v1/keys/:id/revoke',
    summary: 'Revoke an API key',
    tag: 'keys',
    access: 'admin',
    params: { id: keys.KeyId },
    ok: { status: 200, description: 'revoked' },
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/v1/tenants',
    summary: 'Create a tenant with its first admin key (bootstrap tenant admins only)',
    tag: 'keys',
    access: 'admin',
    body: keys.CreateTenantSchema,
    ok: { status: 201, description: 'created' },
    errors: [409],
  },
  // ---- audit
  {
    method: 'get',
    path: '/api/v1/audit/events',
    summary: 'Query the tenant’s audit events, cursor pagination',
    tag: 'audit',
    access: 'viewer',
    query: audit.ListQuerySchema,
    ok: { status: 200, description: 'a page of events' },
  },
  {
    method: 'get',
    path: '/api/v1/audit/events/:id',
    summary: 'One audit event',
    tag: 'audit',
    access: 'viewer',
    params: { id: audit.EventIdSchema },
    ok: { status: 200, description: 'the event, exactly as hashed' },
    errors: [404],
  },
  {
    method: 'get',
    path: '/api/v1/audit/export',
    summary: 'Export matching events as JSON Lines',
    tag: 'audit',
    access: 'admin',
    query: audit.ExportQuerySchema,
    ok: { status: 200, description: 'one event per line', type: 'application/x-ndjson' },
  },
  {
    method: 'get',
    path: '/api/v1/audit/verify',
    summary: 'Verify the hash chain and its signed checkpoints',
    tag: 'audit',
    access: 'admin',
    query: audit.EmptyQuerySchema,
    ok: { status: 200, description: 'the verification result' },
  },
  // ---- Temporal Web UI codec
  ...(['encode', 'decode'] as const).flatMap((operation): Operation[] => [
    {
      method: 'options',
      path: `${codec.CODEC_BASE_PATH}/${operation}`,
      summary: `CORS preflight of ${operation} (the Temporal Web UI’s origin only)`,
      tag: 'codec',
      access: 'public',
      ok: { status: 204, description: 'preflight answered', type: 'text/plain' },
    },
    {
      method: 'post',
      path: `${codec.CODEC_BASE_PATH}/${operation}`,
      summary: `${operation === 'encode' ? 'Encrypt' : 'Decrypt'} payloads for the Temporal Web UI`,
      tag: 'codec',
      access: 'viewer',
      body: codec.PayloadsBodySchema,
      ok: { status: 200, description: `the payloads, ${operation}d`, schema: codec.PayloadsBodySchema },
      errors: [404],
    },
  ]),
  // ---- MCP (api/mcp.ts): any authenticated caller; each tool needs the role of its REST route
  {
    method: 'post',
    path: MCP_PATH,
    summary: 'Model Context Protocol over Streamable HTTP (stateless): task tools and agency://tasks/{id} resources',
    tag: 'mcp',
    access: 'authenticated',
    body: McpMessageSchema,
    ok: { status: 200, description: 'the JSON-RPC response (202 for a notification); a refused tool call is isError' },
    errors: [406, 413],
  },
  ...(['get', 'delete'] as const).map((method): Operation => ({
    method,
    path: MCP_PATH,
    summary: `Always 405: the MCP endpoint is stateless (no ${method === 'get' ? 'server-sent stream' : 'session'})`,
    tag: 'mcp',
    access: 'authenticated',
    ok: { status: 405, description: 'method not allowed', type: 'application/problem+json', schema: ProblemSchema },
  })),
  // ---- federation (api/routes/federation-openapi.ts)
  ...FEDERATION_OPERATIONS,
  // ---- runtime tuning (api/routes/tuning-openapi.ts)
  ...TUNING_OPERATIONS,
];

const ERROR_TITLES: Record<number, string> = {
  400: 'the request is invalid (issues lists what the schema rejected)',
  401: 'authentication required or invalid',
  403: 'the caller lacks the role',
  404: 'not found (or another tenant’s)',
  406: 'the Accept header lacks application/json and text/event-stream',
  409: 'conflict: already exists, already ended, or a refused decision',
  413: 'the request body is too large',
  415: 'the request body has a media type the route does not take',
  429: 'rate limited (Retry-After)',
  500: 'unexpected error (logged, with the correlation id)',
  503: 'a dependency is unavailable (Retry-After)',
};

/** Express path → OpenAPI path: /api/v1/tasks/:id → /api/v1/tasks/{id}. */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function bodyContent(alt: Record<string, z.ZodType> = {}): Record<string, { schema: z.ZodType }> {
  return Object.fromEntries(Object.entries(alt).map(([type, schema]) => [type, { schema }]));
}

function routeConfig(op: Operation): RouteConfig {
  const statuses = new Set(op.errors ?? []);
  if (op.access !== 'public') for (const s of [400, 401, 403, 429, 500]) statuses.add(s);
  if (op.access === 'authenticated') statuses.delete(403);
  if (op.temporal) statuses.add(503);
  if (op.body || op.query || op.params) statuses.add(400);
  const responses: RouteConfig['responses'] = {
    [op.ok.status]: {
      description: op.ok.description,
      content: { [op.ok.type ?? JSON_TYPE]: { schema: op.ok.schema ?? z.unknown() } },
    },
  };
  for (const status of [...statuses].sort()) {
    responses[status] = {
      description: ERROR_TITLES[status] ?? 'error',
      ...(status === 503 || status === 429
        ? { headers: { 'Retry-After': { description: 'seconds to wait', schema: { type: 'integer' } } } }
        : {}),
      content: { 'application/problem+json': { schema: ProblemSchema } },
    };
  }
  return {
    method: op.method,
    path: openApiPath(op.path),
    summary: op.summary,
    tags: [op.tag],
    ...(op.access === 'public'
      ? { security: [] }
      : op.access === 'authenticated'
        ? { description: 'Any authenticated caller; each call needs its own role (admin implies every role).' }
        : { description: `Requires the ${op.access} role (admin implies every role).` }),
    request: {
      ...(op.params ? { params: z.object(op.params) } : {}),
      ...(op.query ? { query: op.query } : {}),
      ...(op.body
        ? { body: { required: true, content: { [JSON_TYPE]: { schema: op.body }, ...bodyContent(op.altBodies) } } }
        : {}),
    },
    responses,
  };
}

let cached: object | undefined;

/** The document (built once per process). */
export function openApiDocument(): object {
  if (cached) return cached;
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'apiKey', { type: 'apiKey', in: 'header', name: 'X-API-Key' });
  registry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'an API key (ak_…) or a JWT',
  });
  for (const op of OPERATIONS) registry.registerPath(routeConfig(op));
  const { version } = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
  cached = new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Agent Agency API',
      version,
      description:
        'Tasks, council, waivers, keys and audit of Agent Agency. Errors are application/problem+json. ' +
        'Every request gets an x-correlation-id (yours, if well-formed), which the task’s logs carry too.',
    },
    security: [{ apiKey: [] }, { bearer: [] }],
  });
  return cached;
}

export function openApiRoutes(): Router {
  const router = Router();
  router.get(OPENAPI_PATH, (_req, res) => {
    res.json(openApiDocument());
  });
  return router;
}
