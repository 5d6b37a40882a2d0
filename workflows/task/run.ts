/**
 * One agentTask run's shared state: the input and settings, the task's identity, the activity proxies, the progress
 * the `progress` query returns, the result being built, and the people's answers (approvals.ts). Every phase of
 * agent-task.workflow.ts reads and writes the task through it. Workflow-safe.
 */
import {
  CancellationScope,
  condition,
  upsertSearchAttributes,
  workflowInfo,
  type ChildWorkflowHandle,
  type WorkflowInfo,
} from '@temporalio/workflow';
import type { ExecutionActivities } from '../../activities/execution/index.js';
import type { PlanningActivities } from '../../activities/planning/index.js';
import { TaskStatusKey } from '../../temporal/search-attributes.js';
import type { executionWorkflow } from '../execution/execution.workflow.js';
import type { WorkspaceRef } from '../execution/definitions.js';
import { proxyOn } from '../proxy.js';
import { Approvals, Clarifications, type TaskHost } from './approvals.js';
import type { RegisteredGate } from './policy.js';
import {
  DEFAULT_TASK_SETTINGS,
  FINAL_STATUSES,
  type AgentTaskInput,
  type TaskProgress,
  type TaskRef,
  type TaskResult,
  type TaskSettings,
  type TaskStatus,
  type WorkspaceSource,
} from './definitions.js';

const MAX_EVENTS_KEPT = 50;

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

export class TaskRun implements TaskHost {
  readonly settings: TaskSettings;
  readonly planning: ReturnType<typeof activities>['planning'];
  readonly execution: ReturnType<typeof activities>['execution'];
  /** The workflow info at start (not refreshed: its historyLength keys clarification events). */
  readonly info: WorkflowInfo;
  readonly task: TaskRef;
  readonly progress: TaskProgress;
  /** The result so far; replaced (not changed) when an execution is merged in (results.ts). */
  result: TaskResult;
  /** The status a pause hides and a resume shows again. */
  lastActiveStatus: TaskStatus = 'pending';
  readonly approvals: Approvals;
  readonly clarifications: Clarifications;
  /** Everything but finish: cancelled by `cancel` or by the deadline. */
  readonly root = new CancellationScope();
  cancelRequest: { by: string; reason?: string } | undefined;
  /** The running execution child: pause, resume and tool decisions are forwarded to it. */
  activeExecution: ChildWorkflowHandle<typeof executionWorkflow> | undefined;
  /** Council sessions and execution children started so far (they number the children's ids). */
  councilSessions = 0;
  executions = 0;
  /** The last execution's workspace (a refinement continues it; cleaned up at the end) and its base commit. */
  workspace: WorkspaceRef | string | undefined;
  baseCommit: string | undefined;
  /** The id of the workspace the first execution prepared, known as soon as it starts. */
  workspaceId: string | undefined;
  /** Where the task's files come from: the fetched repository (a bundle), else the deprecated local path. */
  source: WorkspaceSource;
  /** The gate commands registered for the repository or the tenant (asked once; planGates). */
  registeredGates: RegisteredGate[] | undefined;

  constructor(readonly input: AgentTaskInput) {
    this.settings = { ...DEFAULT_TASK_SETTINGS, ...input.settings };
    this.source = input.workspace;
    const { planning, execution } = activities();
    this.planning = planning;
    this.execution = execution;
    this.info = workflowInfo();
    this.task = {
      tenantId: input.tenantId,
      taskId: input.id,
      workflowId: this.info.workflowId,
      executionKey: `${this.info.workflowId}/${this.info.firstExecutionRunId}`,
      correlationId: input.correlationId,
    };
    this.progress = {
      taskId: input.id,
      status: 'pending',
      step: 'submitted',
      percent: 0,
      events: [],
      paused: false,
      councilSessions: [],
      usage: { steps: 0, tokens: 0, costUsd: 0 },
    };
    this.result = {
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
      usage: this.progress.usage,
      iterations: 0,
    };
    this.approvals = new Approvals(this);
    this.clarifications = new Clarifications(this);
  }
  /** What cleanupWorkspace removes: the portable workspace (by id, when its execution never returned), or none (legacy). */
  workspaceToClean(): { id: string; tenantId: string } | undefined {
    if (typeof this.workspace === 'object') return this.workspace;
    if (this.workspace === undefined && this.workspaceId)
      return { id: this.workspaceId, tenantId: this.input.tenantId };
    return undefined;
  }

  /** Shows the phase in `progress` and the AgencyTaskStatus search attribute ('paused' while paused, unless final). */
  setStatus(status: TaskStatus, step: string, percent = this.progress.percent): void {
    const progress = this.progress;
    progress.status = progress.paused && !FINAL_STATUSES.includes(status) ? 'paused' : status;
    this.lastActiveStatus = status;
    progress.step = step;
    progress.percent = percent;
    progress.events = [...progress.events, { at: new Date().toISOString(), status, message: step }].slice(
      -MAX_EVENTS_KEPT,
    );
    upsertSearchAttributes([{ key: TaskStatusKey, value: progress.status }]);
  }

  /** Resolves at once, or on `resume` when the task is paused. */
  whenRunning(): Promise<void> {
    return condition(() => !this.progress.paused);
  }

  /** Records what infrastructure consumed (TaskResult.outages); the reasons of deadlines that pass name it. */
  noteOutage(note: string): void {
    this.result.outages = [...(this.result.outages ?? []), note];
  }

  /** Which model budget (tokens or cost) the task has gone over, if any. */
  overBudget(): string | undefined {
    const u = this.result.usage;
    const budgets = this.input.budgets;
    if (u.tokens > budgets.max_tokens) return `model tokens ${u.tokens} > ${budgets.max_tokens}`;
    if (u.costUsd > budgets.max_cost_usd) return `model cost $${u.costUsd.toFixed(4)} > $${budgets.max_cost_usd}`;
    return undefined;
  }
}
