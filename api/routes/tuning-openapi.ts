/** The tuning routes (api/routes/tuning.ts) in the OpenAPI document (api/routes/openapi.ts). */
import { ApplyRequestSchema } from '../../workflows/tuning/definitions.js';
import type { Operation } from './openapi.js';
import { CancelBodySchema, TuningRequestSchema, TuningRunIdSchema } from './tuning.js';

const tag = 'tuning';
const id = { id: TuningRunIdSchema };

export const TUNING_OPERATIONS: readonly Operation[] = [
  {
    method: 'post',
    path: '/api/v1/tuning/runs',
    summary:
      'Start a runtime tuning run of a model version: Bayesian (or random) search over ONNX Runtime session settings and the serving policy, on a workload, under a trial budget',
    tag,
    access: 'operator',
    body: TuningRequestSchema,
    ok: { status: 201, description: 'started; Location names the run' },
    errors: [404, 409],
    temporal: true,
  },
  {
    method: 'get',
    path: '/api/v1/tuning/runs/:id',
    summary: 'A tuning run: each trial’s settings and figures (median and spread), guardrail reports, the incumbent',
    tag,
    access: 'viewer',
    params: id,
    ok: { status: 200, description: 'the run' },
    errors: [404],
    temporal: true,
  },
  {
    method: 'post',
    path: '/api/v1/tuning/runs/:id/apply',
    summary:
      'Record the best (or a chosen) trial’s settings as a new version of the same ONNX file and roll it out (canary by default, or blue-green)',
    tag,
    access: 'admin',
    params: id,
    body: ApplyRequestSchema,
    ok: { status: 200, description: 'recorded, validated and rollout started' },
    errors: [404, 409],
    temporal: true,
  },
  {
    method: 'post',
    path: '/api/v1/tuning/runs/:id/cancel',
    summary: 'Cancel a tuning run (a trial in progress is cancelled)',
    tag,
    access: 'operator',
    params: id,
    body: CancelBodySchema,
    ok: { status: 200, description: 'cancelled' },
    errors: [404, 409],
    temporal: true,
  },
];
