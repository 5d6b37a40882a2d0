/**
 * agentTask — one software-change task, end to end.
 *
 * Steps:      plan (the spec from the request or the workspace; with a model, from the description; without one, an
 *             ambiguous task waits for `clarify`) → risk on four dimensions → tools matched to the plan's steps →
 *             council on the plan (child; `modify` waits for a revised spec) → human approval when the mode, the tier
 *             policy, the council, an escalated edit conflict or a privileged tool call asks → execution (child: steps
 *             or agent loop, gates, self-correction) → council on the result (child; `modify` refines) → provenance →
 *             clean-up → result.
 * Phases:     pipeline → planUntilAccepted (plan, assessRisk, matchTools, councilOnPlan) → approval →
 *             executeUntilAccepted (execute, councilOnResult) → finish, the one way a task ends. runToEnd adds the
 *             deadline, cancellation and clean-up; handleMessages registers the handlers. A deadline that infrastructure
 *             consumed (or a council that escalated because votes were lost to workers) is named in the reason and in
 *             the result's `outages` (deadlines.ts).
 * Activities: planTask, assessTaskRisk, loadWaivers, recordTaskEvent, storeJsonArtifact   on agency-planning
 *             resolveToolPlan, cleanupWorkspace                                         on agency-execution
 * Children:   councilDeliberationWorkflow (agency-council judges), executionWorkflow (agency-execution tools).
 * Messages:   query `progress`; signals `clarify`, `approve`, `reject`, `pause`, `resume`, `cancel`;
 *             update `decide` (approve/reject, answering whether the decision was accepted);
 *             signal `toolApprovalRequest` from the execution child (a person decides on one privileged tool call;
 *             the answer goes back to the child as `toolApprovalDecision`). State and handlers: run.ts, approvals.ts.
 * Search attributes: AgencyTaskStatus, AgencyTenant, AgencyRiskTier.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  executeChild,
  startChild,
  isCancellation,
  patched,
  setHandler,
  sleep,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { PlanOutcome } from '../../activities/planning/index.js';
import { RiskTierKey, TenantKey } from '../../temporal/search-attributes.js';
import { councilDeliberationWorkflow } from '../council/council-deliberation.workflow.js';
import { councilSessionId, type CouncilOutcome, type CouncilRequest } from '../council/session.js';
import { executionWorkflow } from '../execution/execution.workflow.js';
import {
  executionPauseSignal,
  toolApprovalDecisionSignal,
  executionResumeSignal,
  executionWorkflowId,
  type ExecutionInput,
  type ExecutionResult,
} from '../execution/definitions.js';
import type { ToolApprovalRequest, ToolPlan } from '../execution/tools.js';
import { planApprovalReasons } from './approvals.js';
import { isUntrustedPlaintext } from './decision-proof.js';
import {
  approveSignal,
  cancelSignal,
  clarifySignal,
  decideUpdate,
  FINAL_STATUSES,
  pauseSignal,
  progressQuery,
  rejectSignal,
  resumeSignal,
  toolApprovalRequestSignal,
  type AgentTaskInput,
  type RiskSummary,
  type TaskResult,
} from './definitions.js';
import {
  effectiveBudget,
  evaluateGates,
  isWaiverActive,
  planGates,
  type EffectiveBudget,
  type Waiver,
} from './policy.js';
import { lateDeadline, withOutages } from './deadlines.js';
import { budgetSpentEvent, buildProvenance, taskEndedEvent } from './provenance.js';
import { councilGates, failedGates, mergeExecution } from './results.js';
import { TaskRun } from './run.js';
import { GATE_KINDS, type GateKind, type WorkingSpec } from './spec.js';

const MAX_PLAN_ATTEMPTS = 3;

/** How a phase ends the task: the status and reason finish records. */
class Stop {
  constructor(
    readonly status: TaskResult['status'],
    readonly reason?: string,
  ) {}
}

type Planned = Extract<PlanOutcome, { kind: 'planned' }>;

/** The plan's risk, the waivers in force and the change budget they leave. */
interface Assessment {
  risk: RiskSummary;
  waivers: Waiver[];
  budget: EffectiveBudget;
  activeWaivers: { id: string; gates: string[] }[];
  /** The gates to run: the tier's required ones with their registered commands, and the spec's (REQUIRED_GATES_PATCH). */
  gatePlan?: ReturnType<typeof planGates>;
}

/**
 * From this patch on, the tier policy's required gates are measured whether or not the spec lists them, with the
 * commands registered for the repository or the tenant (planGates); before it, only the spec's gates ran.
 */
const REQUIRED_GATES_PATCH = 'tier-required-gates';
/**
 * From this patch on, a council's `modify` on a result that nothing can refine (no model, or no iterations left) goes
 * to a person through the same approval as an escalation, with the judges' reasons; before it, the task failed.
 */
const RESULT_MODIFY_PATCH = 'result-modify-asks-person';
/** From this patch on, risk is assessed again on the actual diff before the result council (riskOnDiff). */
const RISK_ON_DIFF_PATCH = 'risk-on-diff';

/** A plan the council let through, with what the later phases need of it. */
interface ReviewedPlan extends Assessment {
  plan: Planned;
  toolPlan: ToolPlan;
  allowedLevel: NonNullable<WorkingSpec['tool_level']>;
  /** The council's reason when it escalated instead of deciding: a person approves. */
  escalation?: string;
  /** The diff made the tier more critical than the plan (riskOnDiff): a person approves the result. */
  stricterOnDiff?: boolean;
}

export async function agentTaskWorkflow(input: AgentTaskInput): Promise<TaskResult> {
  if (isUntrustedPlaintext(input))
    throw ApplicationFailure.nonRetryable('an unencrypted input while payload encryption is on: refused', 'Untrusted');
  const run = new TaskRun(input);
  upsertSearchAttributes([{ key: TenantKey, value: input.tenantId }]);
  handleMessages(run);
  return runToEnd(run);
}

/**
 * Every handler, before the first await and in this order (a signal that came with the start is delivered when its
 * handler is set).
 */
function handleMessages(run: TaskRun): void {
  const { progress, approvals } = run;
  setHandler(progressQuery, () => progress);
  setHandler(clarifySignal, (c) => run.clarifications.clarify(c));
  setHandler(approveSignal, (d) => void approvals.receive(d, 'approve'));
  setHandler(rejectSignal, (d) => void approvals.receive(d, 'reject'));
  setHandler(decideUpdate, (d) => approvals.receive(d, 'decide'));
  setHandler(pauseSignal, async ({ by }) => {
    if (progress.paused || FINAL_STATUSES.includes(progress.status)) return;
    progress.paused = true;
    run.setStatus(run.lastActiveStatus, `paused by ${by}`);
    // From startChild on, the execution child pauses too (execute passes on a pause that came while it started).
    await run.activeExecution?.signal(executionPauseSignal);
  });
  setHandler(resumeSignal, async ({ by }) => {
    if (!progress.paused) return;
    progress.paused = false;
    run.setStatus(run.lastActiveStatus, `resumed by ${by}`);
    await run.activeExecution?.signal(executionResumeSignal);
  });
  setHandler(toolApprovalRequestSignal, (req) => decideToolCall(run, req));
  setHandler(cancelSignal, (request) => {
    run.cancelRequest = request;
    run.root.cancel();
  });
}

/**
 * An agent turn in the execution child wants a privileged tool: a person decides, bound to the call's exact
 * arguments (the same approval as the plan's: signal or Update with the hash), and the child is told.
 */
async function decideToolCall(run: TaskRun, req: ToolApprovalRequest): Promise<void> {
  const d = await run.approvals.ask(
    'tool',
    req.approvalHash,
    [
      `privileged tool call during execution: ${req.serverId}/${req.tool} (${req.level}), arguments sha256 ${req.argsSha256}`,
    ],
    [{ step: req.step, key: req.key, serverId: req.serverId, tool: req.tool }],
  );
  if (!FINAL_STATUSES.includes(run.progress.status))
    run.setStatus('executing', d ? `${d.decision} for ${req.serverId}/${req.tool}` : 'no decision in time', 30);
  await run.activeExecution?.signal(toolApprovalDecisionSignal, {
    key: req.key,
    approved: d?.decision === 'approve',
    by: d?.approver ?? 'nobody',
    reason: d ? d.reason : withOutages(`no decision within ${run.settings.approvalTimeoutMs} ms`, run.approvals.missed),
    ...(d?.proof ? { proof: d.proof } : {}),
  });
}

/**
 * The pipeline under the deadline and `cancel`: an interrupted or failed task still ends through finish (a
 * cancellation is rethrown after it), and the workspace copy is cleaned up once an execution has made one.
 */
async function runToEnd(run: TaskRun): Promise<TaskResult> {
  const { input } = run;
  let deadlinePassed = false;
  const deadlineScope = new CancellationScope();
  if (input.budgets.deadline) {
    const dueMs = Date.parse(input.budgets.deadline);
    void deadlineScope
      .run(async () => {
        await sleep(Math.max(dueMs - Date.now(), 1));
        deadlinePassed = true;
        const late = lateDeadline('task deadline', dueMs, Date.now());
        if (late) run.noteOutage(late);
        run.root.cancel();
      })
      .catch(() => undefined);
  }
  try {
    return await run.root.run(() => pipeline(run));
  } catch (err) {
    if (isCancellation(err)) {
      if (deadlinePassed) {
        return await CancellationScope.nonCancellable(() =>
          finish(run, 'failed', withOutages(`deadline ${input.budgets.deadline} passed`, run.result.outages)),
        );
      }
      const by = run.cancelRequest;
      await CancellationScope.nonCancellable(() =>
        finish(
          run,
          'canceled',
          by ? `canceled by ${by.by}${by.reason ? `: ${by.reason}` : ''}` : 'canceled on request',
        ),
      );
      throw err;
    }
    const failure = businessFailure(err);
    if (failure) return await CancellationScope.nonCancellable(() => finish(run, 'failed', failure.message));
    throw err;
  } finally {
    deadlineScope.cancel();
    if (run.executions > 0) {
      await CancellationScope.nonCancellable(() => run.execution.cleanupWorkspace(run.task, run.workspaceToClean()));
    }
  }
}

/** The innermost ApplicationFailure in a chain of causes (child workflow → activity → application). */
function businessFailure(err: unknown): ApplicationFailure | undefined {
  let found: ApplicationFailure | undefined;
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (e instanceof ApplicationFailure) found = e;
  return found;
}

/** The phases in order; each returns the Stop that ends the task, and finish records it. */
async function pipeline(run: TaskRun): Promise<TaskResult> {
  await run.planning.recordTaskEvent(run.task, 'task.started', {
    title: run.input.title,
    mode: run.input.mode,
    submittedBy: run.input.submittedBy,
    specWarnings: run.input.specWarnings ?? [],
  });
  // A registered repository is fetched once, at its ref, into the blob store: the task's source from here on.
  if (run.input.repository) run.source = await run.execution.fetchRepository(run.task, run.input.repository);
  const end = await phases(run);
  if (end.status === 'completed') await deliver(run);
  return finish(run, end.status, end.reason);
}

/**
 * Opt-in delivery of an accepted result: one commit of the workspace's final tree on the repository's commit the task
 * started from, pushed as agency/<task id>, its message naming the task and its verdicts. The diff artifact is kept.
 */
async function deliver(run: TaskRun): Promise<void> {
  const { input } = run;
  if (!input.repository || !input.deliver?.branch || typeof run.workspace !== 'object') return;
  if (!patched('deliver-branch')) return;
  run.setStatus('executing', 'delivering the result as a branch', 95);
  const verdicts = run.result.verdicts.map(
    (v) => `- ${v.phase}: ${v.verdict.decision} (council session ${v.sessionId}, signed ${v.signature.keyId})`,
  );
  const message = [
    `agency: ${input.title}`,
    '',
    `Task ${input.id} (${run.info.workflowId}), submitted by ${input.submittedBy}.`,
    `Repository ${input.repository.id} at ${input.repository.ref} (${run.baseCommit ?? 'unknown base'}).`,
    '',
    'Council verdicts:',
    ...(verdicts.length ? verdicts : ['- none recorded']),
  ].join('\n');
  run.result.delivery = await run.execution.deliverBranch(run.task, input.repository, run.workspace, message);
}

/** Plan until the council lets it through, a person's approval if one is needed, then execute until accepted. */
async function phases(run: TaskRun): Promise<Stop> {
  const reviewed = await planUntilAccepted(run);
  if (reviewed instanceof Stop) return reviewed;
  const refused = await approval(run, reviewed);
  if (refused) return refused;
  return executeUntilAccepted(run, reviewed);
}

/** 1–3. Plan, assess and match tools, then the council; again with a revised spec while the council asks for changes. */
async function planUntilAccepted(run: TaskRun): Promise<Stop | ReviewedPlan> {
  let spec: WorkingSpec | undefined = run.input.spec;
  for (let revisions = 0; ; revisions++) {
    const planned = await plan(run, spec);
    if (planned instanceof Stop) return planned;
    const assessment = await assessRisk(run, planned);
    const tools = await matchTools(run, planned);
    const review = await councilOnPlan(run, planned, assessment, revisions);
    if (review instanceof Stop) return review;
    if (!('revised' in review)) return { ...assessment, ...tools, plan: planned, escalation: review.escalation };
    spec = review.revised;
  }
}

/** 1. Plan: the working spec from the request, the workspace or the model; an ambiguous one waits for `clarify`. */
async function plan(run: TaskRun, spec: WorkingSpec | undefined): Promise<Stop | Planned> {
  const { input, task, planning } = run;
  const request = (current: WorkingSpec | undefined) => ({
    workspace: run.source,
    spec: current,
    title: input.title,
    description: input.description,
  });
  await run.whenRunning();
  run.setStatus('planning', 'checking the working spec', 5);
  let outcome = await planning.planTask(task, request(spec));
  run.result.usage.tokens += outcome.usage.tokens;
  run.result.usage.costUsd += outcome.usage.costUsd;
  while (outcome.kind === 'needs_clarification') {
    const clarified = await run.clarifications.ask(outcome.reasons);
    if (!clarified) {
      const why = `no clarification before the deadline: ${outcome.reasons.join('; ')}`;
      return new Stop('failed', withOutages(why, run.clarifications.missed));
    }
    await planning.recordTaskEvent(
      task,
      'clarification.received',
      { by: clarified.by },
      `clarified-${run.info.historyLength}`,
    );
    spec = clarified.spec;
    run.setStatus('planning', 'checking the clarified spec', 5);
    outcome = await planning.planTask(task, request(spec));
  }
  const exceeded = run.overBudget();
  if (exceeded) return new Stop('failed', `budget exhausted while planning: ${exceeded}`);
  run.result.specRef = outcome.specRef;
  run.result.artifacts.push({ name: 'spec', ...outcome.specRef });
  run.progress.planHash = outcome.planHash;
  return outcome;
}

/** 2. Risk on four dimensions (the AgencyRiskTier search attribute), the waivers in force, the change budget. */
async function assessRisk(run: TaskRun, { spec }: Planned): Promise<Assessment> {
  run.setStatus('planning', 'assessing risk', 10);
  const risk = await run.planning.assessTaskRisk(run.task, spec, run.input.description);
  run.result.risk = risk;
  run.progress.riskTier = risk.tier;
  upsertSearchAttributes([{ key: RiskTierKey, value: risk.tier }]);
  const waivers: Waiver[] = spec.waiver_ids?.length ? await run.planning.loadWaivers(run.task, spec.waiver_ids) : [];
  const now = new Date().toISOString();
  const budget = effectiveBudget(risk.tier, spec, waivers, now);
  const activeWaivers = waivers
    .filter((w) => w.gates.some((g) => isWaiverActive(w, g, now)))
    .map((w) => ({ id: w.id, gates: w.gates.filter((g) => isWaiverActive(w, g, now)) }));
  if (!patched(REQUIRED_GATES_PATCH)) return { risk, waivers, budget, activeWaivers };
  run.registeredGates ??= await run.planning.registeredGates(run.task, run.input.repository?.id);
  const gatePlan = planGates(risk.tier, spec, run.registeredGates);
  return { risk, waivers, budget, activeWaivers, gatePlan };
}

/**
 * Tools: every step bound to a registered tool the task may use (no match is a planning error), edit conflicts
 * resolved or escalated, privileged calls listed for a person's approval of their exact arguments.
 */
async function matchTools(run: TaskRun, plan: Planned): Promise<Pick<ReviewedPlan, 'toolPlan' | 'allowedLevel'>> {
  run.setStatus('planning', 'matching tools to the plan', 12);
  const allowedLevel = plan.spec.tool_level ?? 'standard';
  const toolPlan = await run.execution.resolveToolPlan(run.task, {
    workspace: run.source,
    steps: plan.spec.steps,
    allowedLevel,
    planHash: plan.planHash,
  });
  return { toolPlan, allowedLevel };
}

/**
 * 3. The council on the plan: `reject` ends the task; `modify` waits for a revised spec (at most MAX_PLAN_ATTEMPTS
 * verdicts); an escalation goes on to a person's approval. A dry run ends here.
 */
async function councilOnPlan(
  run: TaskRun,
  plan: Planned,
  { risk, budget, activeWaivers, gatePlan }: Assessment,
  revisions: number,
): Promise<Stop | { revised: WorkingSpec } | { escalation?: string }> {
  await run.whenRunning();
  run.setStatus('council_review', 'the council reviews the plan', 15);
  const outcome = await deliberate(run, {
    phase: 'plan',
    tier: risk.tier,
    // The judges see the gates that will run: the tier's required ones included.
    spec: gatePlan ? { ...plan.spec, gates: gatePlan.gates.map((p) => p.gate) } : plan.spec,
    plannedFiles: plan.plannedFiles,
    commands: plan.commands,
    budget: { maxFiles: budget.max_files, maxLoc: budget.max_loc },
    gates: [],
    activeWaivers,
    subjectHash: plan.planHash,
  });
  if (outcome.kind === 'final') {
    const verdict = outcome.record.verdict;
    if (verdict.decision === 'reject') {
      const why = verdict.remediation.join('; ') || verdict.constitutional_refs.join(', ');
      return new Stop('failed', `the council rejected the plan: ${why}`);
    }
    // The planner revised the plan on the dissent during the session: that plan is planned and judged again.
    if (outcome.revised && verdict.decision === 'accept') return { revised: outcome.revised.spec };
    if (verdict.decision === 'modify') {
      const attempts = revisions + 1;
      if (attempts >= MAX_PLAN_ATTEMPTS)
        return new Stop('failed', `the council asked for changes ${attempts} times: ${verdict.remediation.join('; ')}`);
      const clarified = await run.clarifications.ask([
        `the council asked for changes: ${verdict.remediation.join('; ')}`,
      ]);
      if (!clarified) {
        const why = 'no revised spec before the deadline';
        return new Stop('failed', withOutages(why, run.clarifications.missed));
      }
      return { revised: clarified.spec };
    }
  }
  if (run.input.mode === 'dry-run') {
    return new Stop(
      'completed',
      outcome.kind === 'final'
        ? `dry run: plan ${outcome.record.verdict.decision}ed by the council; nothing executed`
        : 'dry run: the council escalated; nothing executed',
    );
  }
  return { escalation: outcome.kind === 'escalate' ? outcome.reason : undefined };
}

/** 4. A person approves before execution when planApprovalReasons names a reason; a refusal or silence ends it. */
async function approval(run: TaskRun, r: ReviewedPlan): Promise<Stop | undefined> {
  const reasons = planApprovalReasons({
    councilEscalation: r.escalation,
    mode: run.input.mode,
    tier: r.risk.tier,
    toolPlan: r.toolPlan,
  });
  if (!reasons.length) return undefined;
  // With privileged calls the approval is bound to the plan and to those calls' exact arguments.
  const d = await run.approvals.ask(
    'plan',
    r.toolPlan.approval?.hash ?? r.plan.planHash,
    reasons,
    r.toolPlan.approval?.calls,
  );
  if (!d) {
    const why = `rejected: no approval within ${run.settings.approvalTimeoutMs} ms`;
    return new Stop('failed', withOutages(why, run.approvals.missed));
  }
  if (d.decision === 'reject') return new Stop('failed', `rejected by ${d.approver}${d.reason ? `: ${d.reason}` : ''}`);
  return undefined;
}

/** 5–6. Execution, then the council on the result; its `modify` (with a model) refines the change in a new execution. */
async function executeUntilAccepted(run: TaskRun, r: ReviewedPlan): Promise<Stop> {
  let feedback: string[] | undefined;
  for (;;) {
    const exec = await execute(run, r, feedback);
    if (exec.stopReason === 'budget_exhausted') return new Stop('failed', `budget exhausted: ${exec.detail}`);
    if (exec.stopReason === 'step_failed') return new Stop('failed', exec.detail);
    const judged = patched(RISK_ON_DIFF_PATCH) ? await riskOnDiff(run, r, exec) : { r, exec };
    const review = await councilOnResult(run, judged.r, judged.exec);
    if (review instanceof Stop) return review;
    feedback = review.feedback;
  }
}

/**
 * Risk on the actual diff, before the council on the result: when the diff makes the tier more critical than the plan
 * did (an agent loop has no planned steps; a command may write what no step shows), the stricter tier's policy applies
 * to the result: its council threshold, its gate thresholds and required gates (evaluated again on the same
 * measurements), and a person's approval of the result.
 */
async function riskOnDiff(
  run: TaskRun,
  r: ReviewedPlan,
  exec: ExecutionResult,
): Promise<{ r: ReviewedPlan; exec: ExecutionResult }> {
  run.setStatus('quality_check', 'assessing risk on the diff', 78);
  const onDiff = await run.planning.assessDiffRisk(run.task, r.plan.spec, run.input.description, exec.diff.diffRef);
  if (onDiff.tier >= r.risk.tier) return { r, exec };
  const risk = { ...onDiff, basis: 'diff' as const, planTier: r.risk.tier };
  run.result.risk = risk;
  run.progress.riskTier = risk.tier;
  upsertSearchAttributes([{ key: RiskTierKey, value: risk.tier }]);
  const gatePlan = r.gatePlan && planGates(risk.tier, r.plan.spec, run.registeredGates ?? []);
  const measured = (g: ExecutionResult['gates'][number]) => ({
    gate: g.name,
    kind: (GATE_KINDS as readonly string[]).includes(g.kind) ? (g.kind as GateKind) : 'custom',
    passed: g.passed,
    value: g.value,
    missing: g.missing,
    evidence: g.evidence,
  });
  const evaluations = evaluateGates(exec.gates.map(measured), {
    tier: risk.tier,
    waivers: r.waivers,
    spec: r.plan.spec,
    now: new Date().toISOString(),
    ...(gatePlan ? { gates: gatePlan.gates.map((p) => p.gate), required: gatePlan.required } : {}),
  });
  run.result.evaluations = evaluations;
  return { r: { ...r, risk, gatePlan, stricterOnDiff: true }, exec: { ...exec, evaluations } };
}

/** 5. One execution child (pause and resume are forwarded to it while it runs); its result is merged into the task's. */
async function execute(run: TaskRun, r: ReviewedPlan, feedback: string[] | undefined): Promise<ExecutionResult> {
  await run.whenRunning();
  const refining = run.executions > 0;
  run.setStatus(refining ? 'refining' : 'executing', refining ? 'refining the change' : 'executing the plan', 30);
  const n = ++run.executions;
  let exec: ExecutionResult;
  try {
    const child = await startChild(executionWorkflow, {
      workflowId: executionWorkflowId(run.info.workflowId, n),
      args: [executionInput(run, r, feedback)],
      memo: { tenantId: run.input.tenantId, taskId: run.input.id },
    });
    // From here pause/resume reach the child; a pause that arrived while it was starting is passed on now.
    run.activeExecution = child;
    // The first execution's workspace is named by its first run (a canceled task cleans it up by that name).
    run.workspaceId ??= child.firstExecutionRunId;
    if (run.progress.paused) await child.signal(executionPauseSignal);
    exec = await child.result();
  } finally {
    run.activeExecution = undefined;
  }
  run.workspace = exec.workspace ?? exec.workdir;
  run.baseCommit = exec.baseCommit;
  run.result = mergeExecution(run.result, exec, n);
  run.progress.usage = run.result.usage;
  return exec;
}

/** The execution child's input: the plan's steps bound to tools, the grant, budgets and what is spent so far. */
function executionInput(run: TaskRun, r: ReviewedPlan, feedback: string[] | undefined): ExecutionInput {
  const { input, settings, result } = run;
  return {
    task: run.task,
    workspace: run.source,
    title: input.title,
    description: input.description,
    spec: { ...r.plan.spec, steps: r.toolPlan.steps },
    tools: {
      bindings: r.toolPlan.bindings,
      // Reaching here with privileged calls means a person approved them (the approval phase).
      grant: { allowedLevel: r.allowedLevel, approvedCalls: r.toolPlan.approval?.calls.map((c) => c.key) ?? [] },
    },
    tier: r.risk.tier,
    waivers: r.waivers,
    budgets: {
      maxSteps: input.budgets.max_steps,
      maxTokens: input.budgets.max_tokens,
      maxCostUsd: input.budgets.max_cost_usd,
    },
    usage: { ...result.usage },
    modelAvailable: r.plan.modelAvailable,
    maxIterations: settings.maxIterations,
    continueAsNewAfterSteps: settings.continueAsNewAfterSteps,
    stepBase: result.usage.steps,
    feedback,
    ...(r.gatePlan ? { gates: r.gatePlan.gates, requiredGates: r.gatePlan.required } : {}),
    from: run.workspace,
    baseCommit: run.baseCommit,
    handoverTimeoutMs: settings.executionHandoverMs,
    approvalKeys: run.approvals.publicKeys,
  };
}

/**
 * 6. The council on the result (the actual diff and the gates): an escalation asks a person; `reject` or failed gates
 * end the task failed; `modify` returns the feedback for a refinement while a model and iterations are left.
 */
async function councilOnResult(
  run: TaskRun,
  r: ReviewedPlan,
  exec: ExecutionResult,
): Promise<Stop | { feedback: string[] }> {
  await run.whenRunning();
  run.setStatus('quality_check', 'the council reviews the result', 80);
  const outcome = await deliberate(run, {
    phase: 'result',
    tier: r.risk.tier,
    spec: r.plan.spec,
    diffRef: exec.diff.diffRef,
    commands: r.plan.commands,
    budget: { maxFiles: r.budget.max_files, maxLoc: r.budget.max_loc },
    gates: councilGates(exec.evaluations, r.plan.spec.gates, exec.gates),
    activeWaivers: r.activeWaivers,
    subjectHash: exec.diff.diffRef.sha256,
  });
  const failed = failedGates(exec.evaluations);
  if (outcome.kind === 'escalate') {
    const d = await run.approvals.ask('result', exec.diff.diffRef.sha256, [
      `the council could not decide on the result: ${outcome.reason}`,
    ]);
    if (!d) {
      const why = `rejected: no decision on the result within ${run.settings.approvalTimeoutMs} ms`;
      return new Stop('failed', withOutages(why, run.approvals.missed));
    }
    if (d.decision === 'reject')
      return new Stop('failed', `result rejected by ${d.approver}${d.reason ? `: ${d.reason}` : ''}`);
  } else if (outcome.record.verdict.decision === 'reject') {
    const gates = failed.length ? `; gates failed: ${failed.join(', ')}` : '';
    return new Stop(
      'failed',
      `the council rejected the result${gates}: ${outcome.record.verdict.remediation.join('; ')}`,
    );
  } else if (outcome.record.verdict.decision === 'modify') {
    const { remediation, dissent } = outcome.record.verdict;
    if (r.plan.modelAvailable && run.result.iterations < run.settings.maxIterations) return { feedback: remediation };
    if (!patched(RESULT_MODIFY_PATCH))
      return new Stop('failed', `the council asked for changes: ${remediation.join('; ')}`);
    // Nothing can act on the feedback (offline, or no iterations left): a person decides, with the judges' reasons.
    const reasons = [
      `the council asked for changes to the result: ${remediation.join('; ') || 'see the judges’ reasons'}`,
      ...dissent.flatMap((d) => d.reasons.map((why) => `${d.judge_id}: ${why}`)),
    ];
    const d = await run.approvals.ask('result', exec.diff.diffRef.sha256, reasons);
    if (!d) {
      const why = `the council asked for changes (${remediation.join('; ')}) and nobody decided on the result within ${run.settings.approvalTimeoutMs} ms`;
      return new Stop('failed', withOutages(why, run.approvals.missed));
    }
    if (d.decision === 'reject')
      return new Stop('failed', `result rejected by ${d.approver}${d.reason ? `: ${d.reason}` : ''}`);
  }
  if (failed.length) return new Stop('failed', `quality gates failed: ${failed.join(', ')}`);
  if (r.stricterOnDiff && outcome.kind === 'final' && outcome.record.verdict.decision === 'accept') {
    const planTier = r.risk.planTier ?? r.plan.spec.risk_tier;
    const d = await run.approvals.ask('result', exec.diff.diffRef.sha256, [
      `the diff is risk tier ${r.risk.tier}, more critical than the plan's tier ${planTier}: a person approves the result`,
    ]);
    if (!d) {
      const why = `rejected: no decision on the result within ${run.settings.approvalTimeoutMs} ms`;
      return new Stop('failed', withOutages(why, run.approvals.missed));
    }
    if (d.decision === 'reject')
      return new Stop('failed', `result rejected by ${d.approver}${d.reason ? `: ${d.reason}` : ''}`);
  }
  return new Stop('completed');
}

/** A council session (child workflow); its usage counts toward the task's, a final verdict is kept as an artifact. */
async function deliberate(
  run: TaskRun,
  request: Omit<CouncilRequest, 'task' | 'strategy' | 'consensusTimeoutMs' | 'judgeHandoverMs'>,
): Promise<CouncilOutcome> {
  const { input, info } = run;
  const n = ++run.councilSessions;
  const sessionId = councilSessionId(info.workflowId, request.phase, n);
  run.progress.councilSessions.push(sessionId);
  const outcome = await executeChild(councilDeliberationWorkflow, {
    workflowId: sessionId,
    args: [
      {
        ...request,
        task: run.task,
        strategy: input.consensus ?? 'weighted',
        consensusTimeoutMs: run.settings.consensusTimeoutMs,
        judgeHandoverMs: run.settings.judgeHandoverMs,
      },
    ],
    memo: { tenantId: input.tenantId, taskId: input.id, parentWorkflowId: info.workflowId },
    typedSearchAttributes: [{ key: TenantKey, value: input.tenantId }],
  });
  run.result.usage.tokens += outcome.usage.tokens;
  run.result.usage.costUsd += outcome.usage.costUsd;
  if (outcome.kind === 'escalate' && outcome.cause === 'infrastructure')
    run.noteOutage(`${sessionId}: ${outcome.reason}`);
  if (outcome.kind === 'final') {
    run.result.verdicts.push(outcome.record);
    run.result.artifacts.push({ name: `verdict-${request.phase}-${n}`, ...outcome.record.verdictRef });
  }
  return outcome;
}

/**
 * 7. The end of every path: the status (a pause is over), then, whatever cancels, the provenance record, the budget
 * spent and the task's final audit event; returns once every message handler has finished.
 */
async function finish(run: TaskRun, status: TaskResult['status'], reason?: string): Promise<TaskResult> {
  const { input, info, task, planning } = run;
  run.result.status = status;
  if (reason) run.result.reason = reason;
  run.progress.paused = false;
  run.setStatus(status, reason ?? status, 100);
  await CancellationScope.nonCancellable(async () => {
    const provenance = await planning.storeJsonArtifact(
      task,
      'provenance',
      buildProvenance({
        input,
        workflow: { id: info.workflowId, firstRunId: info.firstExecutionRunId, namespace: info.namespace },
        status,
        reason,
        planHash: run.progress.planHash,
        result: run.result,
      }),
    );
    run.result.artifacts.push({ name: 'provenance', ...provenance });
    await planning.recordTaskEvent(task, 'budget.spent', budgetSpentEvent(run.result.usage, input.budgets));
    await planning.recordTaskEvent(task, `task.${status}`, taskEndedEvent(reason, run.result));
  });
  await condition(allHandlersFinished);
  return run.result;
}
