/**
 * Contracts of the canaryRollout workflow: input (steps, sample counts, durations, thresholds), status, messages and
 * the workflow-id builder. Workflow-safe; imported by the workflow, the API (validation, typed handles), the rollout
 * activities (types) and tests.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';

export const ModelNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, dot, dash and underscore; at most 63');
export const VersionSchema = z
  .string()
  .regex(/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/, 'a semantic version such as 1.2.0 or 2.0.0-rc.1');

export const ThresholdsSchema = z
  .object({
    alpha: z.number().gt(0).lt(1).default(0.05),
    pauseLr: z.number().min(1).default(5),
    maxP95Ratio: z.number().min(1).default(1.25),
    minLatencySamples: z.number().int().min(5).default(30),
    bootstrapIterations: z.number().int().min(100).max(10_000).default(1000),
  })
  .strict();

/** The rollout's configuration; the API validates a request body against it (unknown keys refused). */
export const RolloutOptionsSchema = z
  .object({
    strategy: z.enum(['canary', 'blue-green']).default('canary'),
    /** Canary percentages, increasing, the last 100. */
    steps: z
      .array(z.number().gt(0).max(100))
      .min(1)
      .max(20)
      .default([5, 10, 25, 50, 100])
      .refine((s) => s.every((p, i) => i === 0 || p > s[i - 1]!) && s[s.length - 1] === 100, {
        message: 'steps must increase and end at 100',
      }),
    /** Canary requests (routed by the weights) a step needs before it may end. */
    min_samples: z.number().int().min(1).max(10_000_000).default(1000),
    /** The least time a step lasts (ms); blue-green: how long the old version stays warm for a rollback. */
    min_step_ms: z
      .number()
      .int()
      .min(0)
      .max(7 * 86_400_000)
      .default(60_000),
    /** A step that has not completed after this long pauses for a person (too little traffic to decide). */
    max_step_ms: z
      .number()
      .int()
      .min(1000)
      .max(30 * 86_400_000)
      .default(3_600_000),
    /** How often errors and accuracy are analysed while a step runs (ms). */
    analysis_interval_ms: z.number().int().min(50).max(3_600_000).default(5000),
    /** Mirror this share (percent) of baseline requests to the canary during the rollout (never returned). */
    shadow_percent: z.number().min(0).max(100).default(0),
    thresholds: ThresholdsSchema.prefault({}),
  })
  .strict();
export type RolloutOptions = z.output<typeof RolloutOptionsSchema>;
export type Thresholds = z.output<typeof ThresholdsSchema>;

export interface RolloutInput {
  tenantId: string;
  model: string;
  version: string;
  requestedBy: string;
  options: RolloutOptions;
}

export type RolloutPhase = 'preparing' | 'stepping' | 'paused' | 'baking' | 'promoted' | 'rolled_back' | 'aborted';
export const FINAL_PHASES: readonly RolloutPhase[] = ['promoted', 'rolled_back', 'aborted'];

export interface StepWindow {
  percent: number;
  startedAt: string;
  endedAt?: string;
}

export interface ArmSummary {
  requests: number;
  errors: number;
  labelled: number;
  wrong: number;
}

export interface AnalysisSummary {
  decision: 'hold' | 'continue' | 'pause' | 'rollback';
  reasons: string[];
  errorLr: number;
  accuracyLr: number;
  p95?: { ratio: number; lower: number; upper: number };
  /** This step's counts. */
  baseline: ArmSummary;
  canary: ArmSummary;
  at: string;
}

export interface RolloutDecision {
  at: string;
  action: string;
  by: string;
  reasons: string[];
}

export interface RolloutStatus {
  model: string;
  version: string;
  baselineVersion?: string;
  strategy: RolloutOptions['strategy'];
  phase: RolloutPhase;
  step: number;
  percent: number;
  steps: StepWindow[];
  analysis?: AnalysisSummary;
  decisions: RolloutDecision[];
}

export const PersonSchema = z
  .object({ by: z.string().min(1).max(200), reason: z.string().max(2000).optional() })
  .strict();
export type Person = z.infer<typeof PersonSchema>;

export const statusQuery = defineQuery<RolloutStatus>('status');
export const pauseSignal = defineSignal<[Person]>('pause');
export const resumeSignal = defineSignal<[Person]>('resume');
/** Skip to 100%: the canary becomes active (validator: not in a final phase). */
export const promoteUpdate = defineUpdate<RolloutStatus, [Person]>('promote');
/** Roll back now (validator: not in a final phase). */
export const abortUpdate = defineUpdate<RolloutStatus, [Person]>('abort');

export function rolloutWorkflowId(tenantId: string, model: string, version: string): string {
  return `canary-${tenantId}-${model}-${version}`;
}
