/** Contracts of the execution child workflow. Workflow-safe. */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { Waiver, GateEvaluation, PlannedGate } from '../task/policy.js';
import type { GateKind, RiskTier, WorkingSpec } from '../task/spec.js';
import type { ArtifactRef, GateOutcome, StepOutcome, TaskRef, Usage, WorkspaceSource } from '../task/definitions.js';
import type { AgentToolInfo, ToolApprovalDecision, ToolBinding, ToolGrant } from './tools.js';
import type { ApprovalPublicKeys, NonceState } from '../task/decision-proof.js';

export interface DiffSummary {
  diffRef: ArtifactRef;
  files: string[];
  linesAdded: number;
  linesRemoved: number;
}

/** One turn of the agent loop as the model sees it next time (bounded: detail is truncated). */
export interface AgentTurn {
  action: string;
  ok: boolean;
  detail: string;
}

/**
 * A task's workspace as the workflow knows it: ids and blob digests, never bytes (activities/execution/workspace.ts).
 * Every workspace activity brings its worker's copy to `head` first, so any execution worker can serve any step.
 */
export interface WorkspaceRef {
  /** One per execution run that prepared it: a reset run, or a rebuilt workflow, gets a workspace of its own. */
  id: string;
  tenantId: string;
  baseCommit: string;
  /** sha256 of the base commit's git bundle in the blob store. */
  baseBundle: string;
  /** The snapshot commit the workspace is at (baseCommit before any change). */
  head: string;
  /** sha256 of the bundle of base..head (absent while head is the base). */
  headBundle?: string;
  /** Changes recorded so far. */
  version: number;
}

/** What a continued-as-new run carries over. */
export interface ExecutionState {
  /** The workspace directory of runs started before workspaces were portable (one worker's disk). */
  workdir?: string;
  workspace?: WorkspaceRef;
  baseCommit?: string;
  /** Next spec step to apply (iteration 1). */
  nextStep: number;
  /** Global tool-call counter: the idempotency index of the next step. */
  stepCounter: number;
  outcomes: StepOutcome[];
  usage: Usage;
  iteration: number;
  history: AgentTurn[];
  seenActions: string[];
  bestScore?: number;
  /** The tools the agent loop may call (listed once per run, with a model only). */
  catalog?: AgentToolInfo[];
  lastGates?: GateOutcome[];
  lastEvaluations?: GateEvaluation[];
  /** A pause that has not been resumed (it may have arrived during the last step of the previous run). */
  paused?: boolean;
  /** Privileged calls approved so far (at plan time, or by a person during agent turns), by call key. */
  approvedCalls?: string[];
  /** The parent's answers to tool approval requests, by call key. */
  decisions?: Record<string, ToolApprovalDecision>;
  /** Nonces of the signed tool decisions taken (carried across continue-as-new: a replay is refused). */
  nonces?: NonceState;
}

export interface ExecutionInput {
  task: TaskRef;
  /** The public keys a forwarded tool decision's signature is checked against (the parent's). */
  approvalKeys?: ApprovalPublicKeys;
  /** Where the workspace is cloned from: a fetched repository's bundle, or the deprecated local path. */
  workspace: WorkspaceSource;
  title: string;
  description: string;
  spec: WorkingSpec;
  tier: RiskTier;
  waivers: Waiver[];
  budgets: { maxSteps: number; maxTokens: number; maxCostUsd: number };
  /** Already spent by the parent (planning, judges). */
  usage: Usage;
  /** A model is configured: the agent loop and self-correction can propose actions. */
  modelAvailable: boolean;
  maxIterations: number;
  continueAsNewAfterSteps: number;
  /** First step index for idempotency keys (the parent's steps so far). */
  stepBase: number;
  /** The spec steps' tool bindings (same order as spec.steps) and what the task may use; absent: bound per step. */
  tools?: { bindings: ToolBinding[]; grant: ToolGrant };
  /**
   * The gates to run (planGates: the tier policy's required gates with their registered commands, and the spec's
   * others) and the kinds the tier requires (each nothing measured fails unless waived). Absent (executions planned
   * before required gates): the spec's gates.
   */
  gates?: PlannedGate[];
  requiredGates?: GateKind[];
  /** Remediation from a council `modify`, for the next iteration. */
  feedback?: string[];
  /**
   * The workspace of the task's previous execution: a refinement continues from its changes (a directory: a run
   * started before workspaces were portable), with its base commit.
   */
  from?: WorkspaceRef | string;
  baseCommit?: string;
  /**
   * How long a workspace activity may go without a heartbeat before Temporal hands it to another worker (a crashed
   * worker is noticed this fast). Default 10 s.
   */
  handoverTimeoutMs?: number;
  state?: ExecutionState;
}

export type StopReason =
  | 'gates_passed'
  | 'gates_failed_no_model'
  | 'max_iterations'
  | 'no_improvement'
  | 'repeated_actions'
  | 'repeated_patch_failures'
  | 'step_failed'
  | 'budget_exhausted';

export interface ExecutionResult {
  /** The legacy workspace directory (runs started before workspaces were portable); the workspace id otherwise. */
  workdir: string;
  workspace?: WorkspaceRef;
  baseCommit: string;
  steps: StepOutcome[];
  gates: GateOutcome[];
  evaluations: GateEvaluation[];
  diff: DiffSummary;
  usage: Usage;
  iterations: number;
  stopReason: StopReason;
  detail: string;
  budgetExceeded?: 'steps' | 'tokens' | 'cost';
}

export interface ExecutionProgress {
  iteration: number;
  step: string;
  usage: Usage;
  paused: boolean;
}

export const executionProgressQuery = defineQuery<ExecutionProgress>('progress');
export const executionPauseSignal = defineSignal('pause');
export const executionResumeSignal = defineSignal('resume');
/** The parent's answer to a ToolApprovalRequest (a person approved or rejected the call, or nobody did in time). */
export const toolApprovalDecisionSignal = defineSignal<[ToolApprovalDecision]>('toolApprovalDecision');

export function executionWorkflowId(parentWorkflowId: string, n: number): string {
  return `${parentWorkflowId}-execution-${n}`;
}
