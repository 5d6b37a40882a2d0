/**
 * The language-model path end to end: a natural-language task over HTTP, planned, executed and judged by a model that
 * the workers reach through the real `openai` client, here a scripted OpenAI-compatible server on loopback. Real
 * Temporal, PostgreSQL, worker pools and API; each test has its own configuration (task queues), workers and API.
 *
 * The scripted server answers by request content, not by order, because the four judges of a council round call the
 * model in parallel: the planner is the request offering `submit_spec`, the agent the one offering `finish`, a judge
 * the one offering `submit_verdict` (its system prompt names it; its user message names the phase).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import proto from '@temporalio/proto';
import { describe, expect, it } from 'vitest';
import { getArtifact } from '../../common/artifacts.js';
import { listAuditEvents } from '../../common/audit.js';
import type { Config } from '../../common/config.js';
import type { JudgeVerdict } from '../../workflows/council/definitions.js';
import type { CouncilSession } from '../../workflows/council/session.js';
import { executionWorkflowId, toolApprovalDecisionSignal } from '../../workflows/execution/definitions.js';
import { taskWorkflowId, type TaskProgress, type TaskResult } from '../../workflows/task/definitions.js';
import {
  chatRequestOf,
  errorReply,
  startScriptedLlm,
  toolCallReply,
  type RecordedRequest,
  type Responder,
  type ScriptedLlm,
  type ScriptedReply,
  type UsageCounts,
} from '../helpers/scripted-llm.js';
import {
  eventually,
  json,
  sampleRepo,
  startApi,
  startWorkers,
  temporalClient,
  testConfig,
  type RunningApi,
  type RunningWorkers,
} from '../helpers/stack.js';

const run = promisify(execFile);

/** USD per million tokens: input 1, output 2 (LLM_PRICE_PER_MTOK '1,2'). */
const PRICE = { input: 1, output: 2 };
/** Distinct usage per caller, so that the totals show which calls were counted. */
const USAGE = {
  planner: { inputTokens: 1000, outputTokens: 200 },
  agent: { inputTokens: 300, outputTokens: 50 },
  judge: { inputTokens: 100, outputTokens: 20 },
} satisfies Record<string, UsageCounts>;

const JUDGES = ['constitutional', 'integration', 'quality', 'technical'] as const;
type Judge = (typeof JUDGES)[number];
type Phase = 'plan' | 'result';

/** What the planner submits: the sample's fix as a spec without steps, so execution runs as an agent loop. */
const PLANNED_SPEC = {
  id: 'FIX-0042',
  title: 'Fix average() dividing by the wrong count',
  risk_tier: 3,
  mode: 'fix',
  change_budget: { max_files: 2, max_loc: 10 },
  scope: { in: ['src/'], out: ['test/'] },
  invariants: ['sum() keeps its behaviour'],
  acceptance: [
    {
      id: 'A1',
      given: 'a list of numbers',
      when: 'average() is called',
      then: 'it returns the sum divided by the number of values',
    },
  ],
  steps: [],
  gates: [{ name: 'tests', run: ['node', '--test'] }],
};
const BUGGY = 'return sum(values) / (values.length - 1);';
const FIXED = 'return sum(values) / values.length;';
const PASSING_VERDICT = {
  verdict: 'pass',
  score: 0.9,
  reasons: ['the change matches the spec'],
  violations: [],
  evidence: [{ type: 'test', ref: 'gate:tests', summary: 'tests pass' }],
};

type Call = { kind: 'planner' } | { kind: 'agent'; firstTurn: boolean } | { kind: 'judge'; judge: Judge; phase: Phase };

/** Who made a request to the model, read from its content. */
function callOf(request: Pick<RecordedRequest, 'body'>): Call {
  const chat = chatRequestOf(request);
  if (chat.tools.includes('submit_spec')) return { kind: 'planner' };
  if (chat.tools.includes('finish')) return { kind: 'agent', firstTurn: chat.user.includes('No actions yet.') };
  if (chat.tools.includes('submit_verdict')) {
    const judge = /You are the (\w+) judge/.exec(chat.system)?.[1];
    const phase = /"phase": "(plan|result)"/.exec(chat.user)?.[1];
    if (!JUDGES.includes(judge as Judge) || !phase) throw new Error(`unrecognised judge request: ${chat.system}`);
    return { kind: 'judge', judge: judge as Judge, phase: phase as Phase };
  }
  throw new Error(`unrecognised model request offering tools [${chat.tools.join(', ')}]`);
}

function label(call: Call): string {
  return call.kind === 'judge' ? `judge:${call.phase}:${call.judge}` : call.kind;
}

/**
 * A model that does the task right: the planner submits PLANNED_SPEC, the agent fixes average() with `replace` and
 * then calls `finish`, every judge passes. `override` answers first for the calls a test wants to go wrong.
 */
function modelResponder(override?: (call: Call, request: RecordedRequest) => ScriptedReply | undefined): Responder {
  return (request) => {
    const call = callOf(request);
    const special = override?.(call, request);
    if (special) return special;
    switch (call.kind) {
      case 'planner':
        return toolCallReply('submit_spec', PLANNED_SPEC, USAGE.planner);
      case 'agent':
        return call.firstTurn
          ? toolCallReply('replace', { path: 'src/calculator.js', find: BUGGY, replace: FIXED }, USAGE.agent)
          : toolCallReply('finish', { summary: 'average() divides by the number of values' }, USAGE.agent);
      case 'judge':
        return toolCallReply('submit_verdict', PASSING_VERDICT, USAGE.judge);
    }
  };
}

/** The usage the server reported on its successful answers: what the task must have counted. */
function reportedUsage(requests: readonly RecordedRequest[]): { tokens: number; costUsd: number } {
  let tokens = 0;
  let costUsd = 0;
  for (const r of requests) {
    if (r.status !== 200) continue;
    const u = USAGE[callOf(r).kind];
    tokens += u.inputTokens + u.outputTokens;
    costUsd += (u.inputTokens * PRICE.input + u.outputTokens * PRICE.output) / 1e6;
  }
  return { tokens, costUsd };
}

/** The sample repository with its .caws/ removed and committed: the spec has to come from the model. */
async function repoWithoutSpec(): Promise<string> {
  const dir = await sampleRepo();
  const git = (...args: string[]) =>
    run('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.com', ...args], { cwd: dir });
  await git('rm', '-r', '--quiet', '.caws');
  await git('commit', '--quiet', '-m', 'no working spec');
  return dir;
}

interface TaskView {
  id: string;
  status: string;
  temporalStatus: string;
  result?: TaskResult;
  failure?: string;
}

interface Stack {
  config: Config;
  llm: ScriptedLlm;
  workers: RunningWorkers;
  api: RunningApi;
  stop(): Promise<void>;
}

/** The scripted model, then workers and the API configured to call it through the real openai client. */
async function startStack(responder: Responder, overrides: Record<string, string> = {}): Promise<Stack> {
  const llm = await startScriptedLlm(responder);
  const config = testConfig({
    LLM_PROVIDER: 'openai',
    LLM_BASE_URL: llm.url,
    LLM_API_KEY: 'test-key',
    LLM_MODEL: 'scripted-model',
    LLM_PRICE_PER_MTOK: '1,2',
    // Judges call the model: a generous round budget, so that no judge counts as uncertain for being slow.
    COUNCIL_CONSENSUS_TIMEOUT: '20s',
    ...overrides,
  });
  const workers = await startWorkers(config);
  const api = await startApi(config);
  return {
    config,
    llm,
    workers,
    api,
    async stop() {
      await api.stop();
      await workers.stop();
      await llm.close();
    },
  };
}

/** Registers the third-party fixture server as a privileged `ops` tool server of the stack's tenant. */
function registerOpsFixture(stack: Stack, id: string, name: string): Promise<Response> {
  return stack.api.fetch('/api/v1/tools/servers', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      id,
      name,
      transport: 'stdio',
      command: 'node',
      args: [
        '--import',
        import.meta.resolve('tsx'),
        new URL('../fixtures/third-party-mcp-server.ts', import.meta.url).pathname,
      ],
      capabilities: ['ops'],
      security_level: 'privileged',
    }),
  });
}

async function submit(stack: Stack, title: string, description: string): Promise<string> {
  const res = await stack.api.fetch(`/api/v1/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ title, description, workspace: await repoWithoutSpec() }),
  });
  expect(res.status).toBe(202);
  return (await json<{ id: string }>(res)).id;
}

function finalState(stack: Stack, id: string, timeoutMs = 75_000): Promise<TaskView> {
  return eventually(
    async () => {
      const t = await json<TaskView>(await stack.api.fetch(`/api/v1/tasks/${id}`));
      return ['completed', 'failed', 'canceled'].includes(t.status) && t.temporalStatus !== 'RUNNING' ? t : undefined;
    },
    { timeoutMs, what: `task ${id} to end` },
  );
}

const TITLE = 'Fix average() in the calculator';
const DESCRIPTION = 'average() divides by one less than the number of values; make it return the arithmetic mean.';

describe('the language-model path, through the real openai client against a scripted server', () => {
  it('when a task comes in words, then the model plans a spec, an agent loop fixes the code, judges pass it, and usage is counted', async () => {
    const stack = await startStack(modelResponder());
    try {
      const id = await submit(stack, TITLE, DESCRIPTION);
      const done = await finalState(stack, id);
      const result = done.result!;
      expect(done.status, result.reason).toBe('completed');

      // The spec came from the model's submit_spec call.
      const spec = await getArtifact(stack.api.db, 'default', result.specRef!.sha256);
      expect(JSON.parse(spec!.content.toString())).toMatchObject({
        id: 'FIX-0042',
        steps: [],
        scope: { in: ['src/'] },
      });

      // Execution was the agent loop: the model's `replace`, then `finish`; the tests gate passed on the result.
      expect(result.steps).toEqual([expect.objectContaining({ ok: true })]);
      // The tier's required gates ran with the tenant's registered commands, each passing on its report.
      expect(result.gates.map((g) => [g.name, g.passed, g.exitCode])).toEqual([
        ['tests', true, 0],
        ['coverage', true, 0],
        ['mutation', true, 0],
      ]);
      expect(result.filesChanged).toEqual(['src/calculator.js']);
      const diff = (await getArtifact(stack.api.db, 'default', result.diffRef!.sha256))!.content.toString();
      expect(diff).toContain(`-  ${BUGGY}`);
      expect(diff).toContain(`+  ${FIXED}`);

      // The judges' model verdicts were merged into their votes: every plan vote carries the model's score of 0.9.
      expect(result.verdicts.map((v) => [v.phase, v.verdict.decision])).toEqual([
        ['plan', 'accept'],
        ['result', 'accept'],
      ]);
      const planVotes = result.verdicts[0]!.verdict.votes;
      expect(planVotes.map((v) => [v.judge_id, v.verdict, v.score])).toEqual([
        ['constitutional', 'pass', 0.9],
        ['technical', 'pass', 0.9],
        ['quality', 'pass', 0.9],
        ['integration', 'pass', 0.9],
      ]);

      // What the server saw, in order: the planner, the four plan judges (in any order), two agent turns, the four
      // result judges; all with the configured key and model, none of them retried.
      const requests = stack.llm.requests;
      const labels = requests.map((r) => label(callOf(r)));
      expect(labels).toHaveLength(11);
      expect(labels[0]).toBe('planner');
      expect(labels.slice(1, 5).sort()).toEqual(JUDGES.map((j) => `judge:plan:${j}`));
      expect(labels.slice(5, 7)).toEqual(['agent', 'agent']);
      expect(labels.slice(7).sort()).toEqual(JUDGES.map((j) => `judge:result:${j}`));
      for (const r of requests) {
        expect(r.path).toBe('/v1/chat/completions');
        expect(r.headers.authorization).toBe('Bearer test-key');
        expect(r.status).toBe(200);
        expect(chatRequestOf(r).model).toBe('scripted-model');
      }
      // The planner saw the task and the repository's files (no .caws: the spec was not in the workspace).
      const planner = chatRequestOf(requests[0]!);
      expect(planner.user).toContain(TITLE);
      expect(planner.user).toContain(DESCRIPTION);
      expect(planner.user).toContain('src/calculator.js');
      expect(planner.user).not.toContain('.caws');
      // The second agent turn saw the first one's outcome; the result judges saw the diff.
      expect(chatRequestOf(requests[6]!).user).toMatch(/PREVIOUS ACTIONS:\nok \{"kind":"replace"/);
      for (const r of requests.slice(7)) expect(chatRequestOf(r).user).toContain(FIXED);

      // Tokens and cost: every answer's reported usage at LLM_PRICE_PER_MTOK, and nothing else.
      const expected = reportedUsage(requests);
      expect(expected.tokens).toBe(1200 + 2 * 350 + 8 * 120);
      expect(result.usage.tokens).toBe(expected.tokens);
      expect(result.usage.costUsd).toBeCloseTo(expected.costUsd, 9);
      expect(result.usage.costUsd).toBeCloseTo(0.0014 + 2 * 0.0004 + 8 * 0.00014, 9);
      expect(result.usage.steps).toBe(1);
    } finally {
      await stack.stop();
    }
  });

  it('when the planner call is rate limited with retry-after, then Temporal retries it after the wait and the task completes', async () => {
    let plannerCalls = 0;
    const stack = await startStack(
      modelResponder((call) => {
        if (call.kind !== 'planner') return undefined;
        plannerCalls++;
        // Attempt 1 asks for 1 s. Attempt 2 asks for 3 s: more than the retry policy's own backoff for attempt 3
        // (2 s), so a gap of ≥ 3 s shows that the server's wait, not the default backoff, set the delay.
        if (plannerCalls === 1) return errorReply(429, { 'retry-after': '1' }, 'Rate limit reached for requests');
        if (plannerCalls === 2) return errorReply(429, { 'retry-after': '3' }, 'Rate limit reached for requests');
        return undefined;
      }),
    );
    try {
      const id = await submit(stack, TITLE, DESCRIPTION);
      const done = await finalState(stack, id);
      expect(done.status, done.result?.reason).toBe('completed');
      expect(done.result?.filesChanged).toEqual(['src/calculator.js']);

      const planner = stack.llm.requests.filter((r) => callOf(r).kind === 'planner');
      expect(planner.map((r) => r.status)).toEqual([429, 429, 200]);
      const [first, second, third] = planner.map((r) => r.receivedAt) as [number, number, number];
      expect(second - first).toBeGreaterThanOrEqual(900);
      expect(second - first).toBeLessThan(2_500);
      expect(third - second).toBeGreaterThanOrEqual(2_900);
      expect(third - second).toBeLessThan(5_000);

      // The retries were Temporal's (the SDK's own are off): planTask's recorded start is its third attempt.
      const client = await temporalClient(stack.config);
      try {
        const history = await client.workflow.getHandle(taskWorkflowId(id)).fetchHistory();
        const { EventType } = proto.temporal.api.enums.v1;
        const events = history.events ?? [];
        const scheduled = events.find(
          (e) =>
            e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
            e.activityTaskScheduledEventAttributes?.activityType?.name === 'planTask',
        );
        const started = events.find(
          (e) =>
            e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED &&
            String(e.activityTaskStartedEventAttributes?.scheduledEventId) === String(scheduled?.eventId),
        );
        expect(started?.activityTaskStartedEventAttributes?.attempt).toBe(3);
      } finally {
        await client.connection.close();
      }

      // Only the successful answer's tokens were counted for planning (the 429s reported none).
      expect(done.result?.usage.tokens).toBe(reportedUsage(stack.llm.requests).tokens);
    } finally {
      await stack.stop();
    }
  });

  it('when the model API rejects the key (401), then the call is not retried and the task fails naming the authentication failure', async () => {
    const stack = await startStack(
      modelResponder((call) =>
        call.kind === 'planner'
          ? errorReply(401, {}, 'Incorrect API key provided: test-key. You can find your API key in your account.')
          : undefined,
      ),
    );
    try {
      const id = await submit(stack, TITLE, DESCRIPTION);
      const done = await finalState(stack, id);
      expect(done.status).toBe('failed');
      expect(done.temporalStatus).toBe('COMPLETED');
      expect(done.result?.reason).toMatch(/401/);
      expect(done.result?.reason).toMatch(/authentication failed/i);
      expect(done.result?.reason).toContain('Incorrect API key provided');

      // Exactly one request: neither the SDK nor Temporal retried it, and nothing ran after planning failed.
      expect(stack.llm.requests.map((r) => [label(callOf(r)), r.status])).toEqual([['planner', 401]]);
      expect(done.result?.verdicts).toEqual([]);
      expect(done.result?.steps).toEqual([]);

      const events = await listAuditEvents(stack.api.db, { tenantId: 'default', workflowId: taskWorkflowId(id) });
      expect(events.map((e) => e.action)).toContain('task.failed');
    } finally {
      await stack.stop();
    }
  });

  it('when judges answer exactly as the submit_verdict tool schema asks, then their verdicts count as given', async () => {
    // The tool's schema requires only verdict, score, reasons and violations, and a violation only rule_id, severity
    // and waivable: a model that follows it to the letter leaves out `evidence` and a violation's `message`.
    const minimal = {
      verdict: 'pass',
      score: 0.85,
      reasons: ['fine'],
      violations: [{ rule_id: 'style.naming', severity: 'low', waivable: true }],
    };
    const stack = await startStack(
      modelResponder((call) =>
        call.kind === 'judge' ? toolCallReply('submit_verdict', minimal, USAGE.judge) : undefined,
      ),
    );
    try {
      const id = await submit(stack, TITLE, DESCRIPTION);
      const done = await finalState(stack, id);
      const result = done.result!;
      expect(done.status, result.reason).toBe('completed');
      // Each vote is the model's (score 0.85 is below every rule score here), not the `uncertain` of a malformed answer.
      const planVotes = result.verdicts[0]!.verdict.votes;
      expect(planVotes.map((v) => [v.judge_id, v.verdict, v.score])).toEqual([
        ['constitutional', 'pass', 0.85],
        ['technical', 'pass', 0.85],
        ['quality', 'pass', 0.85],
        ['integration', 'pass', 0.85],
      ]);
      // The model's violation is kept, with a message that names it.
      const res = await stack.api.fetch(
        `/api/v1/council/sessions/${encodeURIComponent(result.verdicts[0]!.sessionId)}`,
      );
      const { session } = await json<{ session: CouncilSession | null }>(res);
      const technical = session?.rounds[0]?.find((v) => v.judge_id === 'technical');
      expect(technical?.violations.find((v) => v.rule_id === 'style.naming')).toEqual({
        rule_id: 'style.naming',
        severity: 'low',
        waivable: true,
        message: 'reported by the model as style.naming',
      });
      expect(technical?.reasons).toContain('model: fine');
    } finally {
      await stack.stop();
    }
  });

  it('when a judge answers with malformed verdict JSON, then its vote is uncertain and consensus decides on it', async () => {
    const stack = await startStack(
      modelResponder((call) => {
        if (call.kind !== 'judge') return undefined;
        // Plan phase: the technical judge's tool arguments are not JSON at all.
        if (call.phase === 'plan' && call.judge === 'technical')
          return toolCallReply('submit_verdict', '{"verdict": "pass", "score": 0.9, "reasons": [', USAGE.judge);
        // Result phase: the constitutional judge answers JSON that does not match the verdict schema.
        if (call.phase === 'result' && call.judge === 'constitutional')
          return toolCallReply('submit_verdict', { verdict: 'approve', score: 'high' }, USAGE.judge);
        return undefined;
      }),
    );
    try {
      const id = await submit(stack, TITLE, DESCRIPTION);
      const done = await finalState(stack, id);
      const result = done.result!;

      // Plan: technical is uncertain (score capped at 0.5, credited at half) and the rest pass at 0.9, so the weighted
      // score is 0.4·0.9 + 0.2·0.25 + 0.2·0.9 + 0.2·0.9 = 0.77 ≥ 0.6 (tier 3) with no `fail`: accepted. Technical holds
      // no veto, so one uncertain judge does not stop the plan.
      const [plan, verdictOnResult] = result.verdicts;
      expect(plan?.phase).toBe('plan');
      expect(plan?.verdict.decision).toBe('accept');
      expect(plan?.verdict.score).toBeCloseTo(0.77, 6);
      expect(plan?.verdict.votes.map((v) => [v.judge_id, v.verdict])).toEqual([
        ['constitutional', 'pass'],
        ['technical', 'uncertain'],
        ['quality', 'pass'],
        ['integration', 'pass'],
      ]);

      // Result: the constitutional judge holds the veto, and an uncertain veto judge fails closed: the council rejects
      // the result whatever the others say, and the task fails after execution (the fix itself was fine).
      expect(verdictOnResult?.phase).toBe('result');
      expect(verdictOnResult?.verdict.decision).toBe('reject');
      expect(verdictOnResult?.verdict.votes.find((v) => v.judge_id === 'constitutional')?.verdict).toBe('uncertain');
      expect(verdictOnResult?.verdict.remediation).toContain(
        'vetoed: constitutional judge was uncertain (fails closed)',
      );
      expect(done.status).toBe('failed');
      expect(result.reason).toContain('the council rejected the result');
      expect(result.reason).toContain('vetoed: constitutional judge was uncertain (fails closed)');
      // The tier's required gates, with the tenant's registered commands.
      expect(result.gates.map((g) => [g.name, g.passed])).toEqual([
        ['tests', true],
        ['coverage', true],
        ['mutation', true],
      ]);

      // The recorded sessions, read through the API, hold the uncertain votes with the reason.
      const session = async (sessionId: string) => {
        const res = await stack.api.fetch(`/api/v1/council/sessions/${encodeURIComponent(sessionId)}`);
        expect(res.status).toBe(200);
        return (await json<{ session: CouncilSession | null }>(res)).session;
      };
      const malformed = 'the model returned a verdict that does not match the schema; counted as uncertain';
      const planRound = (await session(plan!.sessionId))?.rounds[0] ?? [];
      const technical = planRound.find((v: JudgeVerdict) => v.judge_id === 'technical');
      expect(technical).toMatchObject({ verdict: 'uncertain', score: 0.5 });
      expect(technical?.reasons).toContain(malformed);
      expect(planRound.filter((v: JudgeVerdict) => v.verdict === 'pass').map((v) => v.judge_id)).toEqual([
        'constitutional',
        'quality',
        'integration',
      ]);
      const resultRound = (await session(verdictOnResult!.sessionId))?.rounds[0] ?? [];
      const constitutional = resultRound.find((v: JudgeVerdict) => v.judge_id === 'constitutional');
      expect(constitutional?.verdict).toBe('uncertain');
      expect(constitutional?.reasons).toContain(malformed);

      // The malformed answers still cost tokens, and were counted.
      expect(stack.llm.requests).toHaveLength(11);
      expect(result.usage.tokens).toBe(reportedUsage(stack.llm.requests).tokens);
    } finally {
      await stack.stop();
    }
  });

  it('when an agent turn calls a privileged registered tool, then the task waits for a person bound to that call, runs it once approved, and the model saw the tool listed', async () => {
    let server = '';
    const stack = await startStack(
      modelResponder((call, request) => {
        if (call.kind !== 'agent') return undefined;
        const user = chatRequestOf(request).user;
        if (call.firstTurn) {
          return toolCallReply('call_tool', { tool: 'deploy', server, arguments: { target: 'staging' } }, USAGE.agent);
        }
        if (!user.includes('deployed to staging')) return undefined;
        return user.includes('apply_patch')
          ? toolCallReply('finish', { summary: 'deployed and fixed' }, USAGE.agent)
          : toolCallReply('replace', { path: 'src/calculator.js', find: BUGGY, replace: FIXED }, USAGE.agent);
      }),
    );
    try {
      expect((await registerOpsFixture(stack, 'ops-fixture', 'ops fixture')).status).toBe(201);
      server = 'ops-fixture';
      const id = await submit(stack, TITLE, DESCRIPTION);
      const waiting = await eventually(
        async () => {
          const t = await json<{ status: string; progress?: TaskProgress }>(
            await stack.api.fetch(`/api/v1/tasks/${id}`),
          );
          return t.progress?.pendingApproval?.kind === 'tool' ? t : undefined;
        },
        { timeoutMs: 75_000, what: 'the tool approval' },
      );
      expect(waiting.status).toBe('awaiting_approval');
      const pending = waiting.progress!.pendingApproval!;
      expect(pending.toolCalls).toEqual([expect.objectContaining({ serverId: 'ops-fixture', tool: 'deploy' })]);
      expect(pending.reasons.join(' ')).toContain('privileged tool call during execution: ops-fixture/deploy');
      // The model was shown the tool, marked as needing approval.
      const agentPrompt = stack.llm.requests.map((r) => chatRequestOf(r)).find((c) => c.tools.includes('call_tool'))!;
      expect(agentPrompt.user).toMatch(/ops-fixture\/deploy \[ops\.deploy\] privileged, needs approval/);

      const stale = await stack.api.fetch(`/api/v1/tasks/${id}/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ hash: 'f'.repeat(64) }),
      });
      expect(stale.status).toBe(409);
      // A tool approval sent straight to the execution child, unsigned, in any name: refused and recorded there.
      const child = stack.api.temporal.workflow.getHandle(executionWorkflowId(taskWorkflowId(id), 1));
      await child.signal(toolApprovalDecisionSignal, {
        key: pending.toolCalls![0]!.key,
        approved: true,
        by: 'user:ceo-of-everything',
      });
      const refusedInChild = await eventually(
        async () =>
          (await listAuditEvents(stack.workers.db, { tenantId: 'default', workflowId: taskWorkflowId(id) })).find(
            (e) =>
              e.action === 'approval.refused' &&
              String((e.payload as { note?: unknown }).note).startsWith('refused tool decision'),
          ),
        { what: "the child's refusal" },
      );
      expect(refusedInChild.actor).toBe('system');
      expect(refusedInChild.payload).toMatchObject({
        approver: 'unverified',
        claimedApprover: 'user:ceo-of-everything',
        note: expect.stringMatching(/^refused tool decision: unsigned/) as unknown,
      });
      const stillWaiting = await json<{ progress?: TaskProgress }>(await stack.api.fetch(`/api/v1/tasks/${id}`));
      expect(stillWaiting.progress?.pendingApproval?.hash).toBe(pending.hash);
      const ok = await stack.api.fetch(`/api/v1/tasks/${id}/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ hash: pending.hash }),
      });
      expect(ok.status).toBe(200);
      const done = await finalState(stack, id);
      expect(done.status, done.result?.reason).toBe('completed');
      expect(done.result!.steps.map((s) => s.detail)).toEqual([
        expect.stringContaining('ops-fixture/deploy: deployed to staging'),
        expect.stringContaining('workspace/apply_patch'),
      ]);
    } finally {
      await stack.stop();
    }
  });
  it('when a privileged call approved in an agent turn is made again after continue-as-new, then the approval carries over and no person is asked twice', async () => {
    const deployed = (user: string) => user.split('deployed to staging').length - 1;
    const stack = await startStack(
      modelResponder((call, request) => {
        if (call.kind !== 'agent') return undefined;
        const user = chatRequestOf(request).user;
        const deploy = toolCallReply(
          'call_tool',
          { tool: 'deploy', server: 'ops-fixture-again', arguments: { target: 'staging' } },
          USAGE.agent,
        );
        if (call.firstTurn || deployed(user) === 1) return deploy;
        if (deployed(user) !== 2) return undefined;
        return user.includes('apply_patch')
          ? toolCallReply('finish', { summary: 'deployed twice and fixed' }, USAGE.agent)
          : toolCallReply('replace', { path: 'src/calculator.js', find: BUGGY, replace: FIXED }, USAGE.agent);
      }),
      // Every tool call ends an execution run: the second deploy runs in a continued run.
      { EXECUTION_CONTINUE_AS_NEW_AFTER: '1' },
    );
    try {
      expect((await registerOpsFixture(stack, 'ops-fixture-again', 'ops fixture again')).status).toBe(201);
      const id = await submit(stack, TITLE, DESCRIPTION);
      const pending = await eventually(
        async () => {
          const t = await json<{ progress?: TaskProgress }>(await stack.api.fetch(`/api/v1/tasks/${id}`));
          return t.progress?.pendingApproval?.kind === 'tool' ? t.progress.pendingApproval : undefined;
        },
        { timeoutMs: 75_000, what: 'the tool approval' },
      );
      const ok = await stack.api.fetch(`/api/v1/tasks/${id}/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ hash: pending.hash }),
      });
      expect(ok.status).toBe(200);
      const done = await finalState(stack, id);
      expect(done.status, done.result?.reason).toBe('completed');
      expect(done.result!.steps.map((s) => s.detail)).toEqual([
        expect.stringContaining('ops-fixture-again/deploy: deployed to staging'),
        expect.stringContaining('ops-fixture-again/deploy: deployed to staging'),
        expect.stringContaining('workspace/apply_patch'),
      ]);
      // One request for a person, although the call was made in two execution runs.
      const history = await stack.api.temporal.workflow.getHandle(taskWorkflowId(id)).fetchHistory();
      const requests = (history.events ?? []).filter(
        (e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'toolApprovalRequest',
      );
      expect(requests).toHaveLength(1);
    } finally {
      await stack.stop();
    }
  });
});
