/**
 * agentTask — one software-change task, end to end.
 *
 * Steps:      plan (the spec from the request or the workspace; with a model, from the description; without one, an
 *             ambiguous task waits for `clarify`) → risk on four dimensions → council on the plan (child) →
 *             human approval when the mode, the tier policy or an escalation asks → execution (child: steps or agent
 *             loop, gates, self-correction) → council on the result (child) → provenance → clean-up → result.
 * Activities: planTask, assessTaskRisk, loadWaivers, recordTaskEvent, storeJsonArtifact   on agency-planning
 *             cleanupWorkspace                                                          on agency-execution
 * Children:   councilDeliberationWorkflow (agency-council judges), executionWorkflow (agency-execution tools).
 * Messages:   query `progress`; signals `clarify`, `approve`, `reject`, `pause`, `resume`, `cancel`;
 *             update `decide` (approve/reject, answering whether the decision was accepted).
 * Search attributes: AgencyTaskStatus, AgencyTenant, AgencyRiskTier.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  executeChild,
  startChild,
  type ChildWorkflowHandle,
  isCancellation,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ExecutionActivities } from '../../activities/execution/index.js';
import type { PlanningActivities } from '../../activities/planning/index.js';
import { RiskTierKey, TaskStatusKey, TenantKey } from '../../temporal/search-attributes.js';
import { councilDeliberationWorkflow } from '../council/council-deliberation.workflow.js';
import { councilSessionId, type CouncilOutcome, type CouncilRequest } from '../council/session.js';
import { executionWorkflow } from '../execution/execution.workflow.js';
import { proxyOn } from '../proxy.js';
import {
  executionPauseSignal,
  toolApprovalDecisionSignal,
  executionResumeSignal,
  executionWorkflowId,
  type ExecutionResult,
} from '../execution/definitions.js';
import { DEFAULT_TIER_POLICY, effectiveBudget, isWaiverActive, trustScore, type Waiver } from './policy.js';
import type { WorkingSpec } from './spec.js';
import {
  approveSignal,
  cancelSignal,
  clarifySignal,
  decideUpdate,
  DEFAULT_TASK_SETTINGS,
  pauseSignal,
  progressQuery,
  rejectSignal,
  resumeSignal,
  toolApprovalRequestSignal,
  type AgentTaskInput,
  type ApprovalDecision,
  type PendingApproval,
  type TaskProgress,
  type TaskRef,
  type TaskResult,
  type TaskStatus,
} from './definitions.js';

const MAX_EVENTS_KEPT = 50;

/** The innermost ApplicationFailure in a chain of causes (child workflow → activity → application). */
function businessFailure(err: unknown): ApplicationFailure | undefined {
  let found: ApplicationFailure | undefined;
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (e instanceof ApplicationFailure) found = e;
  return found;
}
const MAX_PLAN_ATTEMPTS = 3;

function activities() {
  return {
    // Planning reads files, the database and (with a model) calls it: retried with backoff (a provider's Retry-After
    // is honoured by the activity), but not forever: a provider that stays down fails the task after 10 attempts.
    planning: proxyOn<PlanningActivities>('planning', {
      startToCloseTimeout: '3 minutes',
      retry: {
        maximumInterval: '1 minute',
        maximumAttempts: 10,
        nonRetryableErrorTypes: ['InvalidSpec', 'ModelUnavailable', 'ModelMisconfigured'],
      },
    }),
    // Clean-up removes the task's workspace copy: idempotent.
    execution: proxyOn<ExecutionActivities>('execution', {
      startToCloseTimeout: '2 minutes',
      retry: { maximumInterval: '30 seconds' },
    }),
  };
}

export async function agentTaskWorkflow(input: AgentTaskInput): Promise<TaskResult> {
  const settings = { ...DEFAULT_TASK_SETTINGS, ...input.settings };
  const { planning, execution } = activities();
  const info = workflowInfo();
  const task: TaskRef = {
    tenantId: input.tenantId,
    taskId: input.id,
    workflowId: info.workflowId,
    executionKey: `${info.workflowId}/${info.firstExecutionRunId}`,
    correlationId: input.correlationId,
  };

  const progress: TaskProgress = {
    taskId: input.id,
    status: 'pending',
    step: 'submitted',
    percent: 0,
    events: [],
    paused: false,
    councilSessions: [],
    usage: { steps: 0, tokens: 0, costUsd: 0 },
  };
  const result: TaskResult = {
    taskId: input.id,
    status: 'failed',
    mode: input.mode,
    filesChanged: [],
    steps: [],
    gates: [],
    evaluations: [],
    verdicts: [],
    approvals: [],
    artifacts: [],
    usage: progress.usage,
    iterations: 0,
  };

  const setStatus = (status: TaskStatus, step: string, percent = progress.percent): void => {
    progress.status = progress.paused && !['completed', 'failed', 'canceled'].includes(status) ? 'paused' : status;
    if (!progress.paused) lastActiveStatus = status;
    else lastActiveStatus = status;
    progress.step = step;
    progress.percent = percent;
    progress.events = [...progress.events, { at: new Date().toISOString(), status, message: step }].slice(
      -MAX_EVENTS_KEPT,
    );
    upsertSearchAttributes([{ key: TaskStatusKey, value: progress.status }]);
  };
  let lastActiveStatus: TaskStatus = 'pending';
  upsertSearchAttributes([{ key: TenantKey, value: input.tenantId }]);

  // ---- messages ------------------------------------------------------------------------------------------------
  let clarification: { spec: WorkingSpec; by: string } | undefined;
  let pendingApproval: PendingApproval | undefined;
  let decision: (ApprovalDecision & { decision: 'approve' | 'reject' }) | undefined;
  let attempts = 0;
  let activeExecution: ChildWorkflowHandle<typeof executionWorkflow> | undefined;
  let cancelRequest: { by: string; reason?: string } | undefined;
  const root = new CancellationScope();
  // Set by message handlers while the pipeline awaits: read through functions so narrowing does not go stale.
  const currentDecision = () => decision;
  const currentClarification = () => clarification;

  setHandler(progressQuery, () => progress);
  setHandler(clarifySignal, ({ spec, by }) => {
    if (progress.pendingClarification) clarification = { spec, by };
  });

  const handleDecision = async (d: ApprovalDecision & { decision: 'approve' | 'reject' }) => {
    const n = ++attempts;
    let accepted = false;
    let note: string;
    if (!pendingApproval) note = `no approval is pending (task is ${progress.status})`;
    else if (decision) note = 'a decision was already accepted';
    else if (d.hash !== pendingApproval.hash) {
      note = `stale: the decision was made on ${d.hash.slice(0, 12)}, the current ${pendingApproval.kind} is ${pendingApproval.hash.slice(0, 12)}`;
    } else {
      accepted = true;
      note = `${d.decision} accepted for the ${pendingApproval.kind}`;
      decision = d;
    }
    const attempt = { ...d, accepted, note, at: new Date().toISOString() };
    result.approvals.push(attempt);
    await planning.recordTaskEvent(
      task,
      accepted ? 'approval.accepted' : 'approval.refused',
      { ...attempt },
      `attempt-${n}`,
    );
    return { accepted, note, status: progress.status };
  };
  setHandler(approveSignal, (d) => void handleDecision({ ...d, decision: 'approve' }));
  setHandler(rejectSignal, (d) => void handleDecision({ ...d, decision: 'reject' }));
  setHandler(decideUpdate, (d) => handleDecision(d));

  const forwardToExecution = async (
    signal: typeof executionPauseSignal | typeof executionResumeSignal,
  ): Promise<void> => {
    await activeExecution?.signal(signal);
  };
  setHandler(pauseSignal, async ({ by }) => {
    if (progress.paused || ['completed', 'failed', 'canceled'].includes(progress.status)) return;
    progress.paused = true;
    setStatus(lastActiveStatus, `paused by ${by}`);
    await forwardToExecution(executionPauseSignal);
  });
  setHandler(resumeSignal, async ({ by }) => {
    if (!progress.paused) return;
    progress.paused = false;
    setStatus(lastActiveStatus, `resumed by ${by}`);
    await forwardToExecution(executionResumeSignal);
  });
  // An agent turn in the execution child wants a privileged tool: a person decides, bound to the call's exact
  // arguments (the same approval as the plan's: signal or Update with the hash), and the child is told.
  setHandler(toolApprovalRequestSignal, async (req) => {
    const d = await awaitApproval(
      'tool',
      req.approvalHash,
      [
        `privileged tool call during execution: ${req.serverId}/${req.tool} (${req.level}), arguments sha256 ${req.argsSha256}`,
      ],
      [{ step: req.step, key: req.key, serverId: req.serverId, tool: req.tool }],
    );
    if (!['completed', 'failed', 'canceled'].includes(progress.status))
      setStatus('executing', d ? `${d.decision} for ${req.serverId}/${req.tool}` : 'no decision in time', 30);
    await activeExecution?.signal(toolApprovalDecisionSignal, {
      key: req.key,
      approved: d?.decision === 'approve',
      by: d?.approver ?? 'nobody',
      reason: d ? d.reason : `no decision within ${settings.approvalTimeoutMs} ms`,
    });
  });
  setHandler(cancelSignal, (request) => {
    cancelRequest = request;
    root.cancel();
  });

  // ---- helpers -------------------------------------------------------------------------------------------------
  const whenRunning = (): Promise<void> => condition(() => !progress.paused);

  const finish = async (status: TaskResult['status'], reason?: string): Promise<TaskResult> => {
    result.status = status;
    if (reason) result.reason = reason;
    progress.paused = false;
    setStatus(status, reason ?? status, 100);
    await CancellationScope.nonCancellable(async () => {
      const provenance = await planning.storeJsonArtifact(task, 'provenance', {
        task: {
          id: input.id,
          title: input.title,
          tenant: input.tenantId,
          submittedBy: input.submittedBy,
          mode: input.mode,
        },
        workflow: { id: info.workflowId, firstRunId: info.firstExecutionRunId, namespace: info.namespace },
        status,
        reason: reason ?? null,
        spec: result.specRef?.sha256 ?? null,
        planHash: progress.planHash ?? null,
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
      });
      result.artifacts.push({ name: 'provenance', ...provenance });
      await planning.recordTaskEvent(task, 'budget.spent', {
        ...result.usage,
        limits: {
          steps: input.budgets.max_steps,
          tokens: input.budgets.max_tokens,
          costUsd: input.budgets.max_cost_usd,
        },
      });
      await planning.recordTaskEvent(task, `task.${status}`, {
        reason: reason ?? null,
        diff: result.diffRef?.sha256 ?? null,
      });
    });
    await condition(allHandlersFinished);
    return result;
  };

  const awaitApproval = async (
    kind: PendingApproval['kind'],
    hash: string,
    reasons: string[],
    toolCalls?: PendingApproval['toolCalls'],
  ) => {
    decision = undefined;
    pendingApproval = {
      kind,
      hash,
      reasons,
      deadline: new Date(Date.now() + settings.approvalTimeoutMs).toISOString(),
      ...(toolCalls ? { toolCalls } : {}),
    };
    progress.pendingApproval = pendingApproval;
    setStatus('awaiting_approval', `waiting for a person to approve the ${kind}: ${reasons.join('; ')}`);
    await planning.recordTaskEvent(task, `approval.requested.${kind}`, {
      hash,
      reasons,
      deadline: pendingApproval.deadline,
    });
    const decided = await condition(() => decision !== undefined, settings.approvalTimeoutMs);
    pendingApproval = undefined;
    progress.pendingApproval = undefined;
    return decided ? currentDecision() : undefined;
  };

  const awaitClarification = async (reasons: string[]) => {
    clarification = undefined;
    progress.pendingClarification = {
      reasons,
      deadline: new Date(Date.now() + settings.clarificationTimeoutMs).toISOString(),
    };
    setStatus('awaiting_clarification', `waiting for a working spec: ${reasons.join('; ')}`);
    await planning.recordTaskEvent(task, 'clarification.requested', { reasons }, `clarify-${info.historyLength}`);
    const got = await condition(() => clarification !== undefined, settings.clarificationTimeoutMs);
    progress.pendingClarification = undefined;
    return got ? currentClarification() : undefined;
  };

  let sessions = 0;
  const deliberate = async (
    request: Omit<CouncilRequest, 'task' | 'strategy' | 'consensusTimeoutMs'>,
  ): Promise<CouncilOutcome> => {
    const sessionId = councilSessionId(info.workflowId, request.phase, ++sessions);
    progress.councilSessions.push(sessionId);
    const outcome = await executeChild(councilDeliberationWorkflow, {
      workflowId: sessionId,
      args: [
        { ...request, task, strategy: input.consensus ?? 'weighted', consensusTimeoutMs: settings.consensusTimeoutMs },
      ],
      memo: { tenantId: input.tenantId, taskId: input.id, parentWorkflowId: info.workflowId },
      typedSearchAttributes: [{ key: TenantKey, value: input.tenantId }],
    });
    result.usage.tokens += outcome.usage.tokens;
    result.usage.costUsd += outcome.usage.costUsd;
    if (outcome.kind === 'final') {
      result.verdicts.push(outcome.record);
      result.artifacts.push({ name: `verdict-${request.phase}-${sessions}`, ...outcome.record.verdictRef });
    }
    return outcome;
  };

  const overBudget = (): string | undefined => {
    const u = result.usage;
    if (u.tokens > input.budgets.max_tokens) return `model tokens ${u.tokens} > ${input.budgets.max_tokens}`;
    if (u.costUsd > input.budgets.max_cost_usd)
      return `model cost $${u.costUsd.toFixed(4)} > $${input.budgets.max_cost_usd}`;
    return undefined;
  };

  // ---- the pipeline --------------------------------------------------------------------------------------------
  let executions = 0;
  const pipeline = async (): Promise<TaskResult> => {
    await planning.recordTaskEvent(task, 'task.started', {
      title: input.title,
      mode: input.mode,
      submittedBy: input.submittedBy,
      specWarnings: input.specWarnings ?? [],
    });

    let spec: WorkingSpec | undefined = input.spec;
    let planAttempt = 0;
    for (;;) {
      // 1. Plan.
      await whenRunning();
      setStatus('planning', 'checking the working spec', 5);
      let plan = await planning.planTask(task, {
        workspace: input.workspace,
        spec,
        title: input.title,
        description: input.description,
      });
      result.usage.tokens += plan.usage.tokens;
      result.usage.costUsd += plan.usage.costUsd;
      while (plan.kind === 'needs_clarification') {
        const clarified = await awaitClarification(plan.reasons);
        if (!clarified) return finish('failed', `no clarification before the deadline: ${plan.reasons.join('; ')}`);
        await planning.recordTaskEvent(
          task,
          'clarification.received',
          { by: clarified.by },
          `clarified-${info.historyLength}`,
        );
        spec = clarified.spec;
        setStatus('planning', 'checking the clarified spec', 5);
        plan = await planning.planTask(task, {
          workspace: input.workspace,
          spec,
          title: input.title,
          description: input.description,
        });
      }
      const exceeded = overBudget();
      if (exceeded) return finish('failed', `budget exhausted while planning: ${exceeded}`);
      spec = plan.spec;
      const gateSpecs = plan.spec.gates;
      result.specRef = plan.specRef;
      result.artifacts.push({ name: 'spec', ...plan.specRef });
      progress.planHash = plan.planHash;

      // 2. Risk.
      setStatus('planning', 'assessing risk', 10);
      const risk = await planning.assessTaskRisk(task, spec, input.description);
      result.risk = risk;
      progress.riskTier = risk.tier;
      upsertSearchAttributes([{ key: RiskTierKey, value: risk.tier }]);
      const waivers: Waiver[] = spec.waiver_ids?.length ? await planning.loadWaivers(task, spec.waiver_ids) : [];
      const now = new Date().toISOString();
      const budget = effectiveBudget(risk.tier, spec, waivers, now);
      const activeWaivers = waivers
        .filter((w) => w.gates.some((g) => isWaiverActive(w, g, now)))
        .map((w) => ({ id: w.id, gates: w.gates.filter((g) => isWaiverActive(w, g, now)) }));

      // Tools: every step bound to a registered tool the task may use (no match is a planning error), edit
      // conflicts resolved or escalated, privileged calls listed for a person's approval of their exact arguments.
      setStatus('planning', 'matching tools to the plan', 12);
      const allowedLevel = spec.tool_level ?? 'standard';
      const toolPlan = await execution.resolveToolPlan(task, {
        workspace: input.workspace,
        steps: spec.steps,
        allowedLevel,
        planHash: plan.planHash,
      });

      // 3. Council on the plan.
      await whenRunning();
      setStatus('council_review', 'the council reviews the plan', 15);
      const planVerdict = await deliberate({
        phase: 'plan',
        tier: risk.tier,
        spec,
        plannedFiles: plan.plannedFiles,
        commands: plan.commands,
        budget: { maxFiles: budget.max_files, maxLoc: budget.max_loc },
        gates: [],
        activeWaivers,
        subjectHash: plan.planHash,
      });
      const approvalReasons: string[] = [];
      if (planVerdict.kind === 'escalate') approvalReasons.push(`the council could not decide: ${planVerdict.reason}`);
      else if (planVerdict.record.verdict.decision === 'reject') {
        return finish(
          'failed',
          `the council rejected the plan: ${planVerdict.record.verdict.remediation.join('; ') || planVerdict.record.verdict.constitutional_refs.join(', ')}`,
        );
      } else if (planVerdict.record.verdict.decision === 'modify') {
        if (++planAttempt >= MAX_PLAN_ATTEMPTS)
          return finish(
            'failed',
            `the council asked for changes ${planAttempt} times: ${planVerdict.record.verdict.remediation.join('; ')}`,
          );
        const clarified = await awaitClarification([
          `the council asked for changes: ${planVerdict.record.verdict.remediation.join('; ')}`,
        ]);
        if (!clarified) return finish('failed', 'no revised spec before the deadline');
        spec = clarified.spec;
        continue;
      }
      if (input.mode === 'dry-run') {
        return finish(
          'completed',
          planVerdict.kind === 'final'
            ? `dry run: plan ${planVerdict.record.verdict.decision}ed by the council; nothing executed`
            : 'dry run: the council escalated; nothing executed',
        );
      }

      // 4. Approval.
      if (input.mode === 'strict') approvalReasons.push('strict mode: a person approves before execution');
      if (DEFAULT_TIER_POLICY[risk.tier].manualReviewRequired)
        approvalReasons.push(`tier ${risk.tier} requires manual review`);
      for (const c of toolPlan.conflicts.filter((c) => c.resolution === 'escalated'))
        approvalReasons.push(`edit conflict: ${c.evidence}; ${c.detail}`);
      if (toolPlan.approval) {
        approvalReasons.push(
          `privileged tool calls: ${toolPlan.approval.calls.map((c) => `step ${c.step + 1} ${c.serverId}/${c.tool}`).join(', ')}`,
        );
      }
      if (approvalReasons.length) {
        // With privileged calls the approval is bound to the plan and to those calls' exact arguments.
        const d = await awaitApproval(
          'plan',
          toolPlan.approval?.hash ?? plan.planHash,
          approvalReasons,
          toolPlan.approval?.calls,
        );
        if (!d) return finish('failed', `rejected: no approval within ${settings.approvalTimeoutMs} ms`);
        if (d.decision === 'reject')
          return finish('failed', `rejected by ${d.approver}${d.reason ? `: ${d.reason}` : ''}`);
      }

      // 5. Execution and 6. council on the result, with refinement on `modify`.
      let feedback: string[] | undefined;
      for (;;) {
        await whenRunning();
        setStatus(executions ? 'refining' : 'executing', executions ? 'refining the change' : 'executing the plan', 30);
        const executionId = executionWorkflowId(info.workflowId, ++executions);
        let exec: ExecutionResult;
        try {
          const child = await startChild(executionWorkflow, {
            workflowId: executionId,
            args: [
              {
                task,
                workspace: input.workspace,
                title: input.title,
                description: input.description,
                spec: { ...spec, steps: toolPlan.steps },
                tools: {
                  bindings: toolPlan.bindings,
                  // Reaching here with privileged calls means a person approved them (the approval above).
                  grant: { allowedLevel, approvedCalls: toolPlan.approval?.calls.map((c) => c.key) ?? [] },
                },
                tier: risk.tier,
                waivers,
                budgets: {
                  maxSteps: input.budgets.max_steps,
                  maxTokens: input.budgets.max_tokens,
                  maxCostUsd: input.budgets.max_cost_usd,
                },
                usage: { ...result.usage },
                modelAvailable: plan.modelAvailable,
                maxIterations: settings.maxIterations,
                continueAsNewAfterSteps: settings.continueAsNewAfterSteps,
                stepBase: result.usage.steps,
                feedback,
              },
            ],
            memo: { tenantId: input.tenantId, taskId: input.id },
          });
          // From here pause/resume reach the child; a pause that arrived while it was starting is passed on now.
          activeExecution = child;
          if (progress.paused) await child.signal(executionPauseSignal);
          exec = await child.result();
        } finally {
          activeExecution = undefined;
        }
        result.steps.push(...exec.steps);
        result.gates = exec.gates;
        result.evaluations = exec.evaluations;
        const measured = (kind: string) => exec.gates.find((g) => g.kind === kind);
        const passed = (name: string) => (measured(name) ? measured(name)!.passed : undefined);
        result.trust = trustScore({
          coverage: measured('coverage')?.value,
          mutation: measured('mutation')?.value,
          contracts: passed('contracts'),
          a11y: exec.gates.find((g) => g.name === 'a11y')?.passed,
          perf: exec.gates.find((g) => g.name === 'perf')?.passed,
        });
        result.usage = { ...exec.usage };
        progress.usage = result.usage;
        result.iterations += exec.iterations;
        result.diffRef = exec.diff.diffRef;
        result.diffHash = exec.diff.diffRef.sha256;
        result.filesChanged = exec.diff.files;
        result.artifacts.push({ name: `diff-${executions}`, ...exec.diff.diffRef });
        for (const g of exec.gates) result.artifacts.push({ name: `gate-${g.name}-${executions}`, ...g.logRef });

        if (exec.stopReason === 'budget_exhausted') return finish('failed', `budget exhausted: ${exec.detail}`);
        if (exec.stopReason === 'step_failed') return finish('failed', exec.detail);

        await whenRunning();
        setStatus('quality_check', 'the council reviews the result', 80);
        const verdict = await deliberate({
          phase: 'result',
          tier: risk.tier,
          spec,
          diffRef: exec.diff.diffRef,
          commands: plan.commands,
          budget: { maxFiles: budget.max_files, maxLoc: budget.max_loc },
          gates: exec.evaluations.map((e) => {
            const covers = gateSpecs.find((g) => g.name === e.gate)?.covers ?? [];
            return {
              gate: e.gate,
              status: e.status,
              reason: covers.length ? `${e.reason}; covers ${covers.join(' ')}` : e.reason,
            };
          }),
          activeWaivers,
          subjectHash: exec.diff.diffRef.sha256,
        });
        const failedGates = exec.evaluations.filter((e) => e.status === 'fail').map((e) => `${e.gate} (${e.reason})`);
        if (verdict.kind === 'escalate') {
          const d = await awaitApproval('result', exec.diff.diffRef.sha256, [
            `the council could not decide on the result: ${verdict.reason}`,
          ]);
          if (!d)
            return finish('failed', `rejected: no decision on the result within ${settings.approvalTimeoutMs} ms`);
          if (d.decision === 'reject')
            return finish('failed', `result rejected by ${d.approver}${d.reason ? `: ${d.reason}` : ''}`);
        } else if (verdict.record.verdict.decision === 'reject') {
          return finish(
            'failed',
            `the council rejected the result${failedGates.length ? `; gates failed: ${failedGates.join(', ')}` : ''}: ${verdict.record.verdict.remediation.join('; ')}`,
          );
        } else if (verdict.record.verdict.decision === 'modify') {
          if (!plan.modelAvailable || result.iterations >= settings.maxIterations) {
            return finish('failed', `the council asked for changes: ${verdict.record.verdict.remediation.join('; ')}`);
          }
          feedback = verdict.record.verdict.remediation;
          continue;
        }
        if (failedGates.length) return finish('failed', `quality gates failed: ${failedGates.join(', ')}`);
        return finish('completed');
      }
    }
  };

  // ---- run, with the deadline and cancellation ----------------------------------------------------------------
  let deadlinePassed = false;
  const deadlineScope = new CancellationScope();
  if (input.budgets.deadline) {
    const ms = Date.parse(input.budgets.deadline) - Date.now();
    void deadlineScope
      .run(async () => {
        await sleep(Math.max(ms, 1));
        deadlinePassed = true;
        root.cancel();
      })
      .catch(() => undefined);
  }
  try {
    return await root.run(pipeline);
  } catch (err) {
    if (isCancellation(err)) {
      if (deadlinePassed) {
        return await CancellationScope.nonCancellable(() =>
          finish('failed', `deadline ${input.budgets.deadline} passed`),
        );
      }
      await CancellationScope.nonCancellable(() =>
        finish(
          'canceled',
          cancelRequest
            ? `canceled by ${cancelRequest.by}${cancelRequest.reason ? `: ${cancelRequest.reason}` : ''}`
            : 'canceled on request',
        ),
      );
      throw err;
    }
    const failure = businessFailure(err);
    if (failure) return await CancellationScope.nonCancellable(() => finish('failed', failure.message));
    throw err;
  } finally {
    deadlineScope.cancel();
    if (executions > 0) await CancellationScope.nonCancellable(() => execution.cleanupWorkspace(task));
  }
}
