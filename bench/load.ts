/**
 * The load phase: N tasks posted at once through POST /api/v1/tasks, each on its own copy of samples/calculator
 * (the spec comes from the sample's .caws/working-spec.yaml), then each followed with GET /api/v1/tasks/:id until it
 * reaches a final state or the deadline passes.
 *
 * End-to-end time is the workflow's close time (as the API reports it, from the Temporal server on this machine)
 * minus the moment the client started the POST; polling only detects the end, so the poll interval does not inflate it.
 */
import type { Client } from '@temporalio/client';
import { parseServerTiming } from '../api/server-timing.js';
import type { TaskProgress, TaskResult } from '../workflows/task/definitions.js';

interface TaskView {
  id: string;
  status: string;
  temporalStatus: string;
  step?: string;
  result?: TaskResult;
  progress?: TaskProgress;
  failure?: string;
  startedAt?: string;
  closedAt?: string;
}

export interface TaskSample {
  index: number;
  id?: string;
  workflowId?: string;
  postStatus: number;
  postMs: number;
  /** The POST's phases as the API measured them (its Server-Timing header, api/server-timing.ts), in ms. */
  postPhases: Record<string, number>;
  /** Client clock (epoch ms) when the POST started. */
  submittedAt: number;
  /** Server close time of the task's workflow (epoch ms). */
  closedAt?: number;
  /** closedAt − submittedAt. */
  e2eMs?: number;
  /** When polling saw the final state, minus submittedAt. */
  observedMs?: number;
  status: string;
  temporalStatus?: string;
  lastStep?: string;
  reason?: string;
  getMs: number[];
  /** GETs that failed while the task ran (the task is still followed). */
  getErrors: string[];
  councilSessions: string[];
  /** Approvals this client gave through POST /api/v1/tasks/:id/approve (LoadOptions.approve), and their answers. */
  approvals: { kind: string; hash: string; reasons: string[]; status: number; error?: string }[];
  /** The task's signed council verdicts: decision, voting rounds, votes counted uncertain (error or over budget). */
  verdicts: { phase: string; decision: string; rounds: number; uncertainVotes: number }[];
  error?: string;
}

export interface LoadOptions {
  apiUrl: string;
  apiKey: string;
  workspaces: string[];
  pollMs: number;
  timeoutMs: number;
  /** For the stuck-task check (and nothing else: progress is read over HTTP). */
  client: Client;
  /** The task's mode (POST body); the API's default when absent. `strict` waits for a person to approve the plan. */
  mode?: 'strict' | 'auto' | 'dry-run';
  /**
   * Approve, as the demo does (scripts/dev.ts), each plan or diff a task waits on, with the hash the task shows;
   * otherwise a task that waits for a person is reported as such and no longer followed.
   */
  approve?: boolean;
  /** The POST's title, given the task's index (default "Bench task N: fix average()"). */
  title?: (index: number) => string;
  /** Called once, when every POST has been answered (the burst is over; polling goes on). */
  onAllPosted?: () => void;
}

/** How often a task that has not ended is checked for a failing workflow task. */
const STUCK_CHECK_MS = 5_000;

/**
 * A workflow whose workflow task keeps failing (a bug or a half-edited workflow file bundled by the workers) never
 * ends: the server retries the task forever. Reports it with the failure message from the history, so the bench
 * stops following that task at once instead of waiting for the deadline.
 */
export async function failingWorkflowTask(client: Client, workflowId: string): Promise<string | undefined> {
  const handle = client.workflow.getHandle(workflowId);
  const attempt = (await handle.describe()).raw.pendingWorkflowTask?.attempt ?? 0;
  if (attempt < 3) return undefined;
  const history = await handle.fetchHistory();
  const failed = [...(history.events ?? [])].reverse().find((e) => e.workflowTaskFailedEventAttributes);
  const message = failed?.workflowTaskFailedEventAttributes?.failure?.message ?? 'no failure message in the history';
  return `its workflow task keeps failing (attempt ${attempt}): ${message}`;
}

const FINAL = new Set(['completed', 'failed', 'canceled']);
/** States a task leaves only when a person acts (offline tasks should never reach them): stop following. */
const NEEDS_A_PERSON = new Set(['awaiting_approval', 'awaiting_clarification']);

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

async function followTask(
  opts: LoadOptions & { posted?: () => void },
  index: number,
  deadline: number,
): Promise<TaskSample> {
  const workspace = opts.workspaces[index]!;
  const submittedAt = Date.now();
  const post = await timed(async () => {
    const res = await fetch(`${opts.apiUrl}/api/v1/tasks`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-api-key': opts.apiKey,
        'x-correlation-id': `bench-${process.pid}-${index}`,
      },
      body: JSON.stringify({
        title: opts.title?.(index) ?? `Bench task ${index + 1}: fix average()`,
        workspace,
        ...(opts.mode ? { mode: opts.mode } : {}),
      }),
    });
    return {
      status: res.status,
      timing: parseServerTiming(res.headers.get('server-timing')),
      body: (await res.json()) as { id?: string; workflowId?: string; detail?: string },
    };
  });
  opts.posted?.();
  const sample: TaskSample = {
    index,
    id: post.value.body.id,
    workflowId: post.value.body.workflowId,
    postStatus: post.value.status,
    postMs: post.ms,
    postPhases: post.value.timing,
    submittedAt,
    status: 'not_submitted',
    getMs: [],
    getErrors: [],
    approvals: [],
    councilSessions: [],
    verdicts: [],
  };
  if (post.value.status !== 202 || !sample.id) {
    sample.error = `POST answered ${post.value.status}: ${post.value.body.detail ?? JSON.stringify(post.value.body)}`;
    return sample;
  }
  sample.status = 'pending';
  let nextStuckCheck = Date.now() + STUCK_CHECK_MS;
  for (;;) {
    await new Promise((r) => setTimeout(r, opts.pollMs));
    try {
      const get = await timed(async () => {
        const res = await fetch(`${opts.apiUrl}/api/v1/tasks/${encodeURIComponent(sample.id!)}`, {
          headers: { 'x-api-key': opts.apiKey },
        });
        if (res.status !== 200) throw new Error(`GET answered ${res.status}: ${await res.text()}`);
        return (await res.json()) as TaskView;
      });
      sample.getMs.push(get.ms);
      const view = get.value;
      sample.status = view.status;
      sample.temporalStatus = view.temporalStatus;
      sample.lastStep = view.step ?? sample.lastStep;
      if (FINAL.has(view.status) && view.temporalStatus !== 'RUNNING') {
        sample.observedMs = Date.now() - submittedAt;
        if (view.closedAt) {
          sample.closedAt = Date.parse(view.closedAt);
          sample.e2eMs = sample.closedAt - submittedAt;
        }
        sample.reason = view.result?.reason ?? view.failure;
        sample.councilSessions = (view.result?.verdicts ?? []).map((v) => v.sessionId);
        sample.verdicts = (view.result?.verdicts ?? []).map((v) => ({
          phase: v.phase,
          decision: v.verdict.decision,
          rounds: v.verdict.rounds,
          uncertainVotes: v.verdict.votes.filter((vote) => vote.verdict === 'uncertain').length,
        }));
        return sample;
      }
      // Approving (the demo's way) keeps the task followed: it waits on an approval this client gives, not a person's.
      const pending = view.progress?.pendingApproval;
      let approving = false;
      // A privileged tool call is not the plan or diff the demo approves: that stays a person's decision.
      if (opts.approve && view.status === 'awaiting_approval' && pending && pending.kind !== 'tool') {
        approving = sample.approvals.filter((a) => a.status !== 200).length < 5; // a few refusals (stale hash), then stop
        if (approving && !sample.approvals.some((a) => a.hash === pending.hash && a.status === 200)) {
          const res = await fetch(`${opts.apiUrl}/api/v1/tasks/${encodeURIComponent(sample.id)}/approve`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-api-key': opts.apiKey },
            body: JSON.stringify({ hash: pending.hash, reason: 'bench: approved as the demo does' }),
          });
          const body = (await res.json().catch(() => ({}))) as { detail?: string };
          sample.approvals.push({
            kind: pending.kind,
            hash: pending.hash,
            reasons: pending.reasons,
            status: res.status,
            ...(res.status === 200 ? {} : { error: body.detail ?? JSON.stringify(body) }),
          });
        }
      }
      if (!approving && NEEDS_A_PERSON.has(view.status)) {
        const reasons = view.progress?.pendingApproval?.reasons ?? view.progress?.pendingClarification?.reasons ?? [];
        sample.error = `waiting for a person (${view.status}): ${reasons.join('; ')}`;
        sample.councilSessions = view.progress?.councilSessions ?? [];
        return sample;
      }
    } catch (err) {
      sample.getErrors.push((err as Error).message);
    }
    if (Date.now() > nextStuckCheck && sample.workflowId) {
      nextStuckCheck = Date.now() + STUCK_CHECK_MS;
      const stuck = await failingWorkflowTask(opts.client, sample.workflowId).catch(() => undefined);
      if (stuck) {
        sample.error = stuck;
        return sample;
      }
    }
    if (Date.now() > deadline) {
      sample.error ??= `no final state within the deadline (last status ${sample.status})`;
      return sample;
    }
  }
}

export interface LoadResult {
  samples: TaskSample[];
  firstSubmitAt: number;
  lastSubmitAt: number;
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  // Every POST starts in this synchronous loop, so they are all in flight together; the deadline counts from here.
  const deadline = Date.now() + opts.timeoutMs;
  let answered = 0;
  const posted = (): void => {
    if (++answered === opts.workspaces.length) opts.onAllPosted?.();
  };
  const samples = await Promise.all(opts.workspaces.map((_, i) => followTask({ ...opts, posted }, i, deadline)));
  return {
    samples,
    firstSubmitAt: Math.min(...samples.map((s) => s.submittedAt)),
    lastSubmitAt: Math.max(...samples.map((s) => s.submittedAt)),
  };
}

/** Wall time of each council session a task ran (server start → close), from Temporal. */
export async function councilSessionDurations(client: Client, sessionIds: string[]): Promise<number[]> {
  const out: number[] = [];
  for (const id of sessionIds) {
    const d = await client.workflow.getHandle(id).describe();
    if (d.closeTime) out.push(d.closeTime.getTime() - d.startTime.getTime());
  }
  return out;
}
