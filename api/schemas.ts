/**
 * The input schemas of the task and council operations, once: the REST routes, the MCP tools (api/mcp.ts) and the
 * OpenAPI document (api/routes/openapi.ts) all use these. Validate with `validate` (api/errors.ts).
 */
import { z } from 'zod';
import { ConsensusStrategySchema, GateStatusSchema } from '../workflows/council/definitions.js';
import { TaskStatusSchema } from '../workflows/task/definitions.js';

export const SHA256 = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 hex digest');

/** A page of a list: at most `limit` items after the `cursor` (the previous page's nextCursor). */
export const PageQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().max(4096).optional(),
  })
  .strict();

export const EmptyBodySchema = z.object({}).strict();

/** An approval decision on the plan or diff with this hash (a task's, or the task behind a council session). */
export const DecisionBodySchema = z.object({ hash: SHA256, reason: z.string().max(2000).optional() }).strict();
/** POST /api/v1/tasks/:id/approval-token: the decision to sign for the caller, to send as a signal themselves. */
export const ApprovalTokenBodySchema = z
  .object({ decision: z.enum(['approve', 'reject']), hash: SHA256, reason: z.string().max(2000).optional() })
  .strict();

/** A working spec as an object, or as YAML/JSON text (checked by api/spec-input.ts). */
const SpecSchema = z.union([z.string().min(1), z.record(z.string(), z.unknown())]);

// ---- tasks

export const TaskListQuerySchema = z
  .object({
    status: TaskStatusSchema.optional(),
    risk_tier: z.coerce.number().int().min(1).max(3).optional(),
    ...PageQuerySchema.shape,
  })
  .strict();

export const ClarifyBodySchema = z.object({ spec: SpecSchema, strict_spec: z.boolean().default(false) }).strict();

// ---- council

export const SessionIdSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,200}$/, 'a council session id');

export const ReviewBodySchema = z
  .object({
    diff: z.string().min(1).max(5_000_000),
    spec: SpecSchema,
    strict_spec: z.boolean().default(false),
    consensus: ConsensusStrategySchema.default('weighted'),
    /** Evidence from the caller's own run (CI): without gate results the council cannot accept. */
    gates: z.array(GateStatusSchema.strict()).max(50).default([]),
  })
  .strict();

/** A review's id: `review-` and the sha256 of its tenant and canonical input (api/review-service.ts). */
export const ReviewIdSchema = z.string().regex(/^review-[0-9a-f]{64}$/, 'a review id: review- and 64 hex digits');
