/**
 * What agentTask asks of a person, as state with its message handlers (the pattern of Temporal's
 * samples-typescript message-passing/safe-message-handlers): an approval of the plan, of a result the council could
 * not decide, or of one privileged tool call (signals `approve`, `reject`, update `decide`); and a working spec when
 * the task is ambiguous or the council asked for changes (signal `clarify`). Workflow-safe.
 */
import { condition, patched, type ActivityInterfaceFor, type WorkflowInfo } from '@temporalio/workflow';
import type { PlanningActivities } from '../../activities/planning/index.js';
import type { ToolPlan } from '../execution/tools.js';
import type {
  AgentTaskInput,
  ApprovalAttempt,
  ApprovalDecision,
  DecisionMessage,
  PendingApproval,
  TaskProgress,
  TaskRef,
  TaskResult,
  TaskSettings,
  TaskStatus,
} from './definitions.js';
import { lateDeadline } from './deadlines.js';
import {
  checkSignedDecision,
  isUntrustedPlaintext,
  SeenNonces,
  type ApprovalPublicKeys,
  type DecisionGrant,
  type ProofCheck,
  type SignedDecision,
  type UntrustedPlaintext,
} from './decision-proof.js';
import { DEFAULT_TIER_POLICY } from './policy.js';
import type { RiskTier, WorkingSpec } from './spec.js';

export type Decision = ApprovalDecision & {
  decision: 'approve' | 'reject';
  /** The signed decision it came from (passed on to the execution child with a tool decision). */
  proof?: SignedDecision;
};

/**
 * From this patch on, `approve`, `reject` and `decide` take only decisions signed by the API (decision-proof.ts); runs
 * that received decisions before it replay as they ran.
 */
export const SIGNED_DECISIONS_PATCH = 'signed-decisions';
/** How many times a run asks the `approvalPublicKeys` activity for keys it was not given (unknown key ids). */
const MAX_KEY_LOOKUPS = 5;
const CLAIM_CHARS = 200;
export interface Clarification {
  spec: WorkingSpec;
  by: string;
}

/** What the approval and clarification state reads and writes of the task (TaskRun). */
export interface TaskHost {
  readonly task: TaskRef;
  /** The workflow info at start (its historyLength keys the clarification events). */
  readonly info: Pick<WorkflowInfo, 'historyLength'>;
  readonly input: Pick<AgentTaskInput, 'approvalKeys'>;
  readonly settings: Pick<TaskSettings, 'approvalTimeoutMs' | 'clarificationTimeoutMs'>;
  readonly progress: TaskProgress;
  readonly result: Pick<TaskResult, 'approvals'>;
  readonly planning: Pick<ActivityInterfaceFor<PlanningActivities>, 'recordTaskEvent' | 'approvalPublicKeys'>;
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
  /** The public keys signed decisions verify against: the input's, plus what the activity answered. */
  private keys: ApprovalPublicKeys;
  private keyLookups = 0;
  /** Nonces of the signed decisions seen (agentTask does not continue as new: they live as long as the run). */
  readonly nonces = new SeenNonces(undefined);

  constructor(private readonly run: TaskHost) {
    this.keys = { ...run.input.approvalKeys };
  }

  /** The keys known now (the execution child gets them to check forwarded tool decisions). */
  get publicKeys(): ApprovalPublicKeys {
    return { ...this.keys };
  }

  /**
   * A message from `approve`, `reject` or `decide`. Only a decision signed by the API for this task, with a new nonce,
   * reaches `decide`; anything else (unsigned, a bad signature, another task or tenant, expired, replayed, an
   * unencrypted payload while encryption is on) is recorded as a refused attempt and changes nothing.
   */
  async receive(
    message: DecisionMessage | UntrustedPlaintext,
    via: 'approve' | 'reject' | 'decide',
  ): Promise<{ accepted: boolean; note: string; status: TaskStatus }> {
    if (!patched(SIGNED_DECISIONS_PATCH)) {
      // A run that took decisions before signed decisions existed replays as it ran.
      const legacy = message as ApprovalDecision & { decision: 'approve' | 'reject' };
      return this.decide(via === 'decide' ? legacy : { ...legacy, decision: via });
    }
    const check = await this.verify(message, via);
    if (!check.ok) return this.refuse(message, via, check.reason);
    const { grant, keyId } = check;
    return this.decide(
      {
        approver: grant.approver,
        hash: grant.hash,
        ...(grant.reason !== undefined ? { reason: grant.reason } : {}),
        decision: grant.decision,
        proof: message as SignedDecision,
      },
      { keyId, nonce: grant.nonce, roles: grant.roles, signedAt: grant.at },
    );
  }

  private async verify(message: unknown, via: 'approve' | 'reject' | 'decide'): Promise<ProofCheck> {
    const expected = { task: this.run.task.workflowId, tenant: this.run.task.tenantId, nowMs: Date.now() };
    let check = checkSignedDecision(message, this.keys, expected);
    if (!check.ok && check.unknownKeyId !== undefined && this.keyLookups < MAX_KEY_LOOKUPS) {
      this.keyLookups++;
      this.keys = { ...this.keys, ...(await this.run.planning.approvalPublicKeys()) };
      check = checkSignedDecision(message, this.keys, { ...expected, nowMs: Date.now() });
    }
    if (!check.ok) return check;
    // A verified decision is spent once it arrives, whatever becomes of it.
    const replayed = this.nonces.use(check.grant, Date.now());
    if (replayed) return { ok: false, reason: replayed };
    if (via !== 'decide' && check.grant.decision !== via)
      return { ok: false, reason: `a signed ${check.grant.decision} was sent as ${via}` };
    return check;
  }

  /** Records an attempt that did not verify: the approver it names is a claim, and it changes nothing. */
  private async refuse(
    message: unknown,
    via: 'approve' | 'reject' | 'decide',
    reason: string,
  ): Promise<{ accepted: boolean; note: string; status: TaskStatus }> {
    const n = ++this.attempts;
    const m = (isUntrustedPlaintext(message) || typeof message !== 'object' || message === null ? {} : message) as {
      grant?: Partial<DecisionGrant>;
      approver?: unknown;
      hash?: unknown;
      decision?: unknown;
    };
    const text = (v: unknown): string | undefined => (typeof v === 'string' ? v.slice(0, CLAIM_CHARS) : undefined);
    const claimedApprover = text(m.grant?.approver) ?? text(m.approver);
    const claimedDecision = m.grant?.decision ?? m.decision;
    const attempt: ApprovalAttempt = {
      approver: 'unverified',
      ...(claimedApprover !== undefined ? { claimedApprover } : {}),
      hash: text(m.grant?.hash) ?? text(m.hash) ?? '',
      decision: via !== 'decide' ? via : claimedDecision === 'approve' ? 'approve' : 'reject',
      accepted: false,
      note: `refused: ${reason}`,
      at: new Date().toISOString(),
    };
    this.run.result.approvals.push(attempt);
    await this.run.planning.recordTaskEvent(this.run.task, 'approval.refused', { ...attempt }, `attempt-${n}`);
    return { accepted: false, note: attempt.note, status: this.run.progress.status };
  }

  /** `approve`, `reject` and `decide`: accepted only for the pending approval's hash, and only once; always recorded. */
  async decide(
    d: Decision,
    verified?: ApprovalAttempt['verified'],
  ): Promise<{ accepted: boolean; note: string; status: TaskStatus }> {
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
    const { proof: _proof, ...decision } = d;
    const attempt = { ...decision, accepted, note, at: new Date().toISOString(), ...(verified ? { verified } : {}) };
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
  clarify(c: Clarification | UntrustedPlaintext): void {
    if (isUntrustedPlaintext(c)) return; // an unencrypted payload while encryption is on: not trusted
    const { spec, by } = c;
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
