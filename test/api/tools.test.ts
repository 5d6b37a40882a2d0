/**
 * The MCP tool layer on the real stack: the registry API, discovery of the built-in workspace server and of a
 * third-party stdio server the test starts, an unhealthy server, list_changed, capability matching (and no match),
 * schema-failing arguments, a timeout, a tool error the agent sees, privileged approval bound to the arguments,
 * conflicts (edit overlap merged or escalated; two tools that disagree), and a retried edit applied once.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createExecutionActivities } from '../../activities/execution/index.js';
import type { Config } from '../../common/config.js';
import { createDb } from '../../common/db.js';
import { registry } from '../../common/metrics.js';
import type { StepOutcome } from '../../workflows/task/definitions.js';
import { PROJECT_ROOT } from '../../common/config.js';
import { json, sampleRepo, useStack, type RunningApi } from '../helpers/stack.js';
import { calculatorSpec, taskClient } from '../helpers/tasks.js';

const FIXTURE = path.join(PROJECT_ROOT, 'test', 'fixtures', 'third-party-mcp-server.ts');
/** tsx by absolute URL: a tenant's stdio server runs in the task's workspace, where `--import tsx` would not resolve. */
const TSX = import.meta.resolve('tsx');
/**
 * The sample's fix, after the steps under test: these tests are about the tool calls, and the gates the tier requires
 * (the sample's registered tests, coverage and mutation commands) run on the calculator those steps leave, so it must
 * be the fixed one for a task to pass them.
 */
const FIX_STEP = calculatorSpec().steps as unknown[];

interface ServerView {
  id: string;
  health: string;
  health_error: string | null;
  enabled: boolean;
  tools: { name: string; capabilities: string[]; security_level: string; input_schema: Record<string, unknown> }[];
}

describe('tools', () => {
  let config: Config;
  let api: RunningApi;
  const client = taskClient(() => api);

  const register = async (overrides: Record<string, unknown> = {}) => {
    const res = await client.post('/api/v1/tools/servers', {
      id: `fixture-${randomUUID().slice(0, 8)}`,
      name: `fixture ${randomUUID()}`,
      transport: 'stdio',
      command: 'node',
      args: ['--import', TSX, FIXTURE],
      capabilities: ['fixture'],
      security_level: 'standard',
      priority: 200,
      ...overrides,
    });
    const body = await json<ServerView>(res);
    expect(res.status, JSON.stringify(body)).toBe(201);
    return body;
  };

  /** Runs a task (auto mode) with the given steps then the sample's fix, and returns its final view. */
  const runSteps = async (steps: unknown[], extra: Record<string, unknown> = {}) => {
    const id = await client.submit({
      title: 'Tool steps',
      workspace: await sampleRepo(),
      spec: calculatorSpec({ steps: [...steps, ...FIX_STEP], ...extra }),
    });
    return { id, done: await client.finished(id, 120_000) };
  };

  // A tenant of its own: the servers registered here (and what their discovery depends on, such as a secret in this
  // process's environment) stay out of the way of other test files' workers, which discover what their tenant sees.
  useStack((stack) => ({ config, api } = stack), {
    env: { EXECUTION_COMMAND_TIMEOUT: '30s', BOOTSTRAP_TENANT: 'tools-test' },
    pools: ['orchestration', 'planning', 'council', 'execution'],
  });

  it('when the built-in workspace server is refreshed, then its eight tools are discovered with schemas, capabilities and the operator-set levels', async () => {
    const res = await client.post('/api/v1/tools/servers/workspace/refresh');
    const server = await json<ServerView>(res);
    expect(res.status, JSON.stringify(server)).toBe(200);
    expect(server.health).toBe('healthy');
    expect(server.tools.map((t) => t.name).sort()).toEqual(
      [
        'apply_patch',
        'git_diff',
        'git_status',
        'list_dir',
        'read_file',
        'run_command',
        'search_text',
        'write_file',
      ].sort(),
    );
    const byName = Object.fromEntries(server.tools.map((t) => [t.name, t]));
    expect(byName.read_file!.security_level).toBe('read-only');
    expect(byName.run_command!.security_level).toBe('standard');
    expect(byName.run_command!.capabilities).toContain('process.exec');
    expect(byName.write_file!.input_schema).toMatchObject({ type: 'object' });
  });

  it('when a third-party stdio server is registered, then its tools are discovered; a server that cannot start is marked unhealthy with its error', async () => {
    const good = await register();
    expect(good.health).toBe('healthy');
    expect(good.tools.map((t) => t.name)).toEqual(
      expect.arrayContaining(['echo', 'slow', 'fail', 'add_tool', 'deploy', 'read_file']),
    );
    expect(good.tools.find((t) => t.name === 'echo')!.input_schema).toMatchObject({
      properties: { text: { type: 'string' } },
    });

    // Any execution worker may discover a new server (the first step that needs a tool does), so what makes this one
    // die is in its registry entry, not in one worker's environment.
    const dies = await register({ args: ['--import', TSX, FIXTURE, '--exit-at-start'] });
    expect(dies.health).toBe('unhealthy');
    expect(dies.health_error).toMatch(/refusing to start/);
    const dead = await register({ args: ['--import', TSX, path.join(PROJECT_ROOT, 'test', 'fixtures', 'missing.ts')] });
    expect(dead.health).toBe('unhealthy');
    expect(dead.health_error).toMatch(/could not connect to tool server/);
    expect(dead.tools).toEqual([]);

    const listed = await json<{ items: { id: string; health: string }[] }>(await client.get('/api/v1/tools/servers'));
    expect(listed.items.find((s) => s.id === dead.id)?.health).toBe('unhealthy');
    expect(listed.items.find((s) => s.id === 'workspace')).toBeDefined();
    // The workers are still fine: the built-in server still answers.
    expect((await json<ServerView>(await client.post('/api/v1/tools/servers/workspace/refresh'))).health).toBe(
      'healthy',
    );
  });

  it('when a Streamable HTTP server is registered with its secret by reference, then its tools are discovered and callable; a missing secret is unhealthy', async () => {
    // The platform's own /mcp endpoint, reached as a third-party HTTP server; the header comes from the worker's env.
    process.env.AGENCY_TEST_MCP_AUTH = `Bearer ${api.key}`;
    const http = await register({
      transport: 'http',
      command: undefined,
      args: [],
      url: `${api.url}/mcp`,
      auth_secret_ref: 'AGENCY_TEST_MCP_AUTH',
      capabilities: ['agency.tasks'],
      security_level: 'read-only',
    });
    expect(http.health, http.health_error ?? '').toBe('healthy');
    expect(http.tools.map((t) => t.name)).toEqual(
      expect.arrayContaining(['start_task', 'get_task', 'list_pending_approvals', 'approve_task', 'get_artifact']),
    );
    const run = await runSteps([
      { kind: 'tool', capabilities: ['agency.tasks'], tool: 'list_pending_approvals', server: http.id, arguments: {} },
    ]);
    expect(run.done.status, run.done.result?.reason).toBe('completed');
    expect(run.done.result!.steps[0]!.detail).toMatch(new RegExp(`^${http.id}/list_pending_approvals: `));

    const unauthorised = await register({
      transport: 'http',
      command: undefined,
      args: [],
      url: `${api.url}/mcp`,
      auth_secret_ref: 'AGENCY_TEST_MCP_AUTH_UNSET',
      security_level: 'read-only',
    });
    expect(unauthorised.health).toBe('unhealthy');
    expect(unauthorised.health_error).toMatch(/secret AGENCY_TEST_MCP_AUTH_UNSET is not set/);
  });

  it('when registration input is bad, then 400 names the field and nothing is stored; a duplicate id is 409; a viewer cannot register', async () => {
    const res = await client.post('/api/v1/tools/servers', { id: 'Bad Id', transport: 'stdio', security_level: 'x' });
    expect(res.status).toBe(400);
    const problem = await json<{ issues: { path: string }[] }>(res);
    expect(problem.issues.map((i) => i.path)).toEqual(expect.arrayContaining(['id', 'name', 'security_level']));
    const http = await client.post('/api/v1/tools/servers', {
      id: 'http-no-url',
      name: 'no url',
      transport: 'http',
      security_level: 'standard',
    });
    expect(http.status).toBe(400);
    expect((await client.get('/api/v1/tools/servers/http-no-url')).status).toBe(404);
    const first = await register();
    const again = await client.post('/api/v1/tools/servers', {
      id: first.id,
      name: 'another',
      transport: 'stdio',
      command: 'node',
      security_level: 'standard',
    });
    expect(again.status).toBe(409);
  });

  it('when a step asks for a capability, then the matching tool is called; a tool error, bad arguments and a timeout are results the task reports, not crashes', async () => {
    const server = await register({ timeout_ms: 1500 });
    const on = { server: server.id };
    const ok = await runSteps([{ kind: 'tool', capabilities: ['text.echo'], ...on, arguments: { text: 'hello' } }]);
    expect(ok.done.status, ok.done.failure ?? ok.done.result?.reason).toBe('completed');
    expect(ok.done.result!.steps[0]!.detail).toContain(`${server.id}/echo: echo: hello`);

    const invalid = await runSteps([{ kind: 'tool', capabilities: ['text.echo'], ...on, arguments: { text: 42 } }]);
    expect(invalid.done.status).toBe('failed');
    expect(invalid.done.result!.steps[0]!.detail).toMatch(/invalid_arguments: arguments do not match the input schema/);
    expect(invalid.done.result!.steps[0]!.detail).toMatch(/\/text must be string/);

    const failing = await runSteps([{ kind: 'tool', capabilities: ['test.fail'], ...on, arguments: {} }]);
    expect(failing.done.result!.steps[0]!.detail).toContain('tool_error: fixture failure: the thing is broken');

    const slow = await runSteps([{ kind: 'tool', capabilities: ['test.slow'], ...on, arguments: { ms: 10_000 } }]);
    expect(slow.done.status).toBe('failed');
    expect(slow.done.result!.steps[0]!.detail).toMatch(/timeout: .*did not answer within 1500 ms/);

    // Each call is in the audit trail with its argument digest, outcome and duration.
    const events = await api.db.query<{ payload: { tool: string; outcome: string; args_sha256: string } }>(
      `SELECT payload FROM audit_events WHERE action = 'tool.called' AND payload->>'server' = $1`,
      [server.id],
    );
    expect(events.rows.map((r) => r.payload.outcome).sort()).toEqual(
      ['invalid_arguments', 'ok', 'timeout', 'tool_error'].sort(),
    );
    expect(events.rows.every((r) => /^[0-9a-f]{64}$/.test(r.payload.args_sha256))).toBe(true);
    // And counted for Prometheus (the workers run in this process, so their registry is this one).
    const counted = await registry.getSingleMetricAsString('agent_agency_tool_calls_total');
    for (const [tool, outcome] of [
      ['echo', 'ok'],
      ['echo', 'invalid_arguments'],
      ['fail', 'tool_error'],
      ['slow', 'timeout'],
    ])
      expect(counted).toContain(`server="${server.id}",tool="${tool}",outcome="${outcome}"} 1`);
  });

  it('when no enabled tool has the capability, then planning fails naming it; disabling a server takes its tools away', async () => {
    const none = await runSteps([{ kind: 'tool', capabilities: ['nothing.here'], arguments: {} }]);
    expect(none.done.status).toBe('failed');
    expect(none.done.result!.reason).toMatch(/no enabled, healthy tool provides capabilities \[nothing\.here\]/);
    expect(none.done.result!.steps).toEqual([]);

    const server = await register({ capabilities: ['fixture'] });
    const patch = await api.fetch(`/api/v1/tools/servers/${server.id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ enabled: false }),
    });
    expect(patch.status).toBe(200);
    expect((await json<ServerView>(patch)).enabled).toBe(false);
    const disabled = await runSteps([
      { kind: 'tool', capabilities: ['ops.deploy'], server: server.id, arguments: { target: 'staging' } },
    ]);
    expect(disabled.done.result!.reason).toMatch(/no enabled, healthy tool provides/);
    const platform = await api.fetch('/api/v1/tools/servers/workspace', {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ enabled: false }),
    });
    expect(platform.status).toBe(409);
  });

  it('when a server adds a tool at run time, then notifications/tools/list_changed refreshes the registry', async () => {
    const server = await register();
    expect(server.tools.some((t) => t.name === 'late_tool')).toBe(false);
    const run = await runSteps([
      { kind: 'tool', capabilities: ['test.mutate'], server: server.id, arguments: { name: 'late_tool' } },
    ]);
    expect(run.done.status, run.done.result?.reason).toBe('completed');
    const seen = await (async () => {
      for (let i = 0; i < 50; i++) {
        const s = await json<ServerView>(await client.get(`/api/v1/tools/servers/${server.id}`));
        if (s.tools.some((t) => t.name === 'late_tool')) return s;
        await new Promise((r) => setTimeout(r, 200));
      }
      return undefined;
    })();
    expect(seen?.tools.find((t) => t.name === 'late_tool')?.capabilities).toEqual(['test.late']);
  });

  it('when a step needs a privileged tool, then the task waits for a person whose approval is bound to the exact arguments', async () => {
    const server = await register({ security_level: 'privileged', capabilities: ['ops'] });
    const id = await client.submit({
      title: 'Deploy',
      workspace: await sampleRepo(),
      spec: calculatorSpec({
        steps: [
          { kind: 'tool', capabilities: ['ops.deploy'], server: server.id, arguments: { target: 'prod' } },
          ...FIX_STEP,
        ],
      }),
    });
    const waiting = await client.waitFor(id, 'awaiting_approval', 90_000);
    const pending = waiting.progress!.pendingApproval!;
    expect(pending.reasons.join(' ')).toContain(`privileged tool calls: step 1 ${server.id}/deploy`);
    expect(pending.toolCalls).toHaveLength(1);
    expect(pending.toolCalls![0]!.key).toMatch(new RegExp(`^${server.id}/deploy/[0-9a-f]{64}$`));
    expect(pending.hash).not.toBe(waiting.progress!.planHash);
    // An approval of the plan alone (its hash without the call) is stale.
    const stale = await client.post(`/api/v1/tasks/${id}/approve`, { hash: waiting.progress!.planHash });
    expect(stale.status).toBe(409);
    const ok = await client.post(`/api/v1/tasks/${id}/approve`, { hash: pending.hash });
    expect(ok.status, await ok.clone().text()).toBeLessThan(300);
    const done = await client.finished(id, 120_000);
    expect(done.status, done.result?.reason).toBe('completed');
    expect(done.result!.steps[0]!.detail).toContain('deployed to prod');
  });

  it('when two steps edit overlapping text, then a clean three-way merge folds them and the conflict is recorded; an unmergeable pair waits for a person', async () => {
    const file = 'src/calculator.js';
    const original = await readFile(path.join(await sampleRepo(), file), 'utf8');
    const lines = original.split('\n');
    const at = lines.findIndex((l) => l.includes('values.length - 1'));
    expect(at).toBeGreaterThan(1);
    // Two finds sharing one line; the edits change different, non-adjacent lines: a clean merge. The second is the
    // sample's fix (the shared line is the buggy one), so the merged result passes the tier's gates; no fix appended.
    const a = lines.slice(at - 2, at + 1).join('\n');
    const b = lines.slice(at, at + 3).join('\n');
    const fix = FIX_STEP[0] as { find: string; replace: string };
    expect(lines[at]).toContain(fix.find);
    const id0 = await client.submit({
      title: 'Overlapping edits',
      workspace: await sampleRepo(),
      spec: calculatorSpec({
        steps: [
          { kind: 'replace', path: file, find: a, replace: a.replace(lines[at - 2]!, `${lines[at - 2]!} // first`) },
          { kind: 'replace', path: file, find: b, replace: b.replace(fix.find, fix.replace) },
        ],
      }),
    });
    const merged = { id: id0, done: await client.finished(id0, 120_000) };
    expect(merged.done.status, merged.done.result?.reason).toBe('completed');
    expect(merged.done.result!.steps).toHaveLength(1);
    const conflicts = await api.db.query<{ payload: { resolution: string; evidence: string } }>(
      `SELECT payload FROM audit_events WHERE action = 'tool.conflict' AND workflow_id = $1`,
      [`task-${merged.id}`],
    );
    expect(conflicts.rows.map((r) => r.payload.resolution)).toEqual(['three_way_merge']);

    const id = await client.submit({
      title: 'Clashing edits',
      workspace: await sampleRepo(),
      spec: calculatorSpec({
        steps: [
          { kind: 'replace', path: file, find: lines[at]!, replace: `${lines[at]!} // one` },
          { kind: 'replace', path: file, find: lines[at]!, replace: `${lines[at]!} // two` },
        ],
      }),
    });
    const waiting = await client.waitFor(id, 'awaiting_approval', 90_000);
    expect(waiting.progress!.pendingApproval!.reasons.join(' ')).toMatch(
      /edit conflict: steps 1 and 2 edit src\/calculator\.js/,
    );
    await client.post(`/api/v1/tasks/${id}/reject`, { hash: waiting.progress!.pendingApproval!.hash, reason: 'clash' });
    expect((await client.finished(id)).status).toBe('failed');
  });

  it('when two tools claim the same capability and answer differently, then the conflict is recorded with both digests and the registry order decides', async () => {
    await register({ priority: 500 });
    const run = await runSteps([{ kind: 'tool', capabilities: ['fs.read'], arguments: { path: 'src/calculator.js' } }]);
    expect(run.done.status, run.done.result?.reason).toBe('completed');
    expect(run.done.result!.steps[0]!.detail).toMatch(/^workspace\/read_file: /);
    expect(run.done.result!.steps[0]!.detail).toMatch(/conflict: (fixture-[0-9a-f]+)\/read_file answered differently/);
    const rows = await api.db.query<{ payload: { resolution: string; evidence: Record<string, { sha256: string }> } }>(
      `SELECT payload FROM audit_events WHERE action = 'tool.conflict' AND workflow_id = $1`,
      [`task-${run.id}`],
    );
    expect(rows.rows).toHaveLength(1);
    expect(rows.rows[0]!.payload.resolution).toBe('priority');
    const sides = Object.keys(rows.rows[0]!.payload.evidence).sort();
    expect(sides).toHaveLength(2);
    expect(sides[0]).toMatch(/^fixture-[0-9a-f]+\/read_file$/);
    expect(sides[1]).toBe('workspace/read_file');
  });

  it('when an edit is retried after its effect landed but before its record did, then it is applied once', async () => {
    const workspace = await sampleRepo();
    const file = path.join(workspace, 'src', 'calculator.js');
    const before = await readFile(file, 'utf8');
    const db = api.db;
    // Its own pool: pg reuses client objects, and the patched ones must not reach the retry.
    const doomed = createDb(config.DATABASE_URL);
    // The first attempt "crashes" exactly between the tool call and the step's record: the record's INSERT fails.
    const crashing = new Proxy(doomed, {
      get(target, prop, receiver) {
        if (prop !== 'connect') return Reflect.get(target, prop, receiver) as unknown;
        // pool.query() calls connect(callback): that path is left alone; appendAuditEvent awaits connect().
        return async (...cb: unknown[]) => {
          if (cb.length) return (target.connect as (...a: unknown[]) => unknown)(...cb);
          const conn = await target.connect();
          const query = conn.query.bind(conn) as (...a: unknown[]) => Promise<unknown>;
          (conn as unknown as { query: unknown }).query = (...a: unknown[]) =>
            // The step's record, however appends are batched (its action is among the parameters).
            JSON.stringify(a[1] ?? null).includes('"step.applied"')
              ? Promise.reject(new Error('worker died here'))
              : query(...a);
          return conn;
        };
      },
    });
    const task = {
      tenantId: 'tools-test',
      taskId: `retry-${randomUUID()}`,
      workflowId: `retry-${randomUUID()}`,
      executionKey: `retry-${randomUUID()}`,
      correlationId: 'retry',
    };
    // Applied twice, this edit would add a second ` + 0`: its new text contains its old one.
    const step = {
      kind: 'replace' as const,
      path: 'src/calculator.js',
      find: 'values.length - 1',
      replace: 'values.length - 1 + 0',
    };
    const first = createExecutionActivities({ db: crashing, config });
    await expect(new MockActivityEnvironment().run(() => first.applyStep(task, workspace, 0, step))).rejects.toThrow(
      'worker died here',
    );
    await doomed.end();
    const afterFirst = await readFile(file, 'utf8');
    expect(afterFirst).not.toBe(before);
    const second = createExecutionActivities({ db, config });
    const outcome: StepOutcome = await new MockActivityEnvironment().run(() =>
      second.applyStep(task, workspace, 0, step),
    );
    expect(outcome.ok).toBe(true);
    expect(outcome.skipped).toBe(true); // the tool found its edit already applied (expected hash from the intent)
    const after = await readFile(file, 'utf8');
    expect(after).toBe(afterFirst);
    expect(after.split('values.length - 1 + 0').length - 1).toBe(1);
    expect(after).not.toContain('+ 0 + 0');
  });
});
