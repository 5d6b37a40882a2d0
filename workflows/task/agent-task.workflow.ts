/**
 * agentTask — one software-change task, end to end (the pipeline's skeleton; council, approval and the agent loop
 * deepen it).
 *
 * Steps:      plan (resolve + check the working spec) → prepare an isolated copy of the workspace → apply the spec's
 *             steps one by one → run the quality gates → collect the diff → review the diff → clean up → result.
 * Activities: planTask, recordTaskEvent            on agency-planning
 *             prepareWorkspace, applyStep, runGate, collectDiff, cleanupWorkspace   on agency-execution
 *             reviewTaskDiff                       on agency-council
 * Messages:   query `progress`; cancellation through the Temporal cancel request (cleans the workspace, ends `canceled`).
 * Search attributes: AgencyTaskStatus, AgencyTenant, AgencyRiskTier.
 */
import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { CouncilActivities } from '../../activities/council/index.js';
import type { ExecutionActivities, TaskRef } from '../../activities/execution/index.js';
import type { PlanningActivities } from '../../activities/planning/index.js';
import { prefixOfQueue, queueFor } from '../../temporal/task-queues.js';
import { RiskTierKey, TaskStatusKey, TenantKey } from '../../temporal/search-attributes.js';
import {
  progressQuery,
  type AgentTaskInput,
  type GateOutcome,
  type ProgressEvent,
  type StepOutcome,
  type TaskProgress,
  type TaskResult,
  type TaskStatus,
} from './definitions.js';

const MAX_EVENTS_KEPT = 50;

function activities() {
  const prefix = prefixOfQueue(workflowInfo().taskQueue);
  return {
    // Planning reads files and the database: short, safe to retry.
    planning: proxyActivities<PlanningActivities>({
      taskQueue: queueFor('planning', prefix),
      startToCloseTimeout: '1 minute',
      retry: { maximumInterval: '30 seconds', nonRetryableErrorTypes: ['InvalidSpec'] },
    }),
    // Steps and gates run programs: they heartbeat every second, so a dead worker is noticed within the heartbeat
    // timeout and the step moves to another worker; the step's own timeout bounds the run.
    execution: proxyActivities<ExecutionActivities>({
      taskQueue: queueFor('execution', prefix),
      startToCloseTimeout: '1 hour',
      heartbeatTimeout: '10 seconds',
      retry: {
        maximumInterval: '30 seconds',
        nonRetryableErrorTypes: ['CommandRefused', 'PathOutsideWorkspace', 'InvalidWorkspace'],
      },
    }),
    // Review is pure computation over a stored diff.
    council: proxyActivities<CouncilActivities>({
      taskQueue: queueFor('council', prefix),
      startToCloseTimeout: '1 minute',
      retry: { maximumInterval: '30 seconds' },
    }),
  };
}

export async function agentTaskWorkflow(input: AgentTaskInput): Promise<TaskResult> {
  const { planning, execution, council } = activities();
  const info = workflowInfo();
  const task: TaskRef = {
    tenantId: input.tenantId,
    taskId: input.id,
    workflowId: info.workflowId,
    executionKey: `${info.workflowId}/${info.firstExecutionRunId}`,
    correlationId: input.correlationId,
  };

  const progress: TaskProgress = { taskId: input.id, status: 'pending', step: 'submitted', percent: 0, events: [] };
  setHandler(progressQuery, () => progress);

  const setStatus = (status: TaskStatus, step: string, percent: number, message = step): void => {
    progress.status = status;
    progress.step = step;
    progress.percent = percent;
    const event: ProgressEvent = { at: new Date().toISOString(), status, message };
    progress.events = [...progress.events, event].slice(-MAX_EVENTS_KEPT);
    upsertSearchAttributes([{ key: TaskStatusKey, value: status }]);
  };
  upsertSearchAttributes([{ key: TenantKey, value: input.tenantId }]);

  const result: TaskResult = { taskId: input.id, status: 'failed', filesChanged: [], steps: [], gates: [] };
  const finish = async (status: TaskResult['status'], reason?: string): Promise<TaskResult> => {
    result.status = status;
    if (reason) result.reason = reason;
    setStatus(status, status, 100, reason ?? status);
    await CancellationScope.nonCancellable(() =>
      planning.recordTaskEvent(task, `task.${status}`, {
        reason: reason ?? null,
        diff: result.diffRef?.sha256 ?? null,
      }),
    );
    return result;
  };

  let workspacePrepared = false;
  try {
    await planning.recordTaskEvent(task, 'task.started', {
      title: input.title,
      mode: input.mode,
      submittedBy: input.submittedBy,
    });

    // 1. Plan.
    setStatus('planning', 'checking the working spec', 5);
    const plan = await planning.planTask(task, input.workspace, input.spec);
    if (plan.kind === 'needs_clarification') {
      return await finish('failed', `needs clarification: ${plan.reasons.join('; ')}`);
    }
    const { spec } = plan;
    result.specRef = plan.specRef;
    upsertSearchAttributes([{ key: RiskTierKey, value: spec.risk_tier }]);
    if (spec.steps.length > input.budgets.max_steps) {
      return await finish(
        'failed',
        `the spec has ${spec.steps.length} steps; the step budget is ${input.budgets.max_steps}`,
      );
    }
    if (input.mode === 'dry-run') {
      return await finish('completed', 'dry run: plan checked, nothing executed');
    }

    // 2. Execute, step by step, in an isolated copy of the workspace.
    setStatus('executing', 'preparing an isolated workspace', 15);
    const { workdir } = await execution.prepareWorkspace(task, input.workspace);
    workspacePrepared = true;
    for (const [index, step] of spec.steps.entries()) {
      setStatus(
        'executing',
        `step ${index + 1}/${spec.steps.length}: ${step.kind}`,
        15 + Math.round((55 * index) / spec.steps.length),
      );
      const outcome: StepOutcome = await execution.applyStep(task, workdir, index, step);
      result.steps.push(outcome);
      if (!outcome.ok) return await finish('failed', `step ${index + 1} failed: ${outcome.detail}`);
    }

    // 3. Quality gates.
    setStatus('quality_check', 'running quality gates', 75);
    for (const gate of spec.gates) {
      const outcome: GateOutcome = await execution.runGate(task, workdir, gate);
      result.gates.push(outcome);
    }

    // 4. Diff and review.
    const diff = await execution.collectDiff(task, workdir);
    result.diffRef = diff.diffRef;
    result.filesChanged = diff.files;
    setStatus('quality_check', 'reviewing the diff', 90);
    result.review = await council.reviewTaskDiff(task, diff.diffRef, {
      scopeIn: spec.scope.in,
      scopeOut: spec.scope.out,
      maxFiles: spec.change_budget?.max_files,
      maxLoc: spec.change_budget?.max_loc,
    });

    const failedGates = result.gates.filter((g) => !g.passed).map((g) => g.name);
    if (failedGates.length) return await finish('failed', `quality gates failed: ${failedGates.join(', ')}`);
    if (!result.review.passed) {
      const blocking = result.review.findings.filter((f) => f.severity === 'high' || f.severity === 'critical');
      return await finish(
        'failed',
        `review found ${blocking.length} blocking issue(s): ${blocking.map((f) => f.rule).join(', ')}`,
      );
    }
    return await finish('completed');
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(async () => {
        if (workspacePrepared) await execution.cleanupWorkspace(task);
        await finish('canceled', 'canceled on request');
      });
      throw err;
    }
    if (err instanceof ApplicationFailure || (err as { cause?: unknown }).cause instanceof ApplicationFailure) {
      const failure = (err as { cause?: ApplicationFailure }).cause ?? (err as ApplicationFailure);
      return await finish('failed', failure.message);
    }
    throw err;
  } finally {
    if (workspacePrepared) await CancellationScope.nonCancellable(() => execution.cleanupWorkspace(task));
  }
}
