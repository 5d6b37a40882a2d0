/**
 * Contracts of the runtimeTuning workflow: its input (model version, workload, objective, budget, search space,
 * measurement and guardrail), a trial's candidate and figures, the `trials` query, the apply/cancel updates and the
 * workflow id. Workflow-safe (zod and @temporalio/workflow only): imported by the workflow, the API, the trial
 * activity (types) and the benchmark.
 *
 * A point of the search space becomes a candidate (`candidateOf`) by dimension name:
 *   session.intraOpNumThreads, session.interOpNumThreads, session.executionMode, session.graphOptimizationLevel,
 *   session.enableCpuMemArena, session.enableMemPattern, session.allowSpinning (both intra- and inter-op spinning,
 *   as the config entries session.intra_op.allow_spinning / session.inter_op.allow_spinning), session.config.<key>
 *   (any other ONNX Runtime session config entry), serving.maxBatchSize, serving.maxWaitMs, serving.concurrency.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import { SessionSettingsSchema, type SessionSettings } from '../../common/onnx/session-settings.js';
import { ServingPolicySchema, type ServingPolicy } from '../../common/serving-policy.js';
import { RolloutOptionsSchema } from '../models/rollout-definitions.js';
import { DeferralPolicySchema } from '../scheduling/decision.js';
import { SearchSpaceSchema, type Point, type SearchSpace } from './space.js';

export { ServingPolicySchema, type ServingPolicy };

/** The serving policy of a version that has none (activities/inference/serving/batcher.ts DEFAULT_BATCH). */
export const DEFAULT_SERVING: ServingPolicy = { maxBatchSize: 32, maxWaitMs: 2, concurrency: 2 };

export const CandidateSchema = z.object({ session: SessionSettingsSchema, serving: ServingPolicySchema }).strict();
export type Candidate = z.infer<typeof CandidateSchema>;

const SESSION_KEYS = [
  'intraOpNumThreads',
  'interOpNumThreads',
  'executionMode',
  'graphOptimizationLevel',
  'enableCpuMemArena',
  'enableMemPattern',
] as const;
const SPINNING_KEYS = ['session.intra_op.allow_spinning', 'session.inter_op.allow_spinning'];

/** The dimension names a search space may use. */
export function knownDimension(name: string): boolean {
  const [area, key, ...rest] = name.split('.');
  if (area === 'serving') return ['maxBatchSize', 'maxWaitMs', 'concurrency'].includes(key ?? '') && rest.length === 0;
  if (area !== 'session') return false;
  if (key === 'config') return rest.length >= 2;
  return rest.length === 0 && ((SESSION_KEYS as readonly string[]).includes(key ?? '') || key === 'allowSpinning');
}

/** The candidate a point describes: the base settings with every dimension of the point applied. */
export function candidateOf(point: Point, base: Candidate): Candidate {
  const session: SessionSettings = { ...base.session, configEntries: { ...base.session.configEntries } };
  const serving: ServingPolicy = { ...base.serving };
  for (const [name, value] of Object.entries(point)) {
    const [area, key, ...rest] = name.split('.');
    if (area === 'serving') (serving as Record<string, unknown>)[key!] = value;
    else if (key === 'allowSpinning') for (const k of SPINNING_KEYS) session.configEntries![k] = value ? '1' : '0';
    else if (key === 'config') session.configEntries![rest.join('.')] = String(value);
    else (session as Record<string, unknown>)[key!] = value;
  }
  if (Object.keys(session.configEntries!).length === 0) delete session.configEntries;
  return CandidateSchema.parse({ session, serving });
}

/**
 * The settings by which `candidate` differs from `base`, as dimension-like names ("session.executionMode",
 * "session.config.<key>", "serving.maxBatchSize"), for the guardrail's remediation.
 */
export function settingDifferences(candidate: Candidate, base: Candidate): string[] {
  const out: string[] = [];
  for (const k of SESSION_KEYS) if (candidate.session[k] !== base.session[k]) out.push(`session.${k}`);
  const keys = new Set([
    ...Object.keys(candidate.session.configEntries ?? {}),
    ...Object.keys(base.session.configEntries ?? {}),
  ]);
  for (const k of [...keys].sort())
    if (candidate.session.configEntries?.[k] !== base.session.configEntries?.[k]) out.push(`session.config.${k}`);
  for (const k of ['maxBatchSize', 'maxWaitMs', 'concurrency'] as const)
    if (candidate.serving[k] !== base.serving[k]) out.push(`serving.${k}`);
  return out;
}

/** `candidate` with one setting (a name from settingDifferences) put back to the base's value. */
export function revertSetting(candidate: Candidate, base: Candidate, setting: string): Candidate {
  const [area, key, ...rest] = setting.split('.');
  const next: Candidate = {
    session: { ...candidate.session, configEntries: { ...candidate.session.configEntries } },
    serving: { ...candidate.serving },
  };
  if (area === 'serving') (next.serving as Record<string, unknown>)[key!] = base.serving[key as keyof ServingPolicy];
  else if (key === 'config') {
    const k = rest.join('.');
    const b = base.session.configEntries?.[k];
    if (b === undefined) delete next.session.configEntries![k];
    else next.session.configEntries![k] = b;
  } else {
    const k = key as (typeof SESSION_KEYS)[number];
    if (base.session[k] === undefined) delete next.session[k];
    else (next.session as Record<string, unknown>)[k] = base.session[k];
  }
  if (Object.keys(next.session.configEntries!).length === 0) delete next.session.configEntries;
  return next;
}

/**
 * The default search space, for a machine of a few cores: session settings and serving policy together (batching and
 * concurrency move throughput by several times where session settings alone move it little). Thread counts go past
 * two on purpose: a catastrophic candidate must be survivable, not excluded by hand.
 */
export const DEFAULT_SPACE: SearchSpace = [
  { kind: 'ordinal', name: 'session.intraOpNumThreads', values: [1, 2, 4] },
  { kind: 'ordinal', name: 'session.interOpNumThreads', values: [1, 2, 4] },
  { kind: 'categorical', name: 'session.executionMode', values: ['sequential', 'parallel'] },
  { kind: 'categorical', name: 'session.graphOptimizationLevel', values: ['basic', 'extended', 'all'] },
  { kind: 'categorical', name: 'session.allowSpinning', values: [true, false] },
  { kind: 'categorical', name: 'session.enableCpuMemArena', values: [true, false] },
  { kind: 'categorical', name: 'session.enableMemPattern', values: [true, false] },
  { kind: 'ordinal', name: 'serving.maxBatchSize', values: [1, 4, 16, 64] },
  { kind: 'ordinal', name: 'serving.maxWaitMs', values: [0, 1, 2, 5] },
  { kind: 'ordinal', name: 'serving.concurrency', values: [1, 2, 4] },
];

export const RequestMixSchema = z
  .array(z.object({ rows: z.number().int().min(1).max(4096), weight: z.number().positive() }).strict())
  .min(1)
  .max(16);

/** The traffic a candidate is measured on: clients in flight, request sizes (rows) and their mix. */
export const WorkloadSpecSchema = z
  .object({
    /** Requests in flight at once (closed loop: each client sends its next request when the last is answered). */
    concurrency: z.number().int().min(1).max(256).default(8),
    mix: RequestMixSchema.default([{ rows: 1, weight: 1 }]),
    /** Requests per repetition. */
    requests: z.number().int().min(10).max(100_000).default(400),
    seed: z.number().int().default(1),
  })
  .strict();
export type WorkloadSpec = z.output<typeof WorkloadSpecSchema>;

export const ObjectiveSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('throughput') }).strict(),
  z.object({ kind: z.literal('p95') }).strict(),
  /** Maximise throughput·(p95 bound / p95)^latencyWeight… simply: maximise throughput while p95 ≤ bound. */
  z
    .object({
      kind: z.literal('weighted'),
      /** Candidates whose p95 exceeds this (ms) are penalised in proportion to the excess. */
      p95BoundMs: z.number().positive(),
      /** Weight of log p95 against log throughput (0..1); the rest is throughput's. */
      latencyWeight: z.number().min(0).max(1).default(0.3),
    })
    .strict(),
]);
export type Objective = z.output<typeof ObjectiveSchema>;

export const MeasurementSchema = z
  .object({
    warmupRequests: z.number().int().min(0).max(10_000).default(50),
    minRepetitions: z.number().int().min(1).max(50).default(3),
    maxRepetitions: z.number().int().min(1).max(100).default(8),
    /** Stop repeating once (max − min)/median of the throughput is at most this. */
    maxSpread: z.number().positive().max(10).default(0.1),
    /** A trial that takes longer is stopped and counts as failed (catastrophic candidates). */
    trialTimeoutMs: z.number().int().min(1000).max(3_600_000).default(60_000),
  })
  .strict();
export type Measurement = z.output<typeof MeasurementSchema>;

export const GuardrailSchema = z
  .object({
    /** Largest allowed absolute difference of any output value from the baseline's, on the probe rows. */
    tolerance: z.number().min(0).max(1).default(1e-4),
    probeRows: z.number().int().min(1).max(1024).default(64),
  })
  .strict();
export type Guardrail = z.output<typeof GuardrailSchema>;

export const TuningInputSchema = z
  .object({
    model: z.string().min(1).max(63),
    version: z.string().min(1).max(128),
    workload: WorkloadSpecSchema.prefault({}),
    objective: ObjectiveSchema.default({ kind: 'throughput' }),
    budget: z.number().int().min(1).max(500).default(20),
    strategy: z.enum(['bayesian', 'random']).default('bayesian'),
    space: SearchSpaceSchema.optional(),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31)
      .default(1),
    measurement: MeasurementSchema.prefault({}),
    guardrail: GuardrailSchema.prefault({}),
    /** Trials are deferrable work: they wait while the inference host is busy or hot (workflows/scheduling/). */
    deferral: DeferralPolicySchema.prefault({ maxDelayMs: 5 * 60_000 }),
    /** How the tuned version rolls out when applied (the canary by default). */
    rollout: z.enum(['canary', 'blue-green']).default('canary'),
  })
  .strict()
  .refine((i) => (i.space ?? []).every((d) => knownDimension(d.name)), {
    message: 'every dimension name must be a session.* or serving.* setting (see workflows/tuning/definitions.ts)',
    path: ['space'],
  });
export type TuningRequest = z.input<typeof TuningInputSchema>;
export type TuningOptions = z.output<typeof TuningInputSchema>;

export interface TuningInput extends TuningOptions {
  tenantId: string;
  requestedBy: string;
}

export interface Figures {
  /** Rows per second: median over repetitions, and (max − min)/median. */
  throughput: number;
  throughputSpread: number;
  /** Request latency p95 (ms): median over repetitions, and its spread. */
  p95Ms: number;
  p95Spread: number;
  repetitions: number;
}

export interface Remediation {
  /** The settings whose reversal alone brings the outputs back within tolerance (empty: none alone does). */
  culprits: string[];
  /** What each culprit was and what the baseline has. */
  changes: { setting: string; candidate: unknown; baseline: unknown; maxAbsDiffWhenReverted: number }[];
  advice: string[];
}

export interface GuardrailReport {
  passed: boolean;
  maxAbsDiff: number;
  tolerance: number;
  /** Share of probe rows whose argmax agrees with the baseline's. */
  agreement: number;
  remediation?: Remediation;
}

export type TrialStatus = 'ok' | 'rejected' | 'timeout' | 'failed';

export interface TrialResult {
  status: TrialStatus;
  figures?: Figures;
  guardrail?: GuardrailReport;
  error?: string;
  durationMs: number;
}

export interface TrialRecord {
  index: number;
  point: Point;
  candidate: Candidate;
  result: TrialResult;
  /** The objective (lower is better) the optimiser saw; null for a trial that did not count. */
  objective: number | null;
  deferredMs: number;
  startedAt: string;
}

export type TuningPhase = 'tuning' | 'done' | 'applying' | 'applied' | 'cancelled' | 'failed';

export interface TuningStatus {
  model: string;
  version: string;
  phase: TuningPhase;
  budget: number;
  trials: TrialRecord[];
  /** Index into trials of the best so far. */
  incumbent: number | null;
  /** The baseline trial (the version's own settings) is trial 0. */
  baseline: number | null;
  /** The tuned version, once applied. */
  appliedVersion?: string;
  rolloutWorkflowId?: string;
  scheduling: { trial: number; waitedMs: number; reason: string; over: string[] }[];
  error?: string;
}

export const trialsQuery = defineQuery<TuningStatus>('trials');

export const ApplyRequestSchema = z
  .object({
    /** The rollout's options (M2's canaryRollout: strategy, steps, samples, thresholds); default the run's strategy. */
    rollout: RolloutOptionsSchema.optional(),
    /** A trial other than the incumbent. */
    trial: z.number().int().min(0).optional(),
  })
  .strict();
export type ApplyRequest = z.output<typeof ApplyRequestSchema>;
/** Record the incumbent (or `trial`) as a new version and roll it out; answers with the status once recorded. */
export const applyUpdate = defineUpdate<TuningStatus, [ApplyRequest & { by: string }]>('apply');
export const cancelUpdate = defineUpdate<TuningStatus, [{ by: string }]>('cancel');

export function tuningWorkflowId(tenantId: string, runId: string): string {
  return `tuning-${tenantId}-${runId}`;
}

/**
 * The objective the optimiser minimises, from a trial's figures: −log throughput, log p95, or the weighted mix
 * −(1−w)·log throughput + w·log p95 plus a penalty growing with the excess over the p95 bound. Logs, because a
 * catastrophic candidate is 100× off: on a log scale it is a bad point, not one that flattens the rest.
 */
export function objectiveValue(objective: Objective, f: Figures): number {
  const logT = Math.log(Math.max(f.throughput, 1e-9));
  const logP = Math.log(Math.max(f.p95Ms, 1e-6));
  switch (objective.kind) {
    case 'throughput':
      return -logT;
    case 'p95':
      return logP;
    case 'weighted': {
      const excess = Math.max(0, logP - Math.log(objective.p95BoundMs));
      return -(1 - objective.latencyWeight) * logT + objective.latencyWeight * logP + 10 * excess;
    }
  }
}
