/**
 * What agentTask asks of a person, as state with its message handlers (the pattern of Temporal's
 * samples-typescript message-passing/safe-message-handlers): an approval of the plan, of a result the council could
 * not decide, or of one privileged tool call (signals `approve`, `reject`, update `decide`); and a working spec when
 * the task is ambiguous or the council asked for changes (signal `clarify`). Workflow-safe.
 */
import { condition, type ActivityInterfaceFor, type WorkflowInfo } from '@temporalio/workflow';
import type { PlanningActivities } from '../../activities/planning/index.js';
import type { ToolPlan } from '../execution/tools.js';
import type {
  AgentTaskInput,
  ApprovalDecision,
  PendingApproval,
  TaskProgress,
  TaskRef,
  TaskResult,
  TaskSettings,
  TaskStatus,
} from './definitions.js';
import { lateDeadline } from './deadlines.js';
import { DEFAULT_TIER_POLICY } from './policy.js';
import type { RiskTier, WorkingSpec } from './spec.js';

export type Decision = ApprovalDecision & { decision: 'approve' | 'reject' };
export interface Clarification {
  spec: WorkingSpec;
  by: string;
}

/** What the approval and clarification state reads and writes of the task (TaskRun). */
export interface TaskHost {
  readonly task: TaskRef;
  /** The workflow info at start (its historyLength keys the clarification events). */
  readonly info: Pick<WorkflowInfo, 'historyLength'>;
  readonly settings: Pick<TaskSettings, 'approvalTimeoutMs' | 'clarificationTimeoutMs'>;
  readonly progress: TaskProgress;
  readonly result: Pick<TaskResult, 'approvals'>;
  readonly planning: Pick<ActivityInterfaceFor<PlanningActivities>, 'recordTaskEvent'>;
  setStatus(status: TaskStatus, step: string): void;
  noteOutage(note: string): void;
}

/** One approval at a time: the plan, a result, or a tool call (the execution child's request, while it waits). */
export class Approvals {
  /** What a person is asked to approve now. */
  private pending: PendingApproval | undefined;
  /** The decision accepted for it: the first on its exact hash. */
  private accepted: Decision | undefined;
  /** Decisions received, accepted or not (the idempotency key of their audit events). */
  private attempts = 0;
  /** When the last approval's deadline passed without a decision: what infrastructure consumed of it, if anything. */
  missed: string | undefined;

  constructor(private readonly run: TaskHost) {}

  /** `approve`, `reject` and `decide`: accepted only for the pending approval's hash, and only once; always recorded. */
  async decide(d: Decision): Promise<{ accepted: boolean; note: string; status: TaskStatus }> {
    const n = ++this.attempts;
    let accepted = false;
    let note: string;
    if (!this.pending) note = `no approval is pending (task is ${this.run.progress.status})`;
    else if (this.accepted) note = 'a decision was already accepted';
    else if (d.hash !== this.pending.hash) {
      note = `stale: the decision was made on ${d.hash.slice(0, 12)}, the current ${this.pending.kind} is ${this.pending.hash.slice(0, 12)}`;
    } else {
      accepted = true;
      note = `${d.decision} accepted for the ${this.pending.kind}`;
      this.accepted = d;
    }
    const attempt = { ...d, accepted, note, at: new Date().toISOString() };
    this.run.result.approvals.push(attempt);
    await this.run.planning.recordTaskEvent(
      this.run.task,
      accepted ? 'approval.accepted' : 'approval.refused',
      { ...attempt },
      `attempt-${n}`,
    );
    return { accepted, note, status: this.run.progress.status };
  }

  /** Asks a person (shown in `progress`): the accepted decision, or undefined when the approval timeout passes. */
  async ask(
    kind: PendingApproval['kind'],
    hash: string,
    reasons: string[],
    toolCalls?: PendingApproval['toolCalls'],
  ): Promise<Decision | undefined> {
    const { progress, settings } = this.run;
    this.accepted = undefined;
    this.missed = undefined;
    this.pending = {
      kind,
      hash,
      reasons,
      deadline: new Date(Date.now() + settings.approvalTimeoutMs).toISOString(),
      ...(toolCalls ? { toolCalls } : {}),
    };
    progress.pendingApproval = this.pending;
    this.run.setStatus('awaiting_approval', `waiting for a person to approve the ${kind}: ${reasons.join('; ')}`);
    await this.run.planning.recordTaskEvent(this.run.task, `approval.requested.${kind}`, {
      hash,
      reasons,
      deadline: this.pending.deadline,
    });
    const dueMs = Date.now() + settings.approvalTimeoutMs;
    const decided = await condition(() => this.accepted !== undefined, settings.approvalTimeoutMs);
    this.missed = decided ? undefined : lateDeadline(`${kind} approval's deadline`, dueMs, Date.now());
    if (this.missed) this.run.noteOutage(this.missed);
    this.pending = undefined;
    progress.pendingApproval = undefined;
    return decided ? this.current() : undefined;
  }

  /** Read through a method: set by `decide` while `ask` waits, so a narrowed field would go stale. */
  private current(): Decision | undefined {
    return this.accepted;
  }
}

/** A working spec asked of a person: an ambiguous request, or the council's changes to the plan. */
export class Clarifications {
  private received: Clarification | undefined;
  /** When the last clarification's deadline passed without one: what infrastructure consumed of it, if anything. */
  missed: string | undefined;

  constructor(private readonly run: TaskHost) {}

  /** `clarify`: kept only while a clarification is pending. */
  clarify({ spec, by }: Clarification): void {
    if (this.run.progress.pendingClarification) this.received = { spec, by };
  }

  /** Asks for a working spec (shown in `progress`): the clarification, or undefined when its timeout passes. */
  async ask(reasons: string[]): Promise<Clarification | undefined> {
    const { progress, settings } = this.run;
    this.received = undefined;
    this.missed = undefined;
    progress.pendingClarification = {
      reasons,
      deadline: new Date(Date.now() + settings.clarificationTimeoutMs).toISOString(),
    };
    this.run.setStatus('awaiting_clarification', `waiting for a working spec: ${reasons.join('; ')}`);
    await this.run.planning.recordTaskEvent(
      this.run.task,
      'clarification.requested',
      { reasons },
      `clarify-${this.run.info.historyLength}`,
    );
    const dueMs = Date.now() + settings.clarificationTimeoutMs;
    const got = await condition(() => this.received !== undefined, settings.clarificationTimeoutMs);
    this.missed = got ? undefined : lateDeadline("clarification's deadline", dueMs, Date.now());
    if (this.missed) this.run.noteOutage(this.missed);
    progress.pendingClarification = undefined;
    return got ? this.current() : undefined;
  }

  /** Read through a method: set by `clarify` while `ask` waits. */
  private current(): Clarification | undefined {
    return this.received;
  }
}

/** Why a person must approve a plan before it runs; empty: it runs without asking. */
export function planApprovalReasons(p: {
  /** The council's reason, when it escalated instead of deciding. */
  councilEscalation?: string;
  mode: AgentTaskInput['mode'];
  tier: RiskTier;
  toolPlan: Pick<ToolPlan, 'conflicts' | 'approval'>;
}): string[] {
  const reasons: string[] = [];
  if (p.councilEscalation !== undefined) reasons.push(`the council could not decide: ${p.councilEscalation}`);
  if (p.mode === 'strict') reasons.push('strict mode: a person approves before execution');
  if (DEFAULT_TIER_POLICY[p.tier].manualReviewRequired) reasons.push(`tier ${p.tier} requires manual review`);
  for (const c of p.toolPlan.conflicts.filter((c) => c.resolution === 'escalated'))
    reasons.push(`edit conflict: ${c.evidence}; ${c.detail}`);
  if (p.toolPlan.approval) {
    reasons.push(
      `privileged tool calls: ${p.toolPlan.approval.calls.map((c) => `step ${c.step + 1} ${c.serverId}/${c.tool}`).join(', ')}`,
    );
  }
  return reasons;
}
