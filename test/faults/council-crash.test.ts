/**
 * A crash must not change a decision: the council worker process is SIGKILLed while the four judges are voting on a
 * plan the council accepts without the crash. Real Temporal and PostgreSQL; orchestration, planning and execution run
 * in this process, the council pool in a child process (workers/main.ts, WORKER_QUEUES=council) whose judges ask a
 * scripted OpenAI-compatible model that takes JUDGE_DELAY_MS to answer, so that the kill lands mid-vote.
 *
 * - A fresh council worker comes up within the round's budget: the lost votes are handed to it and the plan is
 *   accepted, as without the crash.
 * - No council worker comes up within the budget: the votes are lost to infrastructure and the council escalates to
 *   a person (naming it), never rejects; a person approves and the task completes once a council worker is back.
 */
import type { ChildProcess } from 'node:child_process';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../common/config.js';
import type { councilDeliberationWorkflow } from '../../workflows/council/council-deliberation.workflow.js';
import { councilSessionId, sessionQuery } from '../../workflows/council/session.js';
import { approveSignal, progressQuery, type AgentTaskInput } from '../../workflows/task/definitions.js';
import type { WorkingSpec } from '../../workflows/task/spec.js';
import { chatRequestOf, startScriptedLlm, toolCallReply, type ScriptedLlm } from '../helpers/scripted-llm.js';
import {
  eventually,
  killHard,
  runningActivities,
  sampleRepo,
  spawnWorkerProcess,
  startWorkers,
  temporalClient,
  testEnv,
  type RunningWorkers,
} from '../helpers/stack.js';
import { directTaskInput, signedApproval, startTaskWorkflow } from '../helpers/tasks.js';

const { TimeoutType } = proto.temporal.api.enums.v1;
const JUDGE_DELAY_MS = 3_000;
const HANDOVER_MS = 1_000;
const PASSING_VERDICT = { verdict: 'pass', score: 0.9, reasons: ['the change matches the spec'], violations: [] };

const SPEC: WorkingSpec = {
  id: 'FIX-12',
  title: 'Fix average() while the council worker crashes',
  risk_tier: 3,
  mode: 'fix',
  scope: { in: ['src/'], out: ['test/'] },
  acceptance: [{ id: 'A1', given: 'numbers', when: 'average() is called', then: 'sum / count' }],
  invariants: [],
  steps: [
    {
      kind: 'replace',
      path: 'src/calculator.js',
      find: 'return sum(values) / (values.length - 1);',
      replace: 'return sum(values) / values.length;',
    },
  ],
  gates: [{ name: 'tests', run: ['node', '--test'], covers: ['A1'] }],
};

describe('the council worker killed while the judges vote', () => {
  const children: ChildProcess[] = [];
  let llm: ScriptedLlm;
  let env: Record<string, string>;
  let config: Config;
  let workers: RunningWorkers;
  let client: Client;

  beforeAll(async () => {
    // Every judge passes, JUDGE_DELAY_MS after it asked; nothing else may call the model (the task carries its spec).
    llm = await startScriptedLlm((request) => {
      if (!chatRequestOf(request).tools.includes('submit_verdict')) return undefined;
      return { ...toolCallReply('submit_verdict', PASSING_VERDICT), delayMs: JUDGE_DELAY_MS };
    });
    env = testEnv();
    config = loadConfig(env);
    workers = await startWorkers(config, ['orchestration', 'planning', 'execution']);
    client = await temporalClient(config);
  });
  // Each test's council workers go with it: the next test must decide which council workers exist.
  afterEach(async () => {
    await Promise.all(children.splice(0).map(killHard));
  });
  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
    await llm?.close();
  });

  /** A council-only worker process whose judges call the scripted model. */
  function councilWorker(): ChildProcess {
    const child = spawnWorkerProcess({
      ...env,
      WORKER_QUEUES: 'council',
      LLM_PROVIDER: 'openai',
      LLM_BASE_URL: llm.url,
      LLM_API_KEY: 'test-key',
      LLM_MODEL: 'scripted-model',
    });
    children.push(child);
    return child;
  }

  function taskInput(id: string, workspace: string, consensusTimeoutMs: number): AgentTaskInput {
    return {
      ...directTaskInput(id, workspace, 'Survive a council crash', SPEC),
      // The judges' model calls count against the task's token budget (at no cost).
      budgets: { max_steps: 100, max_tokens: 1_000_000, max_cost_usd: 0 },
      settings: { consensusTimeoutMs, judgeHandoverMs: HANDOVER_MS },
    };
  }

  /** Waits until all four plan judges run on the council worker and have asked the model, then kills the worker. */
  async function killWhileVoting(worker: ChildProcess, sessionId: string): Promise<void> {
    await eventually(
      async () =>
        (await runningActivities(client, sessionId)).filter((a) => a === 'runJudge').length === 4 &&
        llm.requests.filter((r) => chatRequestOf(r).tools.includes('submit_verdict')).length >= 4,
      { timeoutMs: 60_000, what: 'the four judges to be voting' },
    );
    await killHard(worker);
  }

  /** The session's activity attempts that timed out, by timeout type (TIMEOUT_TYPE_HEARTBEAT, …). */
  async function judgeTimeouts(sessionId: string): Promise<string[]> {
    const history = await client.workflow.getHandle(sessionId).fetchHistory();
    return (history.events ?? []).flatMap((e) => {
      const type = e.activityTaskTimedOutEventAttributes?.failure?.timeoutFailureInfo?.timeoutType;
      return type === undefined || type === null ? [] : [TimeoutType[type]];
    });
  }

  it('when a fresh council worker starts, then the lost votes are handed over and the plan is accepted', async () => {
    const first = councilWorker();
    const input = taskInput(`council-crash-${Date.now()}`, await sampleRepo(), 60_000);
    const handle = await startTaskWorkflow(client, config, input);
    const planSession = councilSessionId(handle.workflowId, 'plan', 1);
    await killWhileVoting(first, planSession);
    councilWorker();

    const result = await handle.result();
    expect(result.status, result.reason).toBe('completed');
    expect(result.verdicts.map((v) => [v.phase, v.verdict.decision])).toEqual([
      ['plan', 'accept'],
      ['result', 'accept'],
    ]);
    // Every plan vote is a judge's answer (the model's 0.9), none a stand-in for a lost vote.
    expect(result.verdicts[0]!.verdict.votes.map((v) => [v.judge_id, v.verdict, v.score])).toEqual([
      ['constitutional', 'pass', 0.9],
      ['technical', 'pass', 0.9],
      ['quality', 'pass', 0.9],
      ['integration', 'pass', 0.9],
    ]);
    // The crash really took the votes: each was lost on a heartbeat timeout and asked again.
    const timeouts = await judgeTimeouts(planSession);
    expect(timeouts.filter((t) => t === 'TIMEOUT_TYPE_HEARTBEAT').length).toBeGreaterThanOrEqual(4);
  }, 180_000);

  it('when no council worker comes back within the round, then the council escalates naming infrastructure, never rejects', async () => {
    const first = councilWorker();
    const input = taskInput(`council-lost-${Date.now()}`, await sampleRepo(), 6_000);
    const handle = await startTaskWorkflow(client, config, input);
    const planSession = councilSessionId(handle.workflowId, 'plan', 1);
    await killWhileVoting(first, planSession);

    // The round's budget and the grace pass with no council worker: the council decides (it wants to record an
    // escalation) before any worker is back.
    await eventually(
      async () => {
        const pending = (await client.workflow.getHandle(planSession).describe()).raw.pendingActivities ?? [];
        return pending.some((a) => a.activityType?.name === 'recordEscalation');
      },
      { timeoutMs: 60_000, what: 'the council to decide without its workers' },
    );
    councilWorker();

    const outcome = await client.workflow.getHandle<typeof councilDeliberationWorkflow>(planSession).result();
    expect(outcome).toMatchObject({ kind: 'escalate', cause: 'infrastructure' });
    if (outcome.kind !== 'escalate') return;
    expect(outcome.reason).toMatch(/no worker answered for the constitutional judge within .*6000 ms/);
    expect(outcome.reason).toMatch(/escalated, not rejected/);
    expect(outcome.votes.map((v) => [v.judge_id, v.unavailable])).toEqual([
      ['constitutional', 'infrastructure'],
      ['technical', 'infrastructure'],
      ['quality', 'infrastructure'],
      ['integration', 'infrastructure'],
    ]);
    expect((await client.workflow.getHandle(planSession).query(sessionQuery)).status).toBe('escalated');
    expect(await judgeTimeouts(planSession)).toContain('TIMEOUT_TYPE_HEARTBEAT');

    // A person is asked, with the reason; once approved, the task runs and the council (back) accepts the result.
    const progress = await eventually(
      async () => {
        const p = await handle.query(progressQuery);
        return p.pendingApproval ? p : undefined;
      },
      { what: 'the plan approval to be asked' },
    );
    expect(progress.pendingApproval!.reasons.join('; ')).toMatch(
      /council could not decide: votes lost to infrastructure/,
    );
    await handle.signal(approveSignal, await signedApproval(config, handle.workflowId, progress.pendingApproval!.hash));
    const result = await handle.result();
    expect(result.status, result.reason).toBe('completed');
    expect(result.verdicts.map((v) => [v.phase, v.verdict.decision])).toEqual([['result', 'accept']]);
  }, 180_000);
});
