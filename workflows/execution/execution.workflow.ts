/**
 * execution — carries out a plan in an isolated copy of the workspace, tool call by tool call, then the quality gates,
 * with the self-correction loop of CAWS.md. Child of agentTask.
 *
 * Steps:      prepare the workspace → the spec's steps (or, with a model and no steps, the agent loop) → gates →
 *             evaluate against the tier policy → while gates fail and a model can propose fixes: checkpoint, agent
 *             turns, gates again; roll back an iteration that lowers the score; stop after maxIterations, on
 *             improvement < 0.02, repeated actions or repeated patch failures → diff.
 *             Continues as new after `continueAsNewAfterSteps` tool calls or when Temporal suggests it.
 * Activities: prepareWorkspace, applyStep (one MCP tool call), bindTool, toolCatalog, runGate, checkpointWorkspace,
 *             restoreCheckpoint, collectDiff on agency-execution; nextAgentAction on agency-planning (model calls).
 * Tools:      the spec's steps arrive bound to registered tools (the parent's resolveToolPlan); an agent turn is bound
 *             when the model proposes it. A step's activity times out at its tool server's registry timeout.
 * Phases:     prepare → firstIteration (specSteps or the agent loop, gates) → selfCorrection (scoreIteration) →
 *             finish, the one way to end: every phase returns a Stop (reason, detail) or carries on. ExecutionRun
 *             holds the state and the helpers (apply, runGates, agentTurns, askForApproval, maybeContinueAsNew).
 * Messages:   query `progress`; signals `pause`, `resume` (forwarded by the parent), `toolApprovalDecision` (the
 *             parent's answer to this run's `toolApprovalRequest` for a privileged call an agent turn proposed).
 * The workspace copy is left for the parent, which cleans it up once the result has been judged.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  patched,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ExecutionActivities } from '../../activities/execution/index.js';
import type { PlanningActivities } from '../../activities/planning/index.js';
import { evaluateGates, gateKind, type GateMeasurement } from '../task/policy.js';
import type { SpecStep } from '../task/spec.js';
import { toolApprovalRequestSignal, type GateOutcome, type StepOutcome, type TaskRef } from '../task/definitions.js';
import { proxyOn } from '../proxy.js';
import { approvalKey, type ToolApprovalDecision, type ToolBinding, type ToolGrant } from './tools.js';
import {
  checkSignedDecision,
  isUntrustedPlaintext,
  SeenNonces,
  type ApprovalPublicKeys,
} from '../task/decision-proof.js';

/**
 * From this patch on, a tool approval forwarded by the parent must carry the person's signed decision for this call's
 * approval hash, with a nonce this execution has not seen (a signal sent straight to the child is refused).
 */
const SIGNED_TOOL_DECISIONS_PATCH = 'signed-tool-decisions';
/** From this patch on, a refinement (a council's `modify`, with a model) acts on the feedback, not the spec's steps. */
const REFINE_ON_FEEDBACK_PATCH = 'refine-on-feedback';
import {
  executionPauseSignal,
  executionProgressQuery,
  executionResumeSignal,
  toolApprovalDecisionSignal,
  type ExecutionInput,
  type ExecutionResult,
  type ExecutionState,
  type StopReason,
  type WorkspaceRef,
} from './definitions.js';

const MIN_IMPROVEMENT = 0.02;
const HISTORY_KEPT = 20;
const DETAIL_KEPT = 2_000;

const EXECUTION_RETRY = {
  maximumInterval: '30 seconds',
  nonRetryableErrorTypes: [
    'CommandRefused',
    'PathOutsideWorkspace',
    'InvalidWorkspace',
    'StepFailed',
    'NoToolMatch',
    'ToolUnavailable',
    'ToolApprovalRequired',
  ],
};

/** How long a workspace activity may go without a heartbeat before another worker takes it over. */
const HANDOVER_MS = 10_000;

/** applyStep for one binding: the tool server's registry timeout (plus a margin for the record) is its timeout. */
function stepActivity(binding: ToolBinding, handoverMs: number) {
  return proxyOn<ExecutionActivities>('execution', {
    startToCloseTimeout: binding.timeoutMs + 30_000,
    heartbeatTimeout: handoverMs,
    retry: EXECUTION_RETRY,
  }).applyStep;
}

function activities(handoverMs: number) {
  return {
    // Steps and gates run programs: they heartbeat every second, so a dead worker is noticed within the heartbeat
    // timeout (the hand-over timeout) and the activity moves to another worker, which rebuilds the workspace from
    // its recorded head (activities/execution/workspace.ts). Steps are idempotent (recorded under a key of the
    // workspace; edits guarded), so retrying them is safe.
    execution: proxyOn<ExecutionActivities>('execution', {
      startToCloseTimeout: '1 hour',
      heartbeatTimeout: handoverMs,
      retry: EXECUTION_RETRY,
    }),
    // Model calls: the activity classifies provider errors (Retry-After honoured; 4xx other than 408/409/429 are
    // not retried) and the budget bounds how many there can be.
    planning: proxyOn<PlanningActivities>('planning', {
      startToCloseTimeout: '3 minutes',
      retry: { maximumAttempts: 5, maximumInterval: '1 minute', nonRetryableErrorTypes: ['ModelUnavailable'] },
    }),
  };
}

/** Why an execution ended: the parent reads the reason and the detail. */
interface Stop {
  reason: StopReason;
  detail: string;
}

/** The typed early exit of every phase: the phase returns it, and finish (the one way to end) records it. */
function stop(reason: StopReason, detail: string): Stop {
  return { reason, detail };
}

export async function executionWorkflow(input: ExecutionInput): Promise<ExecutionResult> {
  const run = new ExecutionRun(input);
  handleMessages(run);
  await prepare(run);
  const stopped = (await firstIteration(run)) ?? (await selfCorrection(run)) ?? stop('gates_passed', '');
  return finish(run, stopped);
}

/**
 * One run's state: the input, what continue-as-new carries over (`state`), and what the handlers change (`paused`,
 * `decisions`; carried over too, with the calls approved, so a pause or an approval straddles continue-as-new).
 */
class ExecutionRun {
  readonly task: TaskRef;
  readonly execution: ReturnType<typeof activities>['execution'];
  readonly planning: ReturnType<typeof activities>['planning'];
  readonly state: ExecutionState;
  /** The tool calls made before this run: it continues as new after continueAsNewAfterSteps more. */
  readonly stepsAtStart: number;
  paused = false;
  currentStep = 'starting';
  /** What the task may use, and the privileged calls approved (at plan time, or by a person since). */
  readonly grant: ToolGrant;
  /** The parent's answers to this run's tool approval requests, by call key. */
  readonly decisions: Map<string, ToolApprovalDecision>;
  /** The approval hash of each call a person is asked about now, by call key. */
  readonly asked = new Map<string, string>();
  /** Nonces of the signed tool decisions taken, carried across continue-as-new. */
  readonly nonces: SeenNonces;
  private refusals = 0;
  private keys: ApprovalPublicKeys;
  private keysAsked = false;

  constructor(readonly input: ExecutionInput) {
    const { execution, planning } = activities(input.handoverTimeoutMs ?? HANDOVER_MS);
    this.execution = execution;
    this.planning = planning;
    this.task = input.task;
    this.state = input.state ?? {
      nextStep: 0,
      stepCounter: input.stepBase,
      outcomes: [],
      usage: { ...input.usage },
      iteration: 1,
      history: [],
      seenActions: [],
    };
    this.stepsAtStart = this.state.stepCounter;
    this.grant = {
      allowedLevel: input.tools?.grant.allowedLevel ?? ('standard' as const),
      approvedCalls: [...(this.state.approvedCalls ?? input.tools?.grant.approvedCalls ?? [])],
    };
    this.paused = this.state.paused ?? false;
    this.decisions = new Map(Object.entries(this.state.decisions ?? {}));
    this.nonces = new SeenNonces(this.state.nonces);
    this.keys = { ...input.approvalKeys };
  }

  /** Why a tool decision from the `toolApprovalDecision` signal is refused; undefined when it is taken. */
  async refusal(d: ToolApprovalDecision): Promise<string | undefined> {
    if (isUntrustedPlaintext(d)) return 'an unencrypted payload while payload encryption is on';
    const hash = this.asked.get(d.key);
    if (hash === undefined) return `no approval is pending for ${String(d.key)}`;
    if (!d.approved) return undefined; // a denial grants nothing (the parent's answer on a timeout is unsigned)
    if (d.proof === undefined) return "unsigned: an approval carries the person's signed decision";
    const parent = workflowInfo().parent?.workflowId ?? '';
    const expected = { task: parent, tenant: this.task.tenantId, nowMs: Date.now() };
    let check = checkSignedDecision(d.proof, this.keys, expected);
    if (!check.ok && check.unknownKeyId !== undefined && !this.keysAsked) {
      // A run started before its parent passed keys (or a key made since): the keys configured now, once.
      this.keysAsked = true;
      this.keys = { ...this.keys, ...(await this.planning.approvalPublicKeys()) };
      check = checkSignedDecision(d.proof, this.keys, { ...expected, nowMs: Date.now() });
    }
    if (!check.ok) return check.reason;
    if (check.grant.decision !== 'approve') return 'the signed decision is not an approval';
    if (check.grant.hash !== hash) return `signed for another hash (${check.grant.hash.slice(0, 12)})`;
    return this.nonces.use(check.grant, Date.now());
  }

  /** Records a refused tool decision (nothing changes; the call still waits). */
  async refuse(d: ToolApprovalDecision, reason: string): Promise<void> {
    const n = ++this.refusals;
    const claim = (v: unknown): string | undefined => (typeof v === 'string' ? v.slice(0, 200) : undefined);
    await this.planning.recordTaskEvent(
      this.task,
      'approval.refused',
      {
        approver: 'unverified',
        claimedApprover: claim(d.proof?.grant?.approver) ?? claim(d.by),
        key: claim(d.key),
        note: `refused tool decision: ${reason}`,
      },
      `tool-refused-${workflowInfo().runId}-${n}`,
    );
  }

  /** Where the workspace activities work: the portable workspace, or a legacy run's directory. */
  where(): WorkspaceRef | string {
    return this.state.workspace ?? this.state.workdir!;
  }

  /** Puts the workspace back to a checkpoint; a portable workspace moves to the head the restore recorded. */
  async restore(checkpoint: string): Promise<void> {
    const restored = await this.execution.restoreCheckpoint(this.task, this.where(), checkpoint);
    if (restored) this.state.workspace = restored;
  }

  budgetExceeded(): 'steps' | 'tokens' | 'cost' | undefined {
    const { usage } = this.state;
    const budgets = this.input.budgets;
    if (usage.steps >= budgets.maxSteps) return 'steps';
    if (usage.tokens > budgets.maxTokens) return 'tokens';
    if (usage.costUsd > budgets.maxCostUsd) return 'cost';
    return undefined;
  }

  /** Continue as new at a safe point when the history has grown; returns only when it does not. */
  async maybeContinueAsNew(): Promise<void> {
    const { input, state } = this;
    if (
      workflowInfo().continueAsNewSuggested ||
      state.stepCounter - this.stepsAtStart >= input.continueAsNewAfterSteps
    ) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof executionWorkflow>({
        ...input,
        state: {
          ...state,
          paused: this.paused,
          approvedCalls: this.grant.approvedCalls,
          decisions: Object.fromEntries(this.decisions),
          nonces: this.nonces.toState(),
        },
      });
    }
  }

  /** A privileged call an agent turn proposed: the parent shows it to a person and signals back the decision. */
  async askForApproval(binding: ToolBinding, index: number): Promise<ToolApprovalDecision> {
    const key = approvalKey(binding);
    const parent = workflowInfo().parent;
    if (!parent) return { key, approved: false, by: 'platform', reason: 'no parent task to ask' };
    this.currentStep = `waiting for a person to approve ${binding.serverId}/${binding.tool}`;
    this.asked.set(key, binding.approvalHash); // before the request: the answer may come in the same activation
    await getExternalWorkflowHandle(parent.workflowId).signal(toolApprovalRequestSignal, {
      executionId: workflowInfo().workflowId,
      step: index,
      key,
      serverId: binding.serverId,
      tool: binding.tool,
      level: binding.level,
      argsSha256: binding.argsSha256,
      approvalHash: binding.approvalHash,
    });
    await condition(() => this.decisions.has(key));
    this.asked.delete(key);
    return this.decisions.get(key)!;
  }

  /** One tool call (a spec step bound at plan time, or an agent turn bound now), once a privileged one is approved. */
  async apply(step: SpecStep, label: string, planned?: ToolBinding): Promise<StepOutcome> {
    const { task, state, grant } = this;
    await condition(() => !this.paused);
    this.currentStep = label;
    const binding = planned ?? (await this.execution.bindTool(task, step, grant.allowedLevel));
    const index = state.stepCounter++;
    state.usage.steps++;
    if (binding.needsApproval && !grant.approvedCalls.includes(approvalKey(binding))) {
      const decision = await this.askForApproval(binding, index);
      if (!decision.approved) {
        const outcome = {
          index,
          kind: step.kind,
          ok: false,
          detail: `${binding.serverId}/${binding.tool} is ${binding.level}; the call was not approved by ${decision.by}${decision.reason ? `: ${decision.reason}` : ''}`,
          skipped: true,
        };
        state.outcomes.push(outcome);
        return outcome;
      }
      grant.approvedCalls.push(approvalKey(binding));
    }
    const handover = this.input.handoverTimeoutMs ?? HANDOVER_MS;
    const { workspace, ...outcome } = await stepActivity(binding, handover)(
      task,
      this.where(),
      index,
      step,
      binding,
      grant,
    );
    if (workspace) state.workspace = workspace;
    state.outcomes.push(outcome);
    return outcome;
  }

  /**
   * The gates (the planned ones: the tier's required gates and the spec's; else the spec's), evaluated against the tier
   * policy and the waivers; the score is the share not failing.
   */
  async runGates(): Promise<{ gates: GateOutcome[]; score: number; passed: boolean }> {
    const { input, state } = this;
    this.currentStep = 'quality gates';
    const planned = input.gates ?? input.spec.gates.map((gate) => ({ gate, source: 'spec' as const }));
    const acceptanceIds = input.spec.acceptance.map((a) => a.id);
    const gates: GateOutcome[] = [];
    for (const { gate, source } of planned) {
      await condition(() => !this.paused);
      const opts = input.gates ? { acceptanceIds, source } : { acceptanceIds };
      gates.push(await this.execution.runGate(this.task, this.where(), gate, opts));
    }
    const measurements: GateMeasurement[] = gates.map((g, i) => ({
      gate: g.name,
      kind: gateKind(planned[i]!.gate),
      passed: g.passed,
      value: g.value,
      missing: g.missing,
      evidence: g.evidence,
    }));
    const evaluations = evaluateGates(measurements, {
      tier: input.tier,
      waivers: input.waivers,
      spec: input.spec,
      now: new Date().toISOString(),
      ...(input.gates ? { gates: planned.map((p) => p.gate), required: input.requiredGates ?? [] } : {}),
    });
    state.lastGates = gates;
    state.lastEvaluations = evaluations;
    const ok = evaluations.filter((e) => e.status !== 'fail').length;
    return {
      gates,
      score: evaluations.length ? ok / evaluations.length : 1,
      passed: evaluations.every((e) => e.status !== 'fail'),
    };
  }

  /** The agent loop: the model picks one tool call at a time until it says it is done or a budget ends. */
  async agentTurns(goal: string[]): Promise<{ patchFailures: number; actions: string[] }> {
    const { input, state } = this;
    let patchFailures = 0;
    const actions: string[] = [];
    for (;;) {
      if (this.budgetExceeded()) break;
      this.currentStep = `agent turn ${state.history.length + 1}`;
      state.catalog ??= await this.execution.toolCatalog(this.task, this.grant.allowedLevel);
      const next = await this.planning.nextAgentAction(this.task, {
        title: input.title,
        description: input.description,
        spec: input.spec,
        goal,
        history: state.history,
        tools: state.catalog,
      });
      state.usage.tokens += next.usage.inputTokens + next.usage.outputTokens;
      state.usage.costUsd += next.costUsd;
      if (next.kind === 'done') break;
      const key = JSON.stringify(next.step);
      actions.push(key);
      const outcome = await this.apply(next.step, `agent: ${next.step.kind}`);
      if (!outcome.ok && next.step.kind !== 'command') patchFailures++;
      state.history = [
        ...state.history,
        { action: key.slice(0, DETAIL_KEPT), ok: outcome.ok, detail: outcome.detail.slice(0, DETAIL_KEPT) },
      ].slice(-HISTORY_KEPT);
      // Iteration 1 resumes its agent loop from the carried history; later iterations continue at their end.
      if (state.iteration === 1) await this.maybeContinueAsNew();
    }
    return { patchFailures, actions };
  }
}

/** Every handler, before the first await. */
function handleMessages(run: ExecutionRun): void {
  setHandler(executionProgressQuery, () => ({
    iteration: run.state.iteration,
    step: run.currentStep,
    usage: run.state.usage,
    paused: run.paused,
  }));
  setHandler(executionPauseSignal, () => void (run.paused = true));
  setHandler(executionResumeSignal, () => void (run.paused = false));
  setHandler(toolApprovalDecisionSignal, async (d) => {
    if (patched(SIGNED_TOOL_DECISIONS_PATCH)) {
      const refused = await run.refusal(d);
      if (refused !== undefined) return run.refuse(d, refused);
    }
    run.decisions.set(d.key, d);
  });
}

/**
 * 1. The isolated copy of the workspace: made once (a continued run already has it); a refinement continues the
 * previous execution's workspace.
 */
async function prepare(run: ExecutionRun): Promise<void> {
  const { state, input } = run;
  if (state.workspace || state.workdir) return;
  if (typeof input.from === 'string') state.workdir = input.from;
  else if (input.from) state.workspace = input.from;
  if (input.from) {
    state.baseCommit = input.baseCommit ?? (typeof input.from === 'string' ? undefined : input.from.baseCommit);
    return;
  }
  run.currentStep = 'preparing the workspace';
  const prepared = await run.execution.prepareWorkspace(run.task, input.workspace);
  state.workdir = prepared.workdir;
  state.workspace = prepared.workspace;
  state.baseCommit = prepared.baseCommit;
}

/** 2. Iteration 1: the spec's steps (or, with a model and no steps, the agent loop), then the gates' first score. */
async function firstIteration(run: ExecutionRun): Promise<Stop | undefined> {
  const { input, state } = run;
  if (state.iteration !== 1 || state.bestScore !== undefined) return undefined;
  // A refinement continues the previous execution's workspace, where the spec's steps are already applied (a second
  // `replace` would find its text gone): the model acts on the council's feedback instead.
  const refining = input.from !== undefined && input.modelAvailable && (input.feedback?.length ?? 0) > 0;
  if (refining && patched(REFINE_ON_FEEDBACK_PATCH)) {
    await run.agentTurns([...input.feedback!]);
  } else if (input.spec.steps.length > 0) {
    const stopped = await specSteps(run);
    if (stopped) return stopped;
  } else if (input.modelAvailable) {
    await run.agentTurns([...(input.feedback ?? [])]);
  }
  if (run.budgetExceeded()) return stop('budget_exhausted', `budget exhausted (${run.budgetExceeded()})`);
  state.bestScore = (await run.runGates()).score;
  return undefined;
}

/** The spec's steps in order, resumed after continue-as-new; stops when the budget ends first or a step fails. */
async function specSteps(run: ExecutionRun): Promise<Stop | undefined> {
  const { input, state } = run;
  while (state.nextStep < input.spec.steps.length) {
    if (run.budgetExceeded()) {
      return stop('budget_exhausted', `budget exhausted (${run.budgetExceeded()}) before step ${state.nextStep + 1}`);
    }
    const index = state.nextStep;
    const outcome = await run.apply(
      input.spec.steps[index]!,
      `step ${index + 1}/${input.spec.steps.length}`,
      input.tools?.bindings[index],
    );
    state.nextStep++;
    if (!outcome.ok) return stop('step_failed', `step ${index + 1} failed: ${outcome.detail}`);
    await run.maybeContinueAsNew();
  }
  return undefined;
}

/**
 * 3. Self-correction, only while gates fail and a model can propose something new: checkpoint, agent turns on the
 * failing gates, gates again. Stops without a model, after maxIterations, when the budget ends, on repeated actions
 * or repeated patch failures (both rolled back), or on too little improvement (see scoreIteration).
 */
async function selfCorrection(run: ExecutionRun): Promise<Stop | undefined> {
  const { input, state, execution, task } = run;
  let previousPatchFailures = 0;
  while (state.lastEvaluations?.some((e) => e.status === 'fail')) {
    if (!input.modelAvailable) {
      return stop('gates_failed_no_model', 'gates failed and no language model is configured to propose corrections');
    }
    if (state.iteration >= input.maxIterations) {
      return stop('max_iterations', `gates still failing after ${state.iteration} iterations`);
    }
    if (run.budgetExceeded()) return stop('budget_exhausted', `budget exhausted (${run.budgetExceeded()})`);
    state.iteration++;
    const checkpoint = await execution.checkpointWorkspace(task, run.where(), state.iteration);
    const failing = (state.lastEvaluations ?? [])
      .filter((e) => e.status === 'fail')
      .map((e) => `${e.gate}: ${e.reason}`);
    const { patchFailures, actions } = await run.agentTurns([...failing, ...(input.feedback ?? [])]);
    const signature = actions.join('\n');
    if (actions.length === 0 || state.seenActions.includes(signature)) {
      await run.restore(checkpoint);
      await run.runGates();
      const again = actions.length
        ? 'the model proposed the same actions again'
        : 'the model proposed no further actions';
      return stop('repeated_actions', again);
    }
    state.seenActions = [...state.seenActions, signature].slice(-HISTORY_KEPT);
    if (patchFailures > 0 && previousPatchFailures > 0) {
      await run.restore(checkpoint);
      await run.runGates();
      return stop('repeated_patch_failures', 'edits failed to apply in two iterations in a row');
    }
    previousPatchFailures = patchFailures;
    const stalled = await scoreIteration(run, checkpoint);
    if (stalled) return stalled;
    await run.maybeContinueAsNew();
  }
  return undefined;
}

/**
 * The gates after a correction: a lower score rolls the iteration back (and measures the restored state again), a
 * higher one is the new best; an improvement below MIN_IMPROVEMENT while gates still fail stops the loop.
 */
async function scoreIteration(run: ExecutionRun, checkpoint: string): Promise<Stop | undefined> {
  const { state } = run;
  const before = state.bestScore ?? 0;
  const { score } = await run.runGates();
  if (score < before) {
    // This iteration made things worse: undo it and measure the restored state again.
    await run.restore(checkpoint);
    await run.runGates();
  } else {
    state.bestScore = score;
  }
  if (score - before < MIN_IMPROVEMENT && state.lastEvaluations?.some((e) => e.status === 'fail')) {
    return stop(
      'no_improvement',
      `score moved from ${before.toFixed(2)} to ${score.toFixed(2)} (< ${MIN_IMPROVEMENT})`,
    );
  }
  return undefined;
}

/** 4. The one way an execution ends: the diff of the workspace copy (the gates' reports left out), and why it stopped. */
async function finish(run: ExecutionRun, { reason, detail }: Stop): Promise<ExecutionResult> {
  const { input, state } = run;
  run.currentStep = 'collecting the diff';
  const reports = input.spec.gates.flatMap((g) => (g.report ? [g.report] : []));
  const diff = await run.execution.collectDiff(run.task, run.where(), reports);
  await condition(allHandlersFinished);
  return {
    workdir: state.workdir ?? state.workspace!.id,
    workspace: state.workspace,
    baseCommit: state.baseCommit!,
    steps: state.outcomes,
    gates: state.lastGates ?? [],
    evaluations: state.lastEvaluations ?? [],
    diff,
    usage: state.usage,
    iterations: state.iteration,
    stopReason: reason,
    detail,
    budgetExceeded: reason === 'budget_exhausted' ? run.budgetExceeded() : undefined,
  };
}
