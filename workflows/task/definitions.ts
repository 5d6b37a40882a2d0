/**
 * Contracts of the agentTask workflow: input, result, progress, messages and the workflow-id builder.
 * Workflow-safe; imported by the workflow, the API (validation, typed handles), activities (types) and tests.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import { ConsensusStrategySchema, type FinalVerdict } from '../council/definitions.js';
import type { GateEvaluation, TrustScore } from './policy.js';
import type { RiskTier, WorkingSpec } from './spec.js';
import type { ToolApprovalRequest } from '../execution/tools.js';
import type { ApprovalPublicKeys, SignedDecision } from './decision-proof.js';

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
export type Budgets = z.infer<typeof BudgetsSchema>;

/** A working spec as submitted: an object, or YAML/JSON text. The API checks it with parseWorkingSpec. */
export const SpecInputSchema = z.union([z.string().min(1).max(1_000_000), z.record(z.string(), z.unknown())]);

/** A registered repository's id (common/repositories.ts), unique per tenant. */
export const RepositoryIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'the id of a registered repository: lower-case letters, digits and dashes');

/** A branch, tag or other ref to fetch: no leading dash (never an option), no `..`, no spaces or `@{`, `:` or `\`. */
export const GitRefSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(
    /^(?!-)(?!.*\.\.)(?!.*@\{)(?!.*\/\/)(?!.*\.lock$)(?!\/)(?!.*\/$)[A-Za-z0-9._/+-]+$/,
    'a git ref such as main or release/1.2',
  );

/** What a person (or CI, or an MCP client) submits. */
export const TaskRequestSchema = z
  .object({
    id: TaskIdSchema.optional(),
    title: z.string().trim().min(3).max(200),
    description: z.string().max(20_000).default(''),
    /** A registered repository of the caller's tenant (POST /api/v1/repositories), and the ref to work from. */
    repository: RepositoryIdSchema.optional(),
    ref: GitRefSchema.optional(),
    /** Opt-in delivery: push the accepted result as the branch agency/<task id> to the repository. */
    deliver: z.object({ branch: z.boolean() }).strict().optional(),
    /**
     * Deprecated: a local path on the workers' disk. Refused unless the operator allows local paths under
     * LOCAL_WORKSPACE_ROOTS for the tenant (the migration path); name a `repository` instead.
     */
    workspace: z
      .string()
      .min(1)
      .refine((p) => p.startsWith('/'), 'must be an absolute path to a git repository')
      .optional(),
    spec: SpecInputSchema.optional(),
    /** Unknown spec keys are errors instead of warnings. */
    strict_spec: z.boolean().default(false),
    mode: z.enum(['strict', 'auto', 'dry-run']).default('auto'),
    budgets: BudgetsSchema.default({ max_steps: 100, max_tokens: 200_000, max_cost_usd: 5 }),
    consensus: ConsensusStrategySchema.default('weighted'),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.repository === undefined && r.workspace === undefined)
      ctx.addIssue({ code: 'custom', path: ['repository'], message: 'name a registered repository (its id)' });
    if (r.repository !== undefined && r.workspace !== undefined)
      ctx.addIssue({ code: 'custom', path: ['workspace'], message: 'give a repository or a workspace, not both' });
    if (r.repository === undefined && (r.ref !== undefined || r.deliver !== undefined))
      ctx.addIssue({ code: 'custom', path: ['ref'], message: 'ref and deliver go with a repository' });
  });
export type TaskRequest = z.infer<typeof TaskRequestSchema>;

/**
 * The repository a task works on, as the workflow carries it: ids, the URL (never with credentials in it), the ref,
 * and the *name* of the secret the execution workers read at clone and push time. Never the secret itself.
 */
export interface RepositorySource {
  id: string;
  url: string;
  ref: string;
  authSecretRef?: string;
}

/** The repository fetched at one commit, as a git bundle in the blob store (the task's source from then on). */
export interface SourceSnapshot {
  kind: 'bundle';
  tenantId: string;
  /** sha256 of the bundle blob. */
  bundle: string;
  commit: string;
  repository: string;
  ref: string;
}

/** Where a task's files come from: a local path (the deprecated `workspace`) or a fetched repository. */
export type WorkspaceSource = string | SourceSnapshot;

/** What delivery pushed: the branch and its commit (TaskResult.delivery). */
export interface DeliveryOutcome {
  repository: string;
  branch: string;
  commit: string;
}

/** Timers and limits of a run. Set by the API from its configuration, so tests keep long timers short. */
export interface TaskSettings {
  approvalTimeoutMs: number;
  clarificationTimeoutMs: number;
  /** The council's time budget per round: a real timeout; judges that have not answered count as uncertain. */
  consensusTimeoutMs: number;
  /** A judge's vote lost to a worker is asked again on another after this long (CouncilRequest.judgeHandoverMs). */
  judgeHandoverMs?: number;
  /** Self-correction iterations (CAWS: at most 5). */
  maxIterations: number;
  /** The execution child continues as new after this many tool calls (or when Temporal suggests it). */
  continueAsNewAfterSteps: number;
  /** How long a workspace activity may go without a heartbeat before another execution worker takes it over. */
  executionHandoverMs?: number;
}

export const DEFAULT_TASK_SETTINGS: TaskSettings = {
  approvalTimeoutMs: 24 * 3_600_000,
  clarificationTimeoutMs: 24 * 3_600_000,
  consensusTimeoutMs: 5_000,
  maxIterations: 5,
  continueAsNewAfterSteps: 500,
};

/** The workflow's input: the checked request plus what the API adds (id, tenant, identity, correlation id). */
export interface AgentTaskInput {
  id: string;
  tenantId: string;
  correlationId: string;
  submittedBy: string;
  title: string;
  description: string;
  /** The deprecated local path ('' when the task names a repository). */
  workspace: string;
  /** The registered repository and ref (fetched by the execution pool at the start of the task). */
  repository?: RepositorySource;
  /** Opt-in delivery of the accepted result as a branch. */
  deliver?: { branch: boolean };
  /** The checked working spec, when the request carried one. */
  spec?: WorkingSpec;
  specWarnings?: string[];
  mode: 'strict' | 'auto' | 'dry-run';
  budgets: Budgets;
  consensus?: z.infer<typeof ConsensusStrategySchema>;
  settings?: Partial<TaskSettings>;
  /** The public keys signed decisions are checked against (the API's, at start); unknown ids are asked of an activity. */
  approvalKeys?: ApprovalPublicKeys;
}

/** Identifies a task to activities: tenant, ids, and the idempotency root for its side effects. */
export interface TaskRef {
  tenantId: string;
  taskId: string;
  workflowId: string;
  /** workflowId/firstExecutionRunId: stable across retries and continue-as-new; distinguishes a reused id. */
  executionKey: string;
  correlationId: string;
}

export interface ArtifactRef {
  sha256: string;
  mediaType: string;
  sizeBytes: number;
}

export interface NamedArtifact extends ArtifactRef {
  name: string;
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
  kind: string;
  passed: boolean;
  exitCode: number | null;
  durationMs: number;
  logRef: ArtifactRef;
  /** Coverage or mutation fraction read from the gate's report. */
  value?: number;
  /** The gate's input (its report) could not be read. */
  missing?: boolean;
  evidence: string;
  /** What the test report (JUnit) of a tests-like gate shows: test cases that ran, passed, failed, were skipped. */
  tests?: { ran: number; passed: number; failed: number; skipped: number };
  /** Per acceptance criterion, the tests mapped to it (its id in the test's name) and how they ended. */
  acceptance?: { id: string; passed: number; failed: number; skipped: number }[];
  /** The platform-named output directory this run's report was read from (workspace-relative; removed after). */
  outputDir?: string;
  /** The report as read, kept as an artifact. */
  reportRef?: ArtifactRef;
  /** Where the command came from: the spec, the repository's registration, or the tenant's default. */
  source?: 'spec' | 'repository' | 'tenant';
}

export interface ReviewFinding {
  rule: string;
  severity: 'info' | 'low' | 'medium' | 'high' | 'critical';
  file?: string;
  line?: number;
  message: string;
}

export interface RiskSummary {
  tier: RiskTier;
  specTier: RiskTier;
  score: number;
  method: string;
  dimensions: Record<string, { score: number; evidence: { kind: string; detail: string }[] }>;
  /** What was assessed: the planned steps (absent: the plan), or the actual diff before the result council. */
  basis?: 'plan' | 'diff';
  /** On the diff: the plan's tier, when the diff made the tier more critical (the stricter policy applies). */
  planTier?: RiskTier;
}

export interface VerdictSignature {
  alg: 'Ed25519';
  keyId: string;
  signature: string;
  payloadSha256: string;
}

export interface VerdictRecord {
  sessionId: string;
  phase: 'plan' | 'result';
  verdict: FinalVerdict;
  verdictRef: ArtifactRef;
  signature: VerdictSignature;
}

export interface ApprovalDecision {
  /** Who decided: set by the API from the authenticated principal, never from the request body. */
  approver: string;
  /** The hash of the plan or diff the approver saw. */
  hash: string;
  reason?: string;
}

export interface ApprovalAttempt extends ApprovalDecision {
  decision: 'approve' | 'reject';
  accepted: boolean;
  note: string;
  at: string;
  /** A signed decision whose signature verified: the key, its nonce, the approver's roles when it was signed. */
  verified?: { keyId: string; nonce: string; roles: string[]; signedAt: string };
  /** A refused attempt that did not verify: the approver it named, a claim nobody vouches for (`approver` is `unverified`). */
  claimedApprover?: string;
}

/**
 * The input of `approve`, `reject` and `decide`: a decision signed by the API (decision-proof.ts). The unsigned shape
 * (ApprovalDecision) is what runs from before signed decisions sent; today it is refused and recorded.
 */
export type DecisionMessage = SignedDecision | (ApprovalDecision & { decision?: 'approve' | 'reject' });

export interface PendingApproval {
  kind: 'plan' | 'result' | 'tool';
  hash: string;
  reasons: string[];
  deadline: string;
  /** Privileged tool calls the approval covers (`key` = server/tool/sha256 of the exact arguments). */
  toolCalls?: { step: number; key: string; serverId: string; tool: string }[];
}

export interface Usage {
  steps: number;
  tokens: number;
  costUsd: number;
}

export interface TaskResult {
  taskId: string;
  status: 'completed' | 'failed' | 'canceled';
  reason?: string;
  mode: AgentTaskInput['mode'];
  specRef?: ArtifactRef;
  diffRef?: ArtifactRef;
  diffHash?: string;
  filesChanged: string[];
  steps: StepOutcome[];
  gates: GateOutcome[];
  evaluations: GateEvaluation[];
  /** CAWS trust score from the measured gates (reported; the gates and the council decide). */
  trust?: TrustScore;
  risk?: RiskSummary;
  verdicts: VerdictRecord[];
  approvals: ApprovalAttempt[];
  artifacts: NamedArtifact[];
  usage: Usage;
  iterations: number;
  /**
   * What infrastructure (no worker running or answering), not a judge or a person, consumed during the task: council
   * votes lost to workers, deadlines that passed while no orchestration worker ran (deadlines.ts). Absent: none seen.
   */
  outages?: string[];
  /** The branch pushed to the repository (opt-in delivery). */
  delivery?: DeliveryOutcome;
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
  paused: boolean;
  riskTier?: RiskTier;
  planHash?: string;
  pendingApproval?: PendingApproval;
  pendingClarification?: { reasons: string[]; deadline: string };
  councilSessions: string[];
  usage: Usage;
}

export const progressQuery = defineQuery<TaskProgress>('progress');
export const clarifySignal = defineSignal<[{ spec: WorkingSpec; by: string }]>('clarify');
export const approveSignal = defineSignal<[DecisionMessage]>('approve');
export const rejectSignal = defineSignal<[DecisionMessage]>('reject');
/** From the execution child: an agent turn wants a privileged tool; a person decides (pendingApproval kind `tool`). */
export const toolApprovalRequestSignal = defineSignal<[ToolApprovalRequest]>('toolApprovalRequest');
export const pauseSignal = defineSignal<[{ by: string }]>('pause');
export const resumeSignal = defineSignal<[{ by: string }]>('resume');
export const cancelSignal = defineSignal<[{ by: string; reason?: string }]>('cancel');
/** The same decision as approve/reject, as an Update: the caller learns at once whether it was accepted. */
export const decideUpdate = defineUpdate<{ accepted: boolean; note: string; status: TaskStatus }, [DecisionMessage]>(
  'decide',
);

export function taskWorkflowId(taskId: string): string {
  return `task-${taskId}`;
}
