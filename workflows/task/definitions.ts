/**
 * Contracts of the agentTask workflow: input, result, progress, messages and the workflow-id builder.
 * Workflow-safe; imported by the workflow, the API (validation, typed handles), activities (types) and tests.
 */
import { defineQuery } from '@temporalio/workflow';
import { z } from 'zod';
import { WorkingSpecSchema } from './spec.js';

export const TASK_STATUSES = [
  'pending',
  'planning',
  'awaiting_clarification',
  'council_review',
  'awaiting_approval',
  'executing',
  'quality_check',
  'refining',
  'paused',
  'completed',
  'failed',
  'canceled',
] as const;
export const TaskStatusSchema = z.enum(TASK_STATUSES);
export type TaskStatus = z.infer<typeof TaskStatusSchema>;
export const FINAL_STATUSES: readonly TaskStatus[] = ['completed', 'failed', 'canceled'];

export const TaskIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, 'letters, digits, dot, dash and underscore; at most 100 characters');

export const BudgetsSchema = z
  .object({
    max_steps: z.number().int().min(1).max(10_000).default(100),
    max_tokens: z.number().int().min(0).default(200_000),
    max_cost_usd: z.number().min(0).default(5),
    deadline: z.iso.datetime({ offset: true }).optional(),
  })
  .strict();

/** What a person (or CI, or an MCP client) submits. */
export const TaskRequestSchema = z
  .object({
    id: TaskIdSchema.optional(),
    title: z.string().trim().min(3).max(200),
    description: z.string().max(20_000).default(''),
    workspace: z
      .string()
      .min(1)
      .refine((p) => p.startsWith('/'), 'must be an absolute path to a git repository'),
    spec: WorkingSpecSchema.optional(),
    mode: z.enum(['strict', 'auto', 'dry-run']).default('auto'),
    budgets: BudgetsSchema.default({ max_steps: 100, max_tokens: 200_000, max_cost_usd: 5 }),
  })
  .strict();
export type TaskRequest = z.infer<typeof TaskRequestSchema>;

/** The workflow's input: the request plus what the API adds (id, tenant, correlation id). */
export const AgentTaskInputSchema = TaskRequestSchema.extend({
  id: TaskIdSchema,
  tenantId: z.string().min(1),
  correlationId: z.string().min(1),
  submittedBy: z.string().min(1),
});
export type AgentTaskInput = z.infer<typeof AgentTaskInputSchema>;

export interface ArtifactRef {
  sha256: string;
  mediaType: string;
  sizeBytes: number;
}

export interface StepOutcome {
  index: number;
  kind: string;
  ok: boolean;
  detail: string;
  /** true when the step had already been applied (by an earlier attempt) and was not repeated. */
  skipped: boolean;
}

export interface GateOutcome {
  name: string;
  passed: boolean;
  exitCode: number | null;
  durationMs: number;
  logRef: ArtifactRef;
}

export interface ReviewFinding {
  rule: string;
  severity: 'info' | 'low' | 'medium' | 'high' | 'critical';
  file?: string;
  line?: number;
  message: string;
}

export interface TaskResult {
  taskId: string;
  status: 'completed' | 'failed' | 'canceled';
  reason?: string;
  specRef?: ArtifactRef;
  diffRef?: ArtifactRef;
  filesChanged: string[];
  steps: StepOutcome[];
  gates: GateOutcome[];
  review?: { passed: boolean; findings: ReviewFinding[] };
  risk?: { tier: 1 | 2 | 3; score: number; reasons: string[] };
}

export interface ProgressEvent {
  at: string;
  status: TaskStatus;
  message: string;
}

export interface TaskProgress {
  taskId: string;
  status: TaskStatus;
  step: string;
  percent: number;
  events: ProgressEvent[];
}

export const progressQuery = defineQuery<TaskProgress>('progress');

export function taskWorkflowId(taskId: string): string {
  return `task-${taskId}`;
}
