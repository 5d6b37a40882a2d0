/**
 * Contracts of the council (CAWS.md, "Council"): the four judges and their weights, a judge's verdict, the final
 * verdict, the consensus strategies and what a judge is given to evaluate. Workflow-safe: zod only.
 */
import { z } from 'zod';
import { WorkingSpecSchema } from '../task/spec.js';

export const JUDGE_IDS = ['constitutional', 'technical', 'quality', 'integration'] as const;
export const JudgeIdSchema = z.enum(JUDGE_IDS);
export type JudgeId = z.infer<typeof JudgeIdSchema>;

export interface JudgeDefinition {
  id: JudgeId;
  /** Share of the weighted score; the four weights sum to 1. */
  weight: number;
  /**
   * A veto holder's `fail` or `uncertain` (its own error or timeout, a model provider's included) rejects, whatever
   * the score; a vote lost to infrastructure (no worker answered for it) does not: the council escalates.
   */
  veto: boolean;
  role: string;
}

/**
 * The council. Only the constitutional judge holds a veto; independently of it, a critical violation reported by any
 * judge also vetoes (see consensus.ts).
 */
export const JUDGES: Readonly<Record<JudgeId, JudgeDefinition>> = {
  constitutional: {
    id: 'constitutional',
    weight: 0.4,
    veto: true,
    role: 'budgets, waivers, evidence, provenance, ethics/privacy/safety rubric',
  },
  technical: {
    id: 'technical',
    weight: 0.2,
    veto: false,
    role: 'security, complexity, architecture, dependencies, performance',
  },
  quality: {
    id: 'quality',
    weight: 0.2,
    veto: false,
    role: 'acceptance criteria met, completeness, correctness, maintainability',
  },
  integration: {
    id: 'integration',
    weight: 0.2,
    veto: false,
    role: 'contract breaks, cross-file consistency, migration safety, breaking changes',
  },
};

export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const;
export const SeveritySchema = z.enum(SEVERITIES);
export type Severity = z.infer<typeof SeveritySchema>;

export const ViolationSchema = z.object({
  rule_id: z.string().min(1),
  severity: SeveritySchema,
  waivable: z.boolean(),
  message: z.string(),
  file: z.string().optional(),
  line: z.number().int().min(0).optional(),
});
export type Violation = z.infer<typeof ViolationSchema>;

export const EvidenceSchema = z.object({
  type: z.enum(['static_check', 'test', 'research']),
  /** Where to look: `file:line`, `file`, `gate:<name>`, `command:<n>` or `spec:<field>`. */
  ref: z.string().min(1),
  summary: z.string(),
});
export type Evidence = z.infer<typeof EvidenceSchema>;

export const VerdictSchema = z.enum(['pass', 'fail', 'uncertain']);
export type Verdict = z.infer<typeof VerdictSchema>;

export const JudgeVerdictSchema = z.object({
  judge_id: JudgeIdSchema,
  /** The evaluator's name and version, so that a stored verdict says which rules produced it. */
  version: z.string().min(1),
  verdict: VerdictSchema,
  score: z.number().min(0).max(1),
  reasons: z.array(z.string()),
  violations: z.array(ViolationSchema),
  evidence: z.array(EvidenceSchema),
  /**
   * Set only on the stand-in for a vote that no worker delivered (the worker running it was lost, or none took it)
   * within the round: infrastructure, not the judge's doubt. Such a vote never vetoes; the council escalates.
   */
  unavailable: z.literal('infrastructure').optional(),
});
export type JudgeVerdict = z.infer<typeof JudgeVerdictSchema>;

/** A dissenting judge and its reasons; shared with every judge in a revise round. */
export const DissentSchema = z.object({ judge_id: JudgeIdSchema, reasons: z.array(z.string()) });
export type Dissent = z.infer<typeof DissentSchema>;

export const FinalVerdictSchema = z.object({
  decision: z.enum(['accept', 'reject', 'modify']),
  /** The weighted score of consensus.ts, in [0, 1], rounded to 6 decimals. */
  score: z.number().min(0).max(1),
  votes: z.array(
    z.object({
      judge_id: JudgeIdSchema,
      weight: z.number().min(0).max(1),
      verdict: VerdictSchema,
      score: z.number().min(0).max(1),
    }),
  ),
  dissent: z.array(DissentSchema),
  remediation: z.array(z.string()),
  /** Rule ids behind the decision: the constitutional judge's violations and every vetoing (critical) violation. */
  constitutional_refs: z.array(z.string()),
  /** True when a person decided after the council escalated. */
  escalated: z.boolean(),
  /** Voting rounds held (1 = decided on the first vote). */
  rounds: z.number().int().min(1),
});
export type FinalVerdict = z.infer<typeof FinalVerdictSchema>;

export const CONSENSUS_STRATEGIES = ['weighted', 'majority', 'unanimous'] as const;
export const ConsensusStrategySchema = z.enum(CONSENSUS_STRATEGIES);
export type ConsensusStrategy = z.infer<typeof ConsensusStrategySchema>;

export const GateStatusSchema = z.object({
  gate: z.string().min(1),
  status: z.enum(['pass', 'fail', 'waived']),
  reason: z.string(),
  /**
   * Per acceptance criterion, the tests the gate's report maps to it (the criterion's id in the test's name) and how
   * they ended: the only evidence the quality judge counts as coverage.
   */
  acceptance: z
    .array(
      z.object({
        id: z.string(),
        passed: z.number().int().min(0),
        failed: z.number().int().min(0),
        skipped: z.number().int().min(0).default(0),
      }),
    )
    .optional(),
});
export type GateStatus = z.infer<typeof GateStatusSchema>;

export const ActiveWaiverSchema = z.object({ id: z.string().min(1), gates: z.array(z.string().min(1)) });
export type ActiveWaiver = z.infer<typeof ActiveWaiverSchema>;

/** What each judge evaluates. The plan phase judges the spec before anything runs; the result phase judges the diff. */
export const JudgeInputSchema = z.object({
  phase: z.enum(['plan', 'result']),
  tier: z.union([z.literal(1), z.literal(2), z.literal(3)]),
  spec: WorkingSpecSchema,
  /** Unified diff (git format) of the change; result phase. */
  diff: z.string().optional(),
  /** Workspace-relative paths the plan's steps touch; plan phase (defaults to the paths of the spec's steps). */
  plannedFiles: z.array(z.string()).optional(),
  /** Argv of each command the plan runs. */
  commands: z.array(z.array(z.string())),
  /** The change budget in force (tier default or spec, plus any budget waiver's delta). */
  budget: z.object({ maxFiles: z.number().int().min(1), maxLoc: z.number().int().min(1) }),
  /** Outcome of each quality gate; result phase. */
  gates: z.array(GateStatusSchema),
  /** Waivers active now (expiry already checked by the caller) with the gates they cover. */
  activeWaivers: z.array(ActiveWaiverSchema),
  /** Dissenting judges' reasons from the previous round, in a revise round. */
  dissent: z.array(z.object({ judge_id: z.string(), reasons: z.array(z.string()) })).optional(),
});
export type JudgeInput = z.infer<typeof JudgeInputSchema>;
