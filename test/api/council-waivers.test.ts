/** Listing tasks, council sessions and stand-alone review, waivers, and specs submitted as YAML, over HTTP. */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createApiKey, ensureTenant } from '../../common/api-keys.js';
import { listAuditEvents } from '../../common/audit.js';
import type { Config } from '../../common/config.js';
import {
  eventually,
  json,
  sampleRepo,
  temporalClient,
  useStack,
  type RunningApi,
  type RunningWorkers,
} from '../helpers/stack.js';
import { calculatorSpec, taskClient } from '../helpers/tasks.js';

const fixDiff = `diff --git a/src/calculator.js b/src/calculator.js
--- a/src/calculator.js
+++ b/src/calculator.js
@@ -7,3 +7,3 @@ export function average(values) {
   if (values.length === 0) throw new RangeError('average of an empty list');
-  return sum(values) / (values.length - 1);
+  return sum(values) / values.length;
 }
`;

describe('tasks list, council, waivers', () => {
  let config: Config;
  let workers: RunningWorkers;
  let api: RunningApi;
  const client = taskClient(() => api);
  /** Every item of a paginated list (other test files add to the same tenant at the same time). */
  const everyPage = async <T>(url: string): Promise<T[]> => {
    const all: T[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: T[]; nextCursor: string | null } = await json(
        await api.fetch(`${url}${cursor ? `&cursor=${cursor}` : ''}`),
      );
      all.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    return all;
  };

  useStack((stack) => ({ config, workers, api } = stack));

  it('when tasks are listed, then the status filter and cursor pagination work and bad filters are 400', async () => {
    const ids = [
      await client.submit({ title: 'List one', workspace: await sampleRepo() }),
      await client.submit({ title: 'List two', workspace: await sampleRepo() }),
    ];
    for (const id of ids) expect((await client.finished(id)).status).toBe('completed');
    // Visibility is eventually consistent: wait until both show as completed.
    const first = await eventually(
      async () => {
        const page = await json<{ items: { id: string; status: string }[]; nextCursor: string | null }>(
          await client.get('/api/v1/tasks?status=completed&limit=1'),
        );
        const all = await everyPage<{ id: string }>('/api/v1/tasks?status=completed&limit=100');
        return ids.every((id) => all.some((i) => i.id === id)) ? page : undefined;
      },
      { what: 'the tasks to be visible' },
    );
    expect(first.items).toHaveLength(1);
    expect(first.items[0]!.status).toBe('completed');
    expect(first.nextCursor).toBeTruthy();
    const second = await json<{ items: { id: string }[] }>(
      await client.get(`/api/v1/tasks?status=completed&limit=1&cursor=${first.nextCursor}`),
    );
    expect(second.items).toHaveLength(1);
    expect(second.items[0]!.id).not.toBe(first.items[0]!.id);

    expect((await client.get('/api/v1/tasks?status=sleeping')).status).toBe(400);
    expect((await client.get('/api/v1/tasks?colour=blue')).status).toBe(400);
  });

  interface ReviewView {
    sessionId: string;
    href: string;
    status: 'deliberating' | 'decided' | 'escalated' | 'failed';
    outcome: {
      kind: string;
      record: { verdict: { decision: string; constitutional_refs: string[] } };
    } | null;
    verdict: { decision: string; constitutional_refs: string[] } | null;
  }
  /** Posts a review: 202 at once, with the URL to poll as href and Location. */
  const startReview = async (body: Record<string, unknown>): Promise<{ sessionId: string; href: string }> => {
    const res = await client.post('/api/v1/council/review', body);
    expect(res.status).toBe(202);
    const accepted = await json<{ sessionId: string; href: string }>(res);
    expect(accepted.href).toBe(`/api/v1/council/review/${accepted.sessionId}`);
    expect(res.headers.get('location')).toBe(accepted.href);
    return accepted;
  };
  /** Polls the review until the council has ended. */
  const decided = (href: string): Promise<ReviewView> =>
    eventually(
      async () => {
        const view = await json<ReviewView>(await client.get(href));
        return view.status === 'deliberating' ? undefined : view;
      },
      { timeoutMs: 60_000, what: `review ${href} to be decided` },
    );
  const review = async (body: Record<string, unknown>): Promise<ReviewView> => decided((await startReview(body)).href);

  it('when a diff is reviewed without executing, then the council answers with a signed verdict, and rejects a leaked key', async () => {
    const evidence = [{ gate: 'tests', status: 'pass', reason: 'CI run 42 passed; covers A1' }];
    const unproven = await review({ diff: fixDiff, spec: calculatorSpec() });
    expect(unproven.outcome!.record.verdict.decision).toBe('reject');
    expect(unproven.outcome!.record.verdict.constitutional_refs).toContain('evidence.gate-missing');

    const accepted = await review({ diff: fixDiff, spec: calculatorSpec(), gates: evidence });
    expect(accepted.status).toBe('decided');
    expect(accepted.outcome!.kind).toBe('final');
    expect(accepted.outcome!.record.verdict.decision).toBe('accept');
    expect(accepted.verdict).toEqual(accepted.outcome!.record.verdict);

    const leak = fixDiff.replace(
      '+  return sum(values) / values.length;',
      `+  return sum(values) / values.length; // ${'AKIA'}ABCDEFGHIJKLMNOP`,
    );
    const rejected = await review({ diff: leak, spec: calculatorSpec(), gates: evidence });
    expect(rejected.outcome!.record.verdict.decision).toBe('reject');
    expect(rejected.outcome!.record.verdict.constitutional_refs).toContain('secret.aws-access-key');

    // A stand-alone review has no task to approve.
    expect(
      (await client.post(`/api/v1/council/sessions/${accepted.sessionId}/approve`, { hash: 'a'.repeat(64) })).status,
    ).toBe(409);
    expect((await client.post('/api/v1/council/review', { diff: fixDiff })).status).toBe(400);
    expect((await client.get('/api/v1/council/sessions/no-such-session')).status).toBe(404);
  });

  it('when the same review is posted twice, then both name the same workflow, polled until its verdict', async () => {
    const spec = calculatorSpec({ id: 'FIX-0110' });
    const evidence = [{ gate: 'tests', status: 'pass', reason: 'CI run 43 passed; covers A1' }];
    const first = await startReview({ diff: fixDiff, spec, gates: evidence });
    expect(first.sessionId).toMatch(/^review-[0-9a-f]{64}$/);
    // The same input — while it runs, and with defaults spelled out — is the same review.
    const again = await startReview({ gates: evidence, consensus: 'weighted', spec, diff: fixDiff });
    expect(again.sessionId).toBe(first.sessionId);
    const view = await decided(first.href);
    expect(view).toMatchObject({ sessionId: first.sessionId, status: 'decided', verdict: { decision: 'accept' } });
    // Once decided it stands: posting it again finds it rather than convening the council again.
    const temporal = await temporalClient(config);
    try {
      const handle = temporal.workflow.getHandle(first.sessionId);
      const { runId } = await handle.describe();
      expect((await startReview({ diff: fixDiff, spec, gates: evidence })).sessionId).toBe(first.sessionId);
      expect((await handle.describe()).runId).toBe(runId);
    } finally {
      await temporal.connection.close();
    }
    // Another input is another review.
    const other = await startReview({ diff: fixDiff, spec, gates: [] });
    expect(other.sessionId).not.toBe(first.sessionId);
    expect((await decided(other.href)).verdict?.decision).toBe('reject');

    // Another tenant's review is as unknown as one that does not exist; the same input there is another review.
    const tenant = `review-${randomUUID().slice(0, 8)}`;
    await ensureTenant(api.db, tenant, 'Another tenant');
    const { key } = await createApiKey(api.db, { tenantId: tenant, name: 'other', roles: ['viewer', 'operator'] });
    const foreign = await fetch(`${api.url}${first.href}`, { headers: { 'x-api-key': key } });
    expect(foreign.status).toBe(404);
    const theirs = await fetch(`${api.url}/api/v1/council/review`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json' },
      body: JSON.stringify({ diff: fixDiff, spec, gates: evidence }),
    });
    expect(theirs.status).toBe(202);
    const theirId = (await json<{ sessionId: string }>(theirs)).sessionId;
    expect(theirId).not.toBe(first.sessionId);
    await eventually(
      async () =>
        (
          await json<ReviewView>(
            await fetch(`${api.url}/api/v1/council/review/${theirId}`, { headers: { 'x-api-key': key } }),
          )
        ).status !== 'deliberating',
      { timeoutMs: 60_000, what: 'the other tenant’s review to be decided' },
    );

    const unknown = await client.get(`/api/v1/council/review/review-${'0'.repeat(64)}`);
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toContain('application/problem+json');
    for (const malformed of ['not-a-review', `review-${'0'.repeat(63)}`, `task-x-council-plan-1`]) {
      const res = await client.get(`/api/v1/council/review/${malformed}`);
      expect([malformed, res.status]).toEqual([malformed, 400]);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
    }
  });

  it('when council sessions are listed, then a task’s plan and result sessions are there', async () => {
    const id = await client.submit({ title: 'Sessions', workspace: await sampleRepo() });
    const done = await client.finished(id);
    const sessions = done.result!.verdicts.map((v) => v.sessionId);
    expect(sessions).toHaveLength(2);
    await eventually(
      async () => {
        const items = await everyPage<{ id: string; taskId: string | null }>('/api/v1/council/sessions?limit=100');
        return sessions.every((s) => items.some((i) => i.id === s && i.taskId === id));
      },
      { what: 'the sessions to be listed' },
    );
  });

  it('when waivers are created, approved, changed and revoked, then each rule holds and every change is audited', async () => {
    const base = {
      id: 'WV-2001',
      gates: ['coverage'],
      reason: 'legacy module without tests',
      impact_level: 'medium',
      mitigation: 'manual testing',
      expires_at: new Date(Date.now() + 7 * 86_400_000).toISOString(),
    };
    const created = await client.post('/api/v1/waivers', base);
    expect(created.status).toBe(201);
    expect(await json(created)).toMatchObject({ id: 'WV-2001', status: 'pending', created_by: api.subject });
    expect((await client.post('/api/v1/waivers', base)).status).toBe(409);
    expect(
      (
        await client.post('/api/v1/waivers', {
          ...base,
          id: 'WV-2002',
          expires_at: new Date(Date.now() + 91 * 86_400_000).toISOString(),
        })
      ).status,
    ).toBe(400);
    expect((await client.post('/api/v1/waivers', { ...base, id: 'waiver-1' })).status).toBe(400);
    expect(
      (await client.post('/api/v1/waivers', { ...base, id: 'WV-2003', budget_delta: { max_loc: 5 } })).status,
    ).toBe(400);

    const patched = await api.fetch(`/api/v1/waivers/WV-2001`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ mitigation: 'manual testing by QA' }),
    });
    expect(await json(patched)).toMatchObject({ mitigation: 'manual testing by QA', status: 'pending' });
    expect(await json(await client.post('/api/v1/waivers/WV-2001/approve', {}))).toMatchObject({
      status: 'active',
      approved_by: api.subject,
    });
    const late = await api.fetch(`/api/v1/waivers/WV-2001`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'changed after approval' }),
    });
    expect(late.status).toBe(409);
    expect(
      await json(await client.post('/api/v1/waivers/WV-2001/revoke', { reason: 'module now tested' })),
    ).toMatchObject({ status: 'revoked' });
    expect((await client.post('/api/v1/waivers/WV-2001/revoke', {})).status).toBe(409);
    expect((await client.get('/api/v1/waivers/WV-9999')).status).toBe(404);

    const actions = (await listAuditEvents(workers.db, { tenantId: 'default' }))
      .filter((e) => e.subject === 'WV-2001')
      .map((e) => e.action);
    expect(actions).toEqual(['waiver.created', 'waiver.updated', 'waiver.approved', 'waiver.revoked']);
  });

  it('when the spec is YAML text, then it is parsed; syntax errors give line and column; strict mode refuses unknown keys', async () => {
    const yaml = [
      'id: FIX-0300',
      'title: Fix average() from a YAML spec',
      'risk_tier: 3',
      'mode: fix',
      'scope: { in: [src/] }',
      'team: platform',
      'acceptance: [{ id: A1, given: numbers, when: averaged, then: sum over count }]',
      'steps:',
      '  - { kind: replace, path: src/calculator.js, find: "return sum(values) / (values.length - 1);", replace: "return sum(values) / values.length;" }',
      'gates: [{ name: tests, run: [node, --test], covers: [A1] }]',
    ].join('\n');
    const res = await client.post('/api/v1/tasks', { title: 'YAML spec', workspace: await sampleRepo(), spec: yaml });
    expect(res.status).toBe(202);
    const { id, specWarnings } = await json<{ id: string; specWarnings: string[] }>(res);
    expect(specWarnings).toEqual(['team: unknown key (ignored)']);
    expect((await client.finished(id)).status).toBe('completed');

    const strict = await client.post('/api/v1/tasks', {
      title: 'Strict',
      workspace: await sampleRepo(),
      spec: yaml,
      strict_spec: true,
    });
    expect(strict.status).toBe(400);
    expect((await json<{ detail: string }>(strict)).detail).toContain('team');

    const broken = await client.post('/api/v1/tasks', {
      title: 'Broken',
      workspace: await sampleRepo(),
      spec: 'id: FIX-1\ntitle: [unclosed\n',
    });
    expect(broken.status).toBe(400);
    expect((await json<{ detail: string }>(broken)).detail).toMatch(/line \d+, column \d+/);
  });
});
