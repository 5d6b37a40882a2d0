/** HTTP helpers for task tests: submit, read, wait for a state, and small working-spec builders. */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { approvalSignerFor, signDecision } from '../../common/approval-keys.js';
import type { SignedDecision } from '../../workflows/task/decision-proof.js';
import type { Config } from '../../common/config.js';
import type { VerdictCheck } from '../../common/verdict-check.js';
import { queueFor } from '../../temporal/task-queues.js';
import { agentTaskWorkflow } from '../../workflows/index.js';
import {
  taskWorkflowId,
  type AgentTaskInput,
  type TaskProgress,
  type TaskResult,
} from '../../workflows/task/definitions.js';
import type { WorkingSpec } from '../../workflows/task/spec.js';
import { eventually, json } from './stack.js';

export interface TaskView {
  id: string;
  workflowId: string;
  status: string;
  temporalStatus: string;
  progress?: TaskProgress;
  result?: TaskResult;
  verdictChecks?: VerdictCheck[];
  failure?: string;
}

export function taskClient(api: () => { fetch(path: string, init?: RequestInit): Promise<Response> }) {
  const request = (method: string, url: string, body?: unknown): Promise<Response> =>
    api().fetch(url, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const post = (url: string, body: unknown = {}): Promise<Response> => request('POST', url, body);
  const get = (url: string): Promise<Response> => request('GET', url);
  const task = async (id: string): Promise<TaskView> => json<TaskView>(await get(`/api/v1/tasks/${id}`));

  return {
    post,
    get,
    task,
    async submit(body: Record<string, unknown>): Promise<string> {
      const res = await post('/api/v1/tasks', body);
      const payload = await json<{ id: string }>(res);
      if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${JSON.stringify(payload)}`);
      return payload.id;
    },
    /** Waits until the task is in `status` (as the workflow reports it). */
    waitFor(id: string, status: string, timeoutMs = 60_000): Promise<TaskView> {
      return eventually(
        async () => {
          const t = await task(id);
          return t.status === status ? t : undefined;
        },
        { timeoutMs, what: `task ${id} to be ${status}` },
      );
    },
    /** Waits until the workflow has closed and returns its final view. */
    finished(id: string, timeoutMs = 90_000): Promise<TaskView> {
      return eventually(
        async () => {
          const t = await task(id);
          return t.temporalStatus !== 'RUNNING' ? t : undefined;
        },
        { timeoutMs, what: `task ${id} to end` },
      );
    },
  };
}

/** A valid tier-3 spec for samples/calculator; override any field. */
export function calculatorSpec(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'FIX-0100',
    title: 'Fix average() in the calculator sample',
    risk_tier: 3,
    mode: 'fix',
    scope: { in: ['src/'], out: ['test/'] },
    acceptance: [{ id: 'A1', given: 'numbers', when: 'average() is called', then: 'sum / count' }],
    steps: [
      {
        kind: 'replace',
        path: 'src/calculator.js',
        find: 'return sum(values) / (values.length - 1);',
        replace: 'return sum(values) / values.length;',
      },
    ],
    gates: [{ name: 'tests', run: ['node', '--test'], covers: ['A1'] }],
    ...overrides,
  };
}

/**
 * A tier-3 fix of samples/calculator whose first step is slow: a command that appends to slow.txt after `slowMs`, long
 * enough for a test to break something while it runs; then the fix.
 */
export function slowStepSpec(id: string, title: string, slowMs: number): WorkingSpec {
  return {
    id,
    title,
    risk_tier: 3,
    mode: 'fix',
    scope: { in: ['src/', 'slow.txt'], out: [] },
    acceptance: [],
    invariants: [],
    steps: [
      {
        kind: 'command',
        run: ['node', '-e', `setTimeout(() => require('fs').appendFileSync('slow.txt', 's\\n'), ${slowMs})`],
      },
      { kind: 'replace', path: 'src/calculator.js', find: '(values.length - 1)', replace: 'values.length' },
    ],
    gates: [{ name: 'tests', run: ['node', '--test'] }],
  };
}

/** A workflow input as the API would build it, for tests that start agentTask directly through the Temporal client. */
export function directTaskInput(id: string, workspace: string, title: string, spec?: WorkingSpec): AgentTaskInput {
  return {
    id,
    tenantId: 'default',
    correlationId: `corr-${id}`,
    submittedBy: 'user:test',
    title,
    description: '',
    workspace,
    mode: 'auto',
    budgets: { max_steps: 100, max_tokens: 0, max_cost_usd: 0 },
    spec,
  };
}

/** Starts agentTask on the config's orchestration queue, as the API does. */
export function startTaskWorkflow(client: Client, config: Config, input: AgentTaskInput) {
  return client.workflow.start(agentTaskWorkflow, {
    args: [input],
    workflowId: taskWorkflowId(input.id),
    taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
    memo: { tenantId: input.tenantId },
  });
}

/**
 * A decision signed as the API signs it (common/approval-keys.ts: the development key under SIGNING_KEY_DIR, which the
 * workers trust too), for tests that signal agentTask through the Temporal client.
 */
export async function signedApproval(
  config: Config,
  workflowId: string,
  hash: string,
  {
    decision = 'approve',
    approver = 'user:test',
    tenant = 'default',
    ttlMs = 10 * 60_000,
  }: { decision?: 'approve' | 'reject'; approver?: string; tenant?: string; ttlMs?: number } = {},
): Promise<SignedDecision> {
  const signer = await approvalSignerFor(config);
  if (!signer) throw new Error('no approval signing key (set APPROVAL_SIGNING_KEY or leave NODE_ENV unset)');
  const now = Date.now();
  return signDecision(signer, {
    v: 1,
    task: workflowId,
    tenant,
    hash,
    approver,
    roles: ['approver'],
    decision,
    at: new Date(now).toISOString(),
    expires: new Date(now + ttlMs).toISOString(),
    nonce: randomUUID(),
  });
}
