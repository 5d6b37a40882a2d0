/**
 * execution — carries out a plan in an isolated copy of the workspace, tool call by tool call, then the quality gates,
 * with the self-correction loop of CAWS.md. Child of agentTask.
 *
 * Steps:      prepare the workspace → the spec's steps (or, with a model and no steps, the agent loop) → gates →
 *             evaluate against the tier policy → while gates fail and a model can propose fixes: checkpoint, agent
 *             turns, gates again; roll back an iteration that lowers the score; stop after maxIterations, on
 *             improvement < 0.02, repeated actions or repeated patch failures → diff.
 *             Continues as new after `continueAsNewAfterSteps` tool calls or when Temporal suggests it.
 * Activities: prepareWorkspace, applyStep (one MCP tool call), bindTool, runGate, checkpointWorkspace,
 *             restoreCheckpoint, collectDiff on agency-execution; nextAgentAction on agency-planning (model calls).
 * Tools:      the spec's steps arrive bound to registered tools (the parent's resolveToolPlan); an agent turn is bound
 *             when the model proposes it. A step's activity times out at its tool server's registry timeout.
 * Messages:   query `progress`; signals `pause`, `resume` (forwarded by the parent).
 * The workspace copy is left for the parent, which cleans it up once the result has been judged.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ExecutionActivities } from '../../activities/execution/index.js';
import type { PlanningActivities } from '../../activities/planning/index.js';
import { evaluateGates, gateKind, type GateMeasurement } from '../task/policy.js';
import type { SpecStep } from '../task/spec.js';
import type { GateOutcome } from '../task/definitions.js';
import { toolApprovalRequestSignal } from '../task/definitions.js';
import { proxyOn } from '../proxy.js';
import { approvalKey, type ToolApprovalDecision, type ToolBinding } from './tools.js';
import {
  executionPauseSignal,
  executionProgressQuery,
  executionResumeSignal,
  toolApprovalDecisionSignal,
  type ExecutionInput,
  type ExecutionResult,
  type ExecutionState,
  type StopReason,
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

/** applyStep for one binding: the tool server's registry timeout (plus a margin for the record) is its timeout. */
function stepActivity(binding: ToolBinding) {
  return proxyOn<ExecutionActivities>('execution', {
    startToCloseTimeout: binding.timeoutMs + 30_000,
    heartbeatTimeout: '10 seconds',
    retry: EXECUTION_RETRY,
  }).applyStep;
}

function activities() {
  return {
    // Steps and gates run programs: they heartbeat every second, so a dead worker is noticed within the heartbeat
    // timeout and the step moves to another worker. Steps are idempotent (recorded under a key; edits guarded),
    // so retrying them is safe.
    execution: proxyOn<ExecutionActivities>('execution', {
      startToCloseTimeout: '1 hour',
      heartbeatTimeout: '10 seconds',
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

export async function executionWorkflow(input: ExecutionInput): Promise<ExecutionResult> {
  const { execution, planning } = activities();
  const { task } = input;
  const state: ExecutionState = input.state ?? {
    nextStep: 0,
    stepCounter: input.stepBase,
    outcomes: [],
    usage: { ...input.usage },
    iteration: 1,
    history: [],
    seenActions: [],
  };
  const stepsAtStart = state.stepCounter;
  let paused = false;
  let currentStep = 'starting';
  setHandler(executionProgressQuery, () => ({
    iteration: state.iteration,
    step: currentStep,
    usage: state.usage,
    paused,
  }));
  setHandler(executionPauseSignal, () => void (paused = true));
  setHandler(executionResumeSignal, () => void (paused = false));

  const budgetExceeded = (): 'steps' | 'tokens' | 'cost' | undefined => {
    if (state.usage.steps >= input.budgets.maxSteps) return 'steps';
    if (state.usage.tokens > input.budgets.maxTokens) return 'tokens';
    if (state.usage.costUsd > input.budgets.maxCostUsd) return 'cost';
    return undefined;
  };

  /** Continue as new at a safe point when the history has grown; returns only when it does not. */
  const maybeContinueAsNew = async (): Promise<void> => {
    if (workflowInfo().continueAsNewSuggested || state.stepCounter - stepsAtStart >= input.continueAsNewAfterSteps) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof executionWorkflow>({ ...input, state });
    }
  };

  const grant = {
    allowedLevel: input.tools?.grant.allowedLevel ?? ('standard' as const),
    approvedCalls: [...(input.tools?.grant.approvedCalls ?? [])],
  };
  const decisions = new Map<string, ToolApprovalDecision>();
  setHandler(toolApprovalDecisionSignal, (d) => void decisions.set(d.key, d));

  /** A privileged call an agent turn proposed: the parent shows it to a person and signals back the decision. */
  const askForApproval = async (binding: ToolBinding, index: number): Promise<ToolApprovalDecision> => {
    const key = approvalKey(binding);
    const parent = workflowInfo().parent;
    if (!parent) return { key, approved: false, by: 'platform', reason: 'no parent task to ask' };
    currentStep = `waiting for a person to approve ${binding.serverId}/${binding.tool}`;
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
    await condition(() => decisions.has(key));
    return decisions.get(key)!;
  };

  const apply = async (step: SpecStep, label: string, planned?: ToolBinding) => {
    await condition(() => !paused);
    currentStep = label;
    const binding = planned ?? (await execution.bindTool(task, step, grant.allowedLevel));
    const index = state.stepCounter++;
    state.usage.steps++;
    if (binding.needsApproval && !grant.approvedCalls.includes(approvalKey(binding))) {
      const decision = await askForApproval(binding, index);
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
    const outcome = await stepActivity(binding)(task, state.workdir!, index, step, binding, grant);
    state.outcomes.push(outcome);
    return outcome;
  };

  const runGates = async (): Promise<{ gates: GateOutcome[]; score: number; passed: boolean }> => {
    currentStep = 'quality gates';
    const gates: GateOutcome[] = [];
    for (const gate of input.spec.gates) {
      await condition(() => !paused);
      gates.push(await execution.runGate(task, state.workdir!, gate));
    }
    const measurements: GateMeasurement[] = gates.map((g, i) => ({
      gate: g.name,
      kind: gateKind(input.spec.gates[i]!),
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
    });
    state.lastGates = gates;
    state.lastEvaluations = evaluations;
    const ok = evaluations.filter((e) => e.status !== 'fail').length;
    return {
      gates,
      score: evaluations.length ? ok / evaluations.length : 1,
      passed: evaluations.every((e) => e.status !== 'fail'),
    };
  };

  /** The agent loop: the model picks one tool call at a time until it says it is done or a budget ends. */
  const agentTurns = async (goal: string[]): Promise<{ patchFailures: number; actions: string[] }> => {
    let patchFailures = 0;
    const actions: string[] = [];
    for (;;) {
      if (budgetExceeded()) break;
      currentStep = `agent turn ${state.history.length + 1}`;
      state.catalog ??= await execution.toolCatalog(task, grant.allowedLevel);
      const next = await planning.nextAgentAction(task, {
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
      const outcome = await apply(next.step, `agent: ${next.step.kind}`);
      if (!outcome.ok && next.step.kind !== 'command') patchFailures++;
      state.history = [
        ...state.history,
        { action: key.slice(0, DETAIL_KEPT), ok: outcome.ok, detail: outcome.detail.slice(0, DETAIL_KEPT) },
      ].slice(-HISTORY_KEPT);
      // Iteration 1 resumes its agent loop from the carried history; later iterations continue at their end.
      if (state.iteration === 1) await maybeContinueAsNew();
    }
    return { patchFailures, actions };
  };

  // 1. The isolated copy of the workspace.
  if (!state.workdir) {
    currentStep = 'preparing the workspace';
    const prepared = await execution.prepareWorkspace(task, input.workspace);
    state.workdir = prepared.workdir;
    state.baseCommit = prepared.baseCommit;
  }

  let stopReason: StopReason = 'gates_passed';
  let detail = '';
  const finish = async (): Promise<ExecutionResult> => {
    currentStep = 'collecting the diff';
    const reports = input.spec.gates.flatMap((g) => (g.report ? [g.report] : []));
    const diff = await execution.collectDiff(task, state.workdir!, reports);
    await condition(allHandlersFinished);
    return {
      workdir: state.workdir!,
      baseCommit: state.baseCommit!,
      steps: state.outcomes,
      gates: state.lastGates ?? [],
      evaluations: state.lastEvaluations ?? [],
      diff,
      usage: state.usage,
      iterations: state.iteration,
      stopReason,
      detail,
      budgetExceeded: stopReason === 'budget_exhausted' ? budgetExceeded() : undefined,
    };
  };

  // 2. Iteration 1: the spec's steps, in order (resumed after continue-as-new), or the agent loop.
  if (state.iteration === 1 && state.bestScore === undefined) {
    if (input.spec.steps.length > 0) {
      while (state.nextStep < input.spec.steps.length) {
        if (budgetExceeded()) {
          stopReason = 'budget_exhausted';
          detail = `budget exhausted (${budgetExceeded()}) before step ${state.nextStep + 1}`;
          return finish();
        }
        const index = state.nextStep;
        const outcome = await apply(
          input.spec.steps[index]!,
          `step ${index + 1}/${input.spec.steps.length}`,
          input.tools?.bindings[index],
        );
        state.nextStep++;
        if (!outcome.ok) {
          stopReason = 'step_failed';
          detail = `step ${index + 1} failed: ${outcome.detail}`;
          return finish();
        }
        await maybeContinueAsNew();
      }
    } else if (input.modelAvailable) {
      await agentTurns([...(input.feedback ?? [])]);
    }
    if (budgetExceeded()) {
      stopReason = 'budget_exhausted';
      detail = `budget exhausted (${budgetExceeded()})`;
      return finish();
    }
    state.bestScore = (await runGates()).score;
  }

  // 3. Self-correction: only while gates fail and a model can propose something new.
  let previousPatchFailures = 0;
  while (state.lastEvaluations?.some((e) => e.status === 'fail')) {
    if (!input.modelAvailable) {
      stopReason = 'gates_failed_no_model';
      detail = 'gates failed and no language model is configured to propose corrections';
      return finish();
    }
    if (state.iteration >= input.maxIterations) {
      stopReason = 'max_iterations';
      detail = `gates still failing after ${state.iteration} iterations`;
      return finish();
    }
    if (budgetExceeded()) {
      stopReason = 'budget_exhausted';
      detail = `budget exhausted (${budgetExceeded()})`;
      return finish();
    }
    state.iteration++;
    const checkpoint = await execution.checkpointWorkspace(task, state.workdir, state.iteration);
    const failing = (state.lastEvaluations ?? [])
      .filter((e) => e.status === 'fail')
      .map((e) => `${e.gate}: ${e.reason}`);
    const { patchFailures, actions } = await agentTurns([...failing, ...(input.feedback ?? [])]);
    const signature = actions.join('\n');
    if (actions.length === 0 || state.seenActions.includes(signature)) {
      await execution.restoreCheckpoint(task, state.workdir, checkpoint);
      stopReason = 'repeated_actions';
      detail = actions.length ? 'the model proposed the same actions again' : 'the model proposed no further actions';
      await runGates();
      return finish();
    }
    state.seenActions = [...state.seenActions, signature].slice(-HISTORY_KEPT);
    if (patchFailures > 0 && previousPatchFailures > 0) {
      await execution.restoreCheckpoint(task, state.workdir, checkpoint);
      stopReason = 'repeated_patch_failures';
      detail = 'edits failed to apply in two iterations in a row';
      await runGates();
      return finish();
    }
    previousPatchFailures = patchFailures;
    const before = state.bestScore ?? 0;
    const { score } = await runGates();
    if (score < before) {
      // This iteration made things worse: undo it and measure the restored state again.
      await execution.restoreCheckpoint(task, state.workdir, checkpoint);
      await runGates();
    } else {
      state.bestScore = score;
    }
    if (score - before < MIN_IMPROVEMENT && state.lastEvaluations?.some((e) => e.status === 'fail')) {
      stopReason = 'no_improvement';
      detail = `score moved from ${before.toFixed(2)} to ${score.toFixed(2)} (< ${MIN_IMPROVEMENT})`;
      return finish();
    }
    await maybeContinueAsNew();
  }
  stopReason = 'gates_passed';
  return finish();
}
