/**
 * What the API does with tasks, once: start / list / describe / query / signal / update the agentTask workflow, or
 * read its records from PostgreSQL. Both front doors call these functions — the REST routes (api/routes/tasks.ts)
 * and the MCP server (api/mcp.ts) — so they validate, authorise, isolate tenants and fail the same way.
 *
 * Every function takes the dependencies and the authenticated principal, checks the role the operation needs
 * (TASK_ROLES in api/principal.ts; admin implies every role), validates its input with api/schemas.ts or the
 * workflow's contracts, and throws the API's problems (api/errors.ts): 400 invalid input, 403 missing role, 404
 * unknown or another tenant's task (api/ownership.ts), 409 conflict. Lists come from Temporal visibility
 * (api/visibility.ts), records from PostgreSQL through common/ (tasks-repo, audit, artifacts). Still no business
 * logic: what a task does lives in workflows/task.
 */
import { checkVerdicts, type VerdictCheck } from '../common/verdict-check.js';
import { randomUUID } from 'node:crypto';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { listAuditEvents } from '../common/audit.js';
import type { Readable } from 'node:stream';
import { getArtifact, openArtifact, type ArtifactRef } from '../common/artifacts.js';
import { artifactsReferencedBy, taskEventsAfter, type TaskEventRow } from '../common/tasks-repo.js';
import { agentTaskWorkflow } from '../workflows/index.js';
import {
  clarifySignal,
  decideUpdate,
  pauseSignal,
  progressQuery,
  resumeSignal,
  TaskIdSchema,
  TaskRequestSchema,
  taskWorkflowId,
  type AgentTaskInput,
  type PendingApproval,
  type TaskProgress,
  type TaskRequest,
  type TaskResult,
} from '../workflows/task/definitions.js';
import { getRepository, localWorkspaceUnder, rootsFor } from '../common/repositories.js';
import { RiskTierKey, TaskStatusKey, TenantKey } from '../temporal/search-attributes.js';
import { queueFor } from '../temporal/task-queues.js';
import type { AppDeps } from './app.js';
import { conflict, HttpProblem, notFound, validate } from './errors.js';
import { ownedWorkflow } from './ownership.js';
import { authorize, type Principal } from './principal.js';
import {
  ApprovalTokenBodySchema,
  ClarifyBodySchema,
  DecisionBodySchema,
  EmptyBodySchema,
  PageQuerySchema,
  SHA256,
  TaskListQuerySchema,
} from './schemas.js';
import { checkSpec } from './spec-input.js';
import { approvalSignerFor, signDecision } from '../common/approval-keys.js';
import type { SignedDecision } from '../workflows/task/decision-proof.js';
import { listWorkflowPage, tenantWorkflowsQuery } from './visibility.js';

export type TaskServiceDeps = Pick<AppDeps, 'temporal' | 'db' | 'config'>;

// ---- helpers -----------------------------------------------------------------------------------------------------

export function webUiLink({ config }: Pick<TaskServiceDeps, 'config'>, workflowId: string): string {
  return `${config.TEMPORAL_UI_URL}/namespaces/${encodeURIComponent(config.TEMPORAL_NAMESPACE)}/workflows/${encodeURIComponent(workflowId)}`;
}

export const artifactHref = (taskId: string, sha256: string): string =>
  `/api/v1/tasks/${encodeURIComponent(taskId)}/artifacts/${sha256}`;

/** The task's workflow, if it exists and belongs to the caller's tenant (another tenant's task is a 404). */
export async function ownedTask(
  { temporal }: Pick<TaskServiceDeps, 'temporal'>,
  principal: Pick<Principal, 'tenantId'>,
  rawId: unknown,
): Promise<{ id: string; description: WorkflowExecutionDescription }> {
  const id = validate(TaskIdSchema, rawId, 'params');
  const description = await ownedWorkflow(temporal, principal, taskWorkflowId(id), {
    type: agentTaskWorkflow.name,
    what: `task ${id}`,
  });
  return { id, description };
}

/** An owned task whose workflow is still running (409 if it has ended), with a typed handle. */
async function runningTask(deps: TaskServiceDeps, principal: Principal, rawId: unknown) {
  const owned = await ownedTask(deps, principal, rawId);
  if (owned.description.status.name !== 'RUNNING') {
    throw new HttpProblem(
      409,
      'Conflict',
      `task ${owned.id} has already ended (${owned.description.status.name.toLowerCase()})`,
    );
  }
  return {
    ...owned,
    handle: deps.temporal.workflow.getHandle<typeof agentTaskWorkflow>(owned.description.workflowId),
  };
}

/**
 * Where a task's files come from (common/repositories.ts): a registered repository of the caller's tenant (another
 * tenant's, or none, is a 404) at the request's ref or its default; or, as a migration path, a local `workspace` that
 * lies (after realpath) under LOCAL_WORKSPACE_ROOTS for the tenant: refused (400) otherwise.
 */
async function taskSource(
  { db, config }: TaskServiceDeps,
  principal: Principal,
  request: TaskRequest,
): Promise<Pick<AgentTaskInput, 'workspace' | 'repository' | 'deliver'>> {
  if (request.repository !== undefined) {
    const repo = await getRepository(db, principal.tenantId, request.repository);
    if (!repo) throw notFound(`no repository ${request.repository}`);
    const deliver = request.deliver?.branch ?? repo.deliverBranch;
    return {
      workspace: '',
      repository: {
        id: repo.id,
        url: repo.url,
        ref: request.ref ?? repo.defaultRef,
        ...(repo.authSecretRef ? { authSecretRef: repo.authSecretRef } : {}),
      },
      ...(deliver ? { deliver: { branch: true } } : {}),
    };
  }
  const workspace = request.workspace ?? '';
  const roots = rootsFor(config.LOCAL_WORKSPACE_ROOTS, principal.tenantId);
  if (!roots.length) {
    throw new HttpProblem(
      400,
      'Bad Request',
      'a local workspace path is refused: register the repository (POST /api/v1/repositories) and name it in ' +
        '"repository"; an operator may allow local paths under LOCAL_WORKSPACE_ROOTS during migration',
    );
  }
  const allowed = await localWorkspaceUnder(workspace, roots);
  if (!allowed) {
    throw new HttpProblem(
      400,
      'Bad Request',
      `workspace ${workspace} is not under a local root allowed for this tenant (LOCAL_WORKSPACE_ROOTS; symlinks and .. ` +
        'are resolved): register the repository (POST /api/v1/repositories) and name it in "repository"',
    );
  }
  return { workspace: allowed };
}

// ---- operations --------------------------------------------------------------------------------------------------

export interface TaskAccepted {
  id: string;
  workflowId: string;
  runId: string;
  status: 'pending';
  specWarnings: string[];
  webUi: string;
}

/** Measures one phase of a request (api/server-timing.ts); the MCP server passes none. */
export type PhaseTimer = <T>(phase: string, work: () => Promise<T>) => Promise<T>;
const untimed: PhaseTimer = (_phase, work) => work();

/** Starts a task for the caller's tenant (the body is a TaskRequest). 409 if the id is taken. */
export async function startTask(
  deps: TaskServiceDeps,
  principal: Principal,
  body: unknown,
  correlationId: string,
  time: PhaseTimer = untimed,
): Promise<TaskAccepted> {
  authorize(principal, 'start');
  const { temporal, config } = deps;
  const request = validate(TaskRequestSchema, body);
  const source = await time('source', () => taskSource(deps, principal, request));
  const checked = request.spec === undefined ? undefined : checkSpec(request.spec, request.strict_spec);
  const id = request.id ?? randomUUID();
  const input: AgentTaskInput = {
    id,
    tenantId: principal.tenantId,
    submittedBy: principal.subject,
    correlationId,
    title: request.title,
    description: request.description,
    ...source,
    spec: checked?.spec,
    specWarnings: checked?.warnings,
    mode: request.mode,
    budgets: request.budgets,
    consensus: request.consensus,
    settings: {
      approvalTimeoutMs: config.TASK_APPROVAL_TIMEOUT,
      clarificationTimeoutMs: config.TASK_CLARIFICATION_TIMEOUT,
      consensusTimeoutMs: config.COUNCIL_CONSENSUS_TIMEOUT,
      judgeHandoverMs: config.COUNCIL_JUDGE_HANDOVER,
      maxIterations: config.TASK_MAX_ITERATIONS,
      continueAsNewAfterSteps: config.EXECUTION_CONTINUE_AS_NEW_AFTER,
      executionHandoverMs: config.EXECUTION_HANDOVER_TIMEOUT,
    },
    // The keys the task checks signed decisions against (decision-proof.ts); later keys are asked of an activity.
    approvalKeys: (await time('keys', () => approvalSignerFor(config)))?.publicKeys ?? {
      ...config.APPROVAL_PUBLIC_KEYS,
    },
  };
  const workflowId = taskWorkflowId(id);
  try {
    const handle = await time('start', () =>
      temporal.workflow.start(agentTaskWorkflow, {
        args: [input],
        workflowId,
        taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
        memo: { tenantId: principal.tenantId, title: request.title },
        typedSearchAttributes: [
          { key: TenantKey, value: principal.tenantId },
          { key: TaskStatusKey, value: 'pending' },
        ],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      }),
    );
    return {
      id,
      workflowId,
      runId: handle.firstExecutionRunId,
      status: 'pending',
      specWarnings: checked?.warnings ?? [],
      webUi: webUiLink(deps, workflowId),
    };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError)
      throw conflict(`a task with id ${id} already exists`, { id });
    throw err;
  }
}

export interface TaskListItem {
  id: string;
  workflowId: string | undefined;
  status: unknown;
  riskTier: unknown;
  temporalStatus: unknown;
  startedAt: string | undefined;
}

/** A page of the caller's tenant's tasks from Temporal visibility (query: ListQuerySchema), newest first. */
export async function listTasks(
  deps: TaskServiceDeps,
  principal: Principal,
  query: unknown,
): Promise<{ items: TaskListItem[]; nextCursor: string | null }> {
  authorize(principal, 'list');
  const q = validate(TaskListQuerySchema, query, 'query');
  const filters = { [TaskStatusKey.name]: q.status, [RiskTierKey.name]: q.risk_tier };
  const page = await listWorkflowPage(
    deps,
    tenantWorkflowsQuery(agentTaskWorkflow.name, principal.tenantId, filters),
    q,
  );
  const attribute = (e: (typeof page.executions)[number], name: string): unknown => {
    const payload = e.searchAttributes?.indexedFields?.[name];
    return payload ? defaultPayloadConverter.fromPayload(payload) : undefined;
  };
  return {
    items: page.executions.map((e) => ({
      id: (e.execution?.workflowId ?? '').replace(/^task-/, ''),
      workflowId: e.execution?.workflowId ?? undefined,
      status: attribute(e, TaskStatusKey.name),
      riskTier: attribute(e, RiskTierKey.name),
      temporalStatus: e.status,
      startedAt: e.startTime?.seconds ? new Date(Number(e.startTime.seconds) * 1000).toISOString() : undefined,
    })),
    nextCursor: page.nextCursor,
  };
}

export interface TaskView {
  id: string;
  workflowId: string;
  runId: string;
  status: string;
  temporalStatus: string;
  step: string | undefined;
  percent: number | undefined;
  progress: TaskProgress | undefined;
  result: TaskResult | undefined;
  /** Per verdict of the result, whether its signature verifies and with which key (common/verdict-check.ts). */
  verdictChecks: VerdictCheck[] | undefined;
  failure: string | undefined;
  startedAt: string;
  closedAt: string | undefined;
  webUi: string;
}

/** Status, progress (while running) and result or failure (once ended) of one of the caller's tasks. */
export async function getTask(deps: TaskServiceDeps, principal: Principal, rawId: unknown): Promise<TaskView> {
  authorize(principal, 'get');
  const { id, description } = await ownedTask(deps, principal, rawId);
  const handle = deps.temporal.workflow.getHandle(description.workflowId, description.runId);
  const running = description.status.name === 'RUNNING';
  let progress: TaskProgress | undefined;
  let result: TaskResult | undefined;
  let failure: string | undefined;
  if (running) {
    // A query needs a polling orchestration worker; without one, report what the server knows.
    progress = await handle.query(progressQuery).catch(() => undefined);
  } else if (description.status.name === 'COMPLETED') {
    result = (await handle.result()) as TaskResult;
  } else {
    failure = await handle.result().then(
      () => undefined,
      (err: Error) => (err.cause as Error | undefined)?.message ?? err.message,
    );
  }
  const status =
    result?.status ??
    progress?.status ??
    (running ? 'pending' : description.status.name === 'CANCELLED' ? 'canceled' : 'failed');
  return {
    id,
    workflowId: description.workflowId,
    runId: description.runId,
    status,
    temporalStatus: description.status.name,
    step: progress?.step,
    percent: result ? 100 : progress?.percent,
    progress,
    result,
    verdictChecks: result && (await checkVerdicts(deps.db, principal.tenantId, result.verdicts)),
    failure,
    startedAt: description.startTime.toISOString(),
    closedAt: description.closeTime?.toISOString(),
    webUi: webUiLink(deps, description.workflowId),
  };
}

/** The result of a task that ended; 409 while it runs or when it ended without one. */
export async function getTaskResult(deps: TaskServiceDeps, principal: Principal, rawId: unknown): Promise<TaskResult> {
  authorize(principal, 'result');
  const { id, description } = await ownedTask(deps, principal, rawId);
  if (description.status.name === 'RUNNING') throw new HttpProblem(409, 'Conflict', `task ${id} has not ended yet`);
  if (description.status.name !== 'COMPLETED')
    throw new HttpProblem(
      409,
      'Conflict',
      `task ${id} ended ${description.status.name.toLowerCase()} without a result`,
    );
  return (await deps.temporal.workflow.getHandle(description.workflowId, description.runId).result()) as TaskResult;
}

export interface TaskArtifactItem {
  name: string | null;
  sha256: string;
  mediaType: string;
  sizeBytes: number;
  href: string;
}

/** The task's artifacts: those its result names, then any other its audit trail mentions. */
export async function listTaskArtifacts(
  deps: TaskServiceDeps,
  principal: Principal,
  rawId: unknown,
): Promise<{ id: string; items: TaskArtifactItem[] }> {
  authorize(principal, 'artifacts');
  const { id, description } = await ownedTask(deps, principal, rawId);
  const referenced = await artifactsReferencedBy(deps.db, principal.tenantId, description.workflowId);
  const named =
    description.status.name === 'COMPLETED'
      ? ((await deps.temporal.workflow.getHandle(description.workflowId).result()) as TaskResult).artifacts
      : [];
  return {
    id,
    items: [
      ...named.map((a) => ({ ...a, href: artifactHref(id, a.sha256) })),
      ...referenced
        .filter((r) => !named.some((a) => a.sha256 === r.sha256))
        .map((r) => ({ name: null, ...r, href: artifactHref(id, r.sha256) })),
    ],
  };
}

/**
 * One artifact of the caller's tenant, by its sha256, asked for through one of the caller's tasks: its bytes as a
 * stream, verified as they flow (a corrupted blob fails the stream with BlobIntegrityError).
 */
export async function openTaskArtifact(
  deps: TaskServiceDeps,
  principal: Principal,
  rawId: unknown,
  rawSha256: unknown,
): Promise<ArtifactRef & { stream: Readable }> {
  authorize(principal, 'artifact');
  await ownedTask(deps, principal, rawId);
  const sha = validate(SHA256, rawSha256, 'query');
  const artifact = await openArtifact(deps.db, principal.tenantId, sha);
  if (!artifact) throw notFound(`no artifact ${sha}`);
  return artifact;
}

/** The same, read into memory: at most `maxBytes` of it (the MCP server, whose answers are small). */
export async function getTaskArtifact(
  deps: TaskServiceDeps,
  principal: Principal,
  rawId: unknown,
  rawSha256: unknown,
  { maxBytes }: { maxBytes?: number } = {},
): Promise<{ sha256: string; mediaType: string; sizeBytes: number; content: Buffer }> {
  authorize(principal, 'artifact');
  await ownedTask(deps, principal, rawId);
  const sha = validate(SHA256, rawSha256, 'query');
  const artifact = await getArtifact(deps.db, principal.tenantId, sha, { maxBytes });
  if (!artifact) throw notFound(`no artifact ${sha}`);
  return artifact;
}

/** The task's audit events. */
export async function getTaskAudit(deps: TaskServiceDeps, principal: Principal, rawId: unknown) {
  authorize(principal, 'audit');
  const { id, description } = await ownedTask(deps, principal, rawId);
  return {
    id,
    events: await listAuditEvents(deps.db, { tenantId: principal.tenantId, workflowId: description.workflowId }),
  };
}

/** The task's audit trail as a source of events after a sequence number (for a stream the caller drives). */
export async function taskEventSource(deps: TaskServiceDeps, principal: Principal, rawId: unknown) {
  authorize(principal, 'events');
  const { id, description } = await ownedTask(deps, principal, rawId);
  return {
    id,
    workflowId: description.workflowId,
    /** Up to `limit` events with a sequence number above `seq`, in order. */
    after: (seq: number, limit = 200): Promise<TaskEventRow[]> =>
      taskEventsAfter(deps.db, principal.tenantId, description.workflowId, seq, limit),
  };
}

/** Asks a running task to pause or resume (the body must be empty). */
export async function signalTask(
  deps: TaskServiceDeps,
  principal: Principal,
  rawId: unknown,
  message: 'pause' | 'resume',
  body: unknown,
): Promise<{ id: string; status: 'pause_requested' | 'resume_requested' }> {
  authorize(principal, message);
  validate(EmptyBodySchema, body);
  const { id, handle } = await runningTask(deps, principal, rawId);
  await handle.signal(message === 'pause' ? pauseSignal : resumeSignal, { by: principal.subject });
  return { id, status: `${message}_requested` };
}

/** Cancels a running task. */
export async function cancelTask(
  deps: TaskServiceDeps,
  principal: Principal,
  rawId: unknown,
): Promise<{ id: string; status: 'cancel_requested' }> {
  authorize(principal, 'cancel');
  const { id, handle } = await runningTask(deps, principal, rawId);
  await handle.cancel();
  return { id, status: 'cancel_requested' };
}

/** Gives a task waiting for clarification its working spec (body: ClarifyBodySchema). */
export async function clarifyTask(
  deps: TaskServiceDeps,
  principal: Principal,
  rawId: unknown,
  body: unknown,
): Promise<{ id: string; status: 'clarification_sent'; specWarnings: string[] }> {
  authorize(principal, 'clarify');
  const request = validate(ClarifyBodySchema, body);
  const checked = checkSpec(request.spec, request.strict_spec);
  const { id, handle } = await runningTask(deps, principal, rawId);
  const progress = await handle.query(progressQuery);
  if (!progress.pendingClarification)
    throw new HttpProblem(409, 'Conflict', `task ${id} is not waiting for clarification (${progress.status})`);
  await handle.signal(clarifySignal, { spec: checked.spec, by: principal.subject });
  return { id, status: 'clarification_sent', specWarnings: checked.warnings };
}

/** Approves or rejects the plan or diff a running task waits on (body: DecisionBodySchema, with its hash). */
export async function decideTask(
  deps: TaskServiceDeps,
  principal: Principal,
  rawId: unknown,
  decision: 'approve' | 'reject',
  body: unknown,
): Promise<{ id: string; accepted: boolean; note: string; status: string }> {
  authorize(principal, 'decide');
  const request = validate(DecisionBodySchema, body);
  const { id, handle } = await runningTask(deps, principal, rawId);
  return { id, ...(await decide(handle, decision, request, principal, deps.config)) };
}

/**
 * A signed decision for a person to send themselves, as the input of the `approve` or `reject` signal (the Web UI's
 * "Send Signal", `temporal workflow signal`). Valid for APPROVAL_TOKEN_TTL, once, for this task and hash only.
 */
export async function issueApprovalToken(
  deps: TaskServiceDeps,
  principal: Principal,
  rawId: unknown,
  body: unknown,
): Promise<{
  id: string;
  workflowId: string;
  signal: 'approve' | 'reject';
  input: SignedDecision;
  expires: string;
  cli: string;
}> {
  authorize(principal, 'decide');
  const request = validate(ApprovalTokenBodySchema, body);
  const { id, description } = await runningTask(deps, principal, rawId);
  const input = await signedDecision(
    deps.config,
    principal,
    description.workflowId,
    request.decision,
    request,
    deps.config.APPROVAL_TOKEN_TTL,
  );
  const cli =
    `temporal workflow signal --namespace ${deps.config.TEMPORAL_NAMESPACE} --workflow-id ${description.workflowId} ` +
    `--name ${request.decision} --input '${JSON.stringify(input).replace(/'/g, "'\\''")}'`;
  return { id, workflowId: description.workflowId, signal: request.decision, input, expires: input.grant.expires, cli };
}

/** How long a decision the API sends itself (the `decide` Update) stays valid: it is delivered at once. */
const DIRECT_DECISION_TTL_MS = 5 * 60_000;

/**
 * A decision signed for `principal` on the task of `workflowId` (workflows/task/decision-proof.ts): the only kind the
 * workflow takes. 503 when no signing key is configured (production without APPROVAL_SIGNING_KEY): never unsigned.
 */
export async function signedDecision(
  config: TaskServiceDeps['config'],
  principal: Pick<Principal, 'tenantId' | 'subject' | 'roles'>,
  workflowId: string,
  decision: 'approve' | 'reject',
  body: { hash: string; reason?: string },
  ttlMs: number,
): Promise<SignedDecision> {
  const signer = await approvalSignerFor(config);
  if (!signer) {
    throw new HttpProblem(
      503,
      'Service Unavailable',
      'decisions cannot be signed: APPROVAL_SIGNING_KEY and APPROVAL_SIGNING_KEY_ID are not configured',
    );
  }
  const now = Date.now();
  return signDecision(signer, {
    v: 1,
    task: workflowId,
    tenant: principal.tenantId,
    hash: body.hash,
    approver: principal.subject,
    roles: [...principal.roles],
    decision,
    ...(body.reason !== undefined ? { reason: body.reason } : {}),
    at: new Date(now).toISOString(),
    expires: new Date(now + ttlMs).toISOString(),
    nonce: randomUUID(),
  });
}

/** Sends an approval decision, signed for the principal, as an Update; a refused decision is a 409 with the reason. */
export async function decide(
  handle: ReturnType<TaskServiceDeps['temporal']['workflow']['getHandle']>,
  decision: 'approve' | 'reject',
  body: { hash: string; reason?: string },
  principal: Pick<Principal, 'tenantId' | 'subject' | 'roles'>,
  config: TaskServiceDeps['config'],
): Promise<{ accepted: boolean; note: string; status: string }> {
  const signed = await signedDecision(config, principal, handle.workflowId, decision, body, DIRECT_DECISION_TTL_MS);
  let outcome;
  try {
    outcome = await handle.executeUpdate(decideUpdate, { args: [signed] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError || err instanceof WorkflowNotFoundError) {
      throw new HttpProblem(409, 'Conflict', `the decision could not be delivered: ${err.message}`);
    }
    throw err;
  }
  if (!outcome.accepted)
    throw new HttpProblem(409, 'Conflict', outcome.note, { accepted: false, status: outcome.status });
  return outcome;
}

export interface PendingApprovalItem extends PendingApproval {
  id: string;
  workflowId: string;
  status: 'awaiting_approval';
  riskTier: unknown;
  startedAt: string | undefined;
  step: string | undefined;
  planHash: string | undefined;
  councilSessions: string[];
}

/**
 * The caller's tenant's tasks that wait for a person's decision: found by their AgencyTaskStatus search attribute
 * (awaiting_approval), then asked for what they wait on (the progress query: kind, hash to approve, reasons,
 * deadline). Visibility lags the workflows a little, so a task that has moved on since is left out (as is one whose
 * orchestration worker cannot answer the query right now: without it there is no hash to decide on).
 */
export async function listPendingApprovals(
  deps: TaskServiceDeps,
  principal: Principal,
  query: unknown,
): Promise<{ items: PendingApprovalItem[]; nextCursor: string | null }> {
  authorize(principal, 'pendingApprovals');
  const q = validate(PageQuerySchema, query, 'query');
  const page = await listTasks(deps, principal, { ...q, status: 'awaiting_approval' });
  const items = await Promise.all(
    page.items.map(async (item): Promise<PendingApprovalItem | undefined> => {
      const workflowId = taskWorkflowId(item.id);
      const progress = await deps.temporal.workflow
        .getHandle<typeof agentTaskWorkflow>(workflowId)
        .query(progressQuery)
        .catch(() => undefined);
      const pending = progress?.pendingApproval;
      if (!pending) return undefined;
      return {
        id: item.id,
        workflowId,
        status: 'awaiting_approval',
        riskTier: item.riskTier ?? progress.riskTier,
        startedAt: item.startedAt,
        ...pending,
        step: progress.step,
        planHash: progress.planHash,
        councilSessions: progress.councilSessions,
      };
    }),
  );
  return { items: items.filter((i) => i !== undefined), nextCursor: page.nextCursor };
}
