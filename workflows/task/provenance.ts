/**
 * What a task records when it ends (agentTask's finish): the provenance record stored as an artifact, and the payloads
 * of its closing audit events. Pure functions of the task's input and result; workflow-safe.
 */
import type { AgentTaskInput, ApprovalAttempt, TaskResult, Usage, VerdictRecord } from './definitions.js';

/** The workflow execution a record came from. */
export interface WorkflowRef {
  id: string;
  firstRunId: string;
  namespace: string;
}

/** The provenance record: who asked for what, which spec, plan and diff, what the gates and the council said. */
export interface Provenance {
  task: { id: string; title: string; tenant: string; submittedBy: string; mode: AgentTaskInput['mode'] };
  workflow: WorkflowRef;
  status: TaskResult['status'];
  reason: string | null;
  spec: string | null;
  planHash: string | null;
  diff: string | null;
  gates: { name: string; passed: boolean; log: string }[];
  verdicts: {
    session: string;
    phase: VerdictRecord['phase'];
    decision: VerdictRecord['verdict']['decision'];
    artifact: string;
    signature: VerdictRecord['signature'];
  }[];
  approvals: ApprovalAttempt[];
  usage: Usage;
}

export interface ProvenanceInput {
  input: Pick<AgentTaskInput, 'id' | 'title' | 'tenantId' | 'submittedBy' | 'mode'>;
  workflow: WorkflowRef;
  status: TaskResult['status'];
  reason?: string;
  /** The hash of the approved (or judged) plan, when planning got that far. */
  planHash?: string;
  result: Pick<TaskResult, 'specRef' | 'diffRef' | 'gates' | 'verdicts' | 'approvals' | 'usage'>;
}

/** The provenance record of a task that ends with `status` (artifacts by their sha256, never their content). */
export function buildProvenance({ input, workflow, status, reason, planHash, result }: ProvenanceInput): Provenance {
  return {
    task: {
      id: input.id,
      title: input.title,
      tenant: input.tenantId,
      submittedBy: input.submittedBy,
      mode: input.mode,
    },
    workflow: { id: workflow.id, firstRunId: workflow.firstRunId, namespace: workflow.namespace },
    status,
    reason: reason ?? null,
    spec: result.specRef?.sha256 ?? null,
    planHash: planHash ?? null,
    diff: result.diffRef?.sha256 ?? null,
    gates: result.gates.map((g) => ({ name: g.name, passed: g.passed, log: g.logRef.sha256 })),
    verdicts: result.verdicts.map((v) => ({
      session: v.sessionId,
      phase: v.phase,
      decision: v.verdict.decision,
      artifact: v.verdictRef.sha256,
      signature: v.signature,
    })),
    approvals: result.approvals,
    usage: result.usage,
  };
}

/** The payload of `budget.spent` (a mapped type: audit payloads are plain records). */
export type BudgetSpent = { [K in keyof Usage]: Usage[K] } & { limits: Usage };

/** The `budget.spent` event: what the task used (steps, tokens, cost), next to its limits. */
export function budgetSpentEvent(usage: Usage, budgets: AgentTaskInput['budgets']): BudgetSpent {
  return {
    ...usage,
    limits: {
      steps: budgets.max_steps,
      tokens: budgets.max_tokens,
      costUsd: budgets.max_cost_usd,
    },
  };
}

/** The `task.<status>` event that closes the audit trail. */
export function taskEndedEvent(
  reason: string | undefined,
  result: Pick<TaskResult, 'diffRef'>,
): { reason: string | null; diff: string | null } {
  return { reason: reason ?? null, diff: result.diffRef?.sha256 ?? null };
}
