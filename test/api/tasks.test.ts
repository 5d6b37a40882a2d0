import { readFile, stat } from 'node:fs/promises';
import { parseServerTiming } from '../../api/server-timing.js';
import path from 'node:path';
import os from 'node:os';
import proto from '@temporalio/proto';
import { describe, expect, it } from 'vitest';
import { appendAuditEvent, listAuditEvents } from '../../common/audit.js';
import { getArtifact, putArtifact } from '../../common/artifacts.js';
import type { Config } from '../../common/config.js';
import { artifactsReferencedBy } from '../../common/tasks-repo.js';
import { drain, seededStream } from '../helpers/blob-data.js';
import { taskWorkflowId, type TaskResult } from '../../workflows/task/definitions.js';
import { eventually, json, sampleRepo, temporalClient, useStack, type RunningApi } from '../helpers/stack.js';

interface TaskView {
  id: string;
  status: string;
  temporalStatus: string;
  result?: TaskResult;
  events?: { status: string }[];
  webUi: string;
}

describe('tasks over HTTP against the real stack', () => {
  let config: Config;
  let api: RunningApi;

  useStack((stack) => ({ config, api } = stack));

  const post = (url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
    api.fetch(`${url}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const getTask = async (id: string): Promise<TaskView> => json<TaskView>(await api.fetch(`/api/v1/tasks/${id}`));
  const finalState = (id: string): Promise<TaskView> =>
    eventually(
      async () => {
        const t = await getTask(id);
        return ['completed', 'failed', 'canceled'].includes(t.status) && t.temporalStatus !== 'RUNNING' ? t : undefined;
      },
      { timeoutMs: 60_000, what: `task ${id} to end` },
    );

  it('when a task is posted, then it runs to completion on the real server and its history is visible', async () => {
    const workspace = await sampleRepo();
    const res = await post(
      '/api/v1/tasks',
      { title: 'Fix average in the sample', workspace },
      { 'x-correlation-id': 'corr-happy-1' },
    );
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toMatch(/^\/api\/v1\/tasks\//);
    // Where the POST's time went, as the benchmark reads it: each phase took time and fits in the whole.
    const phases = parseServerTiming(res.headers.get('server-timing'));
    expect(Object.keys(phases).sort()).toEqual(['keys', 'pre', 'source', 'start', 'total']);
    expect(phases.start).toBeGreaterThan(0);
    expect(phases.pre! + phases.source! + phases.keys! + phases.start!).toBeLessThanOrEqual(phases.total!);
    const { id, workflowId, webUi } = await json<{ id: string; workflowId: string; webUi: string }>(res);
    expect(workflowId).toBe(taskWorkflowId(id));
    expect(webUi).toContain(`/namespaces/agency/workflows/${workflowId}`);

    const done = await finalState(id);
    expect(done.status).toBe('completed');
    // The tier's required gates, each measured by the tenant's registered command and passed on its report: the
    // sample's three tests ran (the A1 one among them), full branch coverage, every mutant detected.
    expect(done.result?.gates).toEqual([
      expect.objectContaining({
        kind: 'tests',
        passed: true,
        exitCode: 0,
        source: 'tenant',
        tests: { ran: 3, passed: 3, failed: 0, skipped: 0 },
        acceptance: [{ id: 'A1', passed: 1, failed: 0, skipped: 0 }],
      }),
      expect.objectContaining({ kind: 'coverage', passed: true, source: 'tenant', value: 1 }),
      expect.objectContaining({ kind: 'mutation', passed: true, source: 'tenant', value: 1 }),
    ]);
    // Each report was read from a fresh output directory the platform named for that run.
    expect(done.result!.gates.map((g) => g.outputDir)).toEqual([
      expect.stringMatching(/^\.agency\/gates\/tests-/),
      expect.stringMatching(/^\.agency\/gates\/coverage-/),
      expect.stringMatching(/^\.agency\/gates\/mutation-/),
    ]);
    expect(done.result?.filesChanged).toEqual(['src/calculator.js']);
    expect(done.result?.verdicts.map((v) => [v.phase, v.verdict.decision])).toEqual([
      ['plan', 'accept'],
      ['result', 'accept'],
    ]);

    // The diff is the fix, stored content-addressed.
    const diff = await getArtifact(api.db, 'default', done.result!.diffRef!.sha256);
    expect(diff?.content.toString()).toContain('+  return sum(values) / values.length;');
    expect(diff?.content.toString()).toContain('-  return sum(values) / (values.length - 1);');
    // The user's repository itself is untouched: the task worked in an isolated copy.
    expect(await readFile(path.join(workspace, 'src/calculator.js'), 'utf8')).toContain('(values.length - 1)');

    // History on the server: started, activities scheduled, completed.
    const client = await temporalClient(config);
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const { EventType } = proto.temporal.api.enums.v1;
    const types = history.events?.map((e) => e.eventType) ?? [];
    expect(types[0]).toBe(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED);
    expect(types.at(-1)).toBe(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
    expect(types.filter((t) => t === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED).length).toBeGreaterThan(4);
    // The council and execution ran as child workflows of the task.
    expect(types.filter((t) => t === EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED)).toHaveLength(3);
    await client.connection.close();

    // The audit trail has the task's record, with the caller's correlation id.
    const events = await listAuditEvents(api.db, { tenantId: 'default', workflowId });
    expect(events.map((e) => e.action)).toEqual(
      expect.arrayContaining([
        'task.started',
        'workspace.prepared',
        'step.applied',
        'gate.evaluated',
        'council.verdict',
        'task.completed',
      ]),
    );
    expect(new Set(events.map((e) => e.correlationId))).toEqual(new Set(['corr-happy-1']));
  });

  it('when the body is invalid, then 400 problem+json lists the schema issues and nothing starts', async () => {
    const res = await post('/api/v1/tasks', { title: 'x', workspace: 'relative/path', extra: 1 });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    const body = await json<{ status: number; issues: { path: string; message: string }[] }>(res);
    expect(body.status).toBe(400);
    const paths = body.issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['title', 'workspace']));
    expect(body.issues.some((i) => i.message.includes('extra'))).toBe(true);
  });

  it('when the body is not JSON, then 400 problem+json', async () => {
    const res = await post('/api/v1/tasks', '{"title": ');
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ title: 'Bad Request', detail: 'the request body is not valid JSON' });
  });

  it('when the body is over the limit, then 413 problem+json', async () => {
    const res = await post('/api/v1/tasks', {
      title: 'big',
      description: 'x'.repeat(2 * 1024 * 1024),
      workspace: '/tmp',
    });
    expect(res.status).toBe(413);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
  });

  it('when the id is unknown or malformed, then 404 or 400', async () => {
    const missing = await api.fetch(`/api/v1/tasks/no-such-task`);
    expect(missing.status).toBe(404);
    expect(await json(missing)).toMatchObject({ status: 404, detail: 'no task no-such-task' });
    expect((await api.fetch(`/api/v1/tasks/${'x'.repeat(101)}`)).status).toBe(400);
    expect((await post('/api/v1/tasks/no-such-task/cancel', {})).status).toBe(404);
    expect((await api.fetch(`/api/v1/nothing-here`)).status).toBe(404);
  });

  it('when a list cursor is not one the API gave out, then 400 problem+json', async () => {
    const notAToken = Buffer.from('[1]').toString('base64url');
    for (const url of [
      '/api/v1/tasks?cursor=not-a-cursor',
      `/api/v1/tasks?status=completed&cursor=${notAToken}`,
      '/api/v1/council/sessions?cursor=not-a-cursor',
    ]) {
      const res = await api.fetch(url);
      expect([url, res.status]).toEqual([url, 400]);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
    }
  });

  it('when audit events refer to artifacts, then those are the task’s artifacts, found in the payload JSON', async () => {
    const workflowId = `task-refs-${Date.now()}`;
    const [diff, log, mentioned] = await Promise.all(
      ['diff', 'log', 'mentioned'].map((name) =>
        putArtifact(api.db, 'default', `${name} of ${workflowId}`, 'text/plain'),
      ),
    );
    await appendAuditEvent(api.db, {
      tenantId: 'default',
      actor: 'system',
      action: 'test.refs',
      workflowId,
      payload: {
        diff: diff!.sha256,
        gates: [{ logRef: { ...log! } }],
        note: `a digest inside text is not a reference: ${mentioned!.sha256}`,
        unknown: 'f'.repeat(64),
      },
    });
    const found = await artifactsReferencedBy(api.db, 'default', workflowId);
    expect(found.sort((a, b) => a.sha256.localeCompare(b.sha256))).toEqual(
      [diff!, log!].sort((a, b) => a.sha256.localeCompare(b.sha256)),
    );
    expect(await artifactsReferencedBy(api.db, 'default', `${workflowId}-other`)).toEqual([]);
  });

  it('when an artifact is fetched, then it streams with its type, length and ETag; a corrupt one is a 500 or a cut-off body', async () => {
    const { id } = await json<{ id: string }>(
      await post('/api/v1/tasks', { title: 'Fix average for the artifact route', workspace: await sampleRepo() }),
    );
    const size = 2.5 * 1024 * 1024 + 3; // three chunks of the configured 1 MiB
    const artifact = async (seed: string) => {
      const { bytes } = await drain(seededStream(seed, size));
      return { bytes, ref: await putArtifact(api.db, 'default', bytes, 'application/x-test') };
    };
    const url = (sha256: string): string => `/api/v1/tasks/${id}/artifacts/${sha256}`;
    /** Flips the first byte of one chunk of the artifact's blob. */
    const corrupt = (sha256: string, seq: number) =>
      api.db.query(
        `UPDATE blob_chunks c SET data = set_byte(c.data, 0, get_byte(c.data, 0) # 255) FROM blobs b
          WHERE b.backend = 'postgres' AND b.tenant_id = 'default' AND b.sha256 = $1
            AND c.upload_id = b.upload_id AND c.seq = $2`,
        [sha256, seq],
      );

    const good = await artifact(`route-good-${id}`);
    const res = await api.fetch(url(good.ref.sha256));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-test');
    expect(res.headers.get('content-length')).toBe(String(size));
    expect(res.headers.get('etag')).toBe(`"${good.ref.sha256}"`);
    expect(Buffer.from(await res.arrayBuffer()).equals(good.bytes)).toBe(true);
    const head = await api.fetch(url(good.ref.sha256), { method: 'HEAD' });
    expect([head.status, head.headers.get('content-length'), (await head.arrayBuffer()).byteLength]).toEqual([
      200,
      String(size),
      0,
    ]);
    // (fetch adds Cache-Control: no-cache to a conditional request unless it names one itself)
    const cached = await api.fetch(url(good.ref.sha256), {
      headers: { 'if-none-match': `"${good.ref.sha256}"`, 'cache-control': 'max-age=0' },
    });
    expect(cached.status).toBe(304);
    expect((await api.fetch(url('0'.repeat(64)))).status).toBe(404);

    // Corrupt at its start: found before the headers, so a 500 problem.
    const early = await artifact(`route-early-${id}`);
    await corrupt(early.ref.sha256, 0);
    const failed = await api.fetch(url(early.ref.sha256));
    expect(failed.status).toBe(500);
    expect(failed.headers.get('content-type')).toContain('application/problem+json');
    // Corrupt further on: the headers are out, so the body is cut short and the client's read fails.
    const late = await artifact(`route-late-${id}`);
    await corrupt(late.ref.sha256, 2);
    const cut = await api.fetch(url(late.ref.sha256));
    expect(cut.status).toBe(200);
    await expect(cut.arrayBuffer()).rejects.toThrow();

    expect((await finalState(id)).status).toBe('completed');
  });

  it('when a task id is reused, then 409 and the first task is unaffected', async () => {
    const workspace = await sampleRepo();
    const id = `dup-${Date.now()}`;
    expect((await post('/api/v1/tasks', { id, title: 'First of two', workspace })).status).toBe(202);
    const second = await post('/api/v1/tasks', { id, title: 'Second of two', workspace });
    expect(second.status).toBe(409);
    expect((await finalState(id)).status).toBe('completed');
  });

  it('when a running task is canceled, then it ends canceled and its workspace copy is removed', async () => {
    const workspace = await sampleRepo();
    const res = await post('/api/v1/tasks', {
      title: 'A task that waits',
      workspace,
      spec: {
        id: 'CHORE-1',
        title: 'Wait long enough to be canceled',
        risk_tier: 3,
        mode: 'chore',
        scope: { in: ['src/'] },
        steps: [{ kind: 'command', run: ['node', '-e', 'setTimeout(() => {}, 60000)'] }],
      },
    });
    const { id, workflowId } = await json<{ id: string; workflowId: string }>(res);
    // The workspace is named by the execution run that prepared it (workspace.prepared records its id).
    const workspaceId = await eventually(
      async () => {
        const { rows } = await api.db.query<{ payload: { workspace: string } }>(
          `SELECT payload FROM audit_events WHERE workflow_id = $1 AND action = 'workspace.prepared'`,
          [workflowId],
        );
        return rows[0]?.payload.workspace;
      },
      { what: 'the workspace to be prepared' },
    );
    const workdir = path.join(config.WORKSPACES_DIR!, workspaceId);
    await eventually(
      async () =>
        (await getTask(id)).status === 'executing' &&
        (await stat(workdir).then(
          () => true,
          () => false,
        )),
      {
        what: 'the step to start',
      },
    );
    expect((await post(`/api/v1/tasks/${id}/cancel`, {})).status).toBe(202);
    const done = await finalState(id);
    expect(done.status).toBe('canceled');
    expect(done.temporalStatus).toBe('CANCELLED');
    expect(
      await stat(workdir).then(
        () => true,
        () => false,
      ),
    ).toBe(false);
    // Its bundles are no longer kept for it: retention may remove them.
    const refs = await api.db.query(`SELECT 1 FROM blob_refs WHERE owner_kind = 'workspace' AND owner_id = $1`, [
      workspaceId,
    ]);
    expect(refs.rowCount).toBe(0);
    expect((await post(`/api/v1/tasks/${id}/cancel`, {})).status).toBe(409);
  });

  it('when the spec is invalid, then the task fails with the validation messages', async () => {
    const workspace = await sampleRepo();
    const res = await post('/api/v1/tasks', {
      title: 'Bad spec',
      workspace,
      spec: { id: 'bad', title: 'short', risk_tier: 7, mode: 'fix', scope: { in: [] } },
    });
    expect(res.status).toBe(400);
    const body = await json<{ issues: { path: string }[] }>(res);
    expect(body.issues.map((i) => i.path)).toEqual(
      expect.arrayContaining(['spec.id', 'spec.title', 'spec.risk_tier', 'spec.scope.in']),
    );
  });

  it('when the workspace is not a git repository, then the task fails saying so', async () => {
    const res = await post('/api/v1/tasks', {
      title: 'Nowhere',
      workspace: path.join(os.tmpdir(), 'nonexistent-workspace'),
      spec: {
        id: 'FIX-2',
        title: 'Edit a file that is nowhere',
        risk_tier: 3,
        mode: 'fix',
        scope: { in: ['a.txt'] },
        acceptance: [{ id: 'A1', given: 'a repository', when: 'the task runs', then: 'a.txt exists' }],
        steps: [{ kind: 'write_file', path: 'a.txt', content: 'a' }],
        gates: [{ name: 'tests', run: ['node', '--version'] }],
      },
    });
    const { id } = await json<{ id: string }>(res);
    const done = await finalState(id);
    expect(done.status).toBe('failed');
    expect(done.result?.reason).toContain('/nonexistent-workspace is not a git repository');
  });
});
