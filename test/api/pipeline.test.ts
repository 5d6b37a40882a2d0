/**
 * The agent task pipeline through the API on the real stack (Temporal dev server, PostgreSQL, every worker pool):
 * plan → risk → council → approval → execution → gates → council → result, and each way it can go.
 */
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseUnifiedDiff } from '../../activities/council/review.js';
import { putArtifact } from '../../common/artifacts.js';
import { listAuditEvents, verifyAuditChain } from '../../common/audit.js';
import { checkVerdict, type VerdictCheck } from '../../common/verdict-check.js';
import type { Config } from '../../common/config.js';
import { verifyJson, type JsonSignature } from '../../common/signing.js';
import type { CouncilSession } from '../../workflows/council/session.js';
import { executionWorkflowId } from '../../workflows/execution/definitions.js';
import {
  eventually,
  json,
  runningActivities,
  sampleRepo,
  temporalClient,
  startApi,
  useStack,
  type RunningApi,
  type RunningWorkers,
} from '../helpers/stack.js';
import { calculatorSpec, taskClient } from '../helpers/tasks.js';

const run = promisify(execFile);

describe('the agent task pipeline', () => {
  let config: Config;
  let workers: RunningWorkers;
  let api: RunningApi;
  /** The same workers, reached through an API whose timers are short (deadline tests). */
  let hurried: RunningApi;
  const client = taskClient(() => api);
  const hurriedClient = taskClient(() => hurried);

  useStack((stack) => ({ config, workers, api } = stack), {
    env: { TASK_APPROVAL_TIMEOUT: '60s', TASK_CLARIFICATION_TIMEOUT: '60s' },
  });
  beforeAll(async () => {
    hurried = await startApi({ ...config, TASK_APPROVAL_TIMEOUT: 1500, TASK_CLARIFICATION_TIMEOUT: 1500 });
  });
  afterAll(async () => {
    await hurried?.stop();
  });

  it('when the demo task runs, then the diff is the fix, gates pass, both verdicts are signed and verify, and the audit trail is complete', async () => {
    const workspace = await sampleRepo();
    const id = await client.submit({ title: 'Fix average()', workspace });
    const done = await client.finished(id);
    expect(done.status).toBe('completed');
    const result = done.result!;
    // The tier policy's gates ran although the spec lists only `tests`: the commands the tenant registered, each
    // judged on the report it wrote into the output directory the platform named for that run.
    expect(result.evaluations.map((e) => [e.gate, e.status])).toEqual([
      ['tests', 'pass'],
      ['coverage', 'pass'],
      ['mutation', 'pass'],
    ]);
    expect(result.gates.map((g) => [g.name, g.source, g.exitCode])).toEqual([
      ['tests', 'tenant', 0],
      ['coverage', 'tenant', 0],
      ['mutation', 'tenant', 0],
    ]);
    for (const g of result.gates) expect(g.outputDir).toMatch(new RegExp(`^\\.agency/gates/${g.name}-`));
    expect(new Set(result.gates.map((g) => g.outputDir)).size).toBe(3);
    expect(result.gates[0]!.tests).toEqual({ ran: 3, passed: 3, failed: 0, skipped: 0 });
    // A1 is covered because a test named after it ran and passed (test/calculator.test.js: "A1: average …").
    expect(result.gates[0]!.acceptance).toEqual([{ id: 'A1', passed: 1, failed: 0, skipped: 0 }]);
    expect(result.gates[2]!.evidence).toMatch(/mutation\.json: 3\/3 mutants detected$/);
    expect(result.verdicts.map((v) => [v.phase, v.verdict.decision, v.verdict.votes.map((x) => x.verdict)])).toEqual([
      ['plan', 'accept', ['pass', 'pass', 'pass', 'pass']],
      ['result', 'accept', ['pass', 'pass', 'pass', 'pass']],
    ]);
    expect(result.risk).toMatchObject({ tier: 3, specTier: 3, method: 'heuristic' });

    const diffResponse = await client.get(`/api/v1/tasks/${id}/artifacts/${result.diffRef!.sha256}`);
    // Streamed from the blob store, with its media type, length and digest.
    expect(diffResponse.headers.get('content-type')).toContain('text/x-diff');
    expect(diffResponse.headers.get('content-length')).toBe(String(result.diffRef!.sizeBytes));
    expect(diffResponse.headers.get('etag')).toBe(`"${result.diffRef!.sha256}"`);
    const diff = await diffResponse.text();
    expect(Buffer.byteLength(diff)).toBe(result.diffRef!.sizeBytes);
    expect(parseUnifiedDiff(diff).map((f) => [f.path, f.added.map((a) => a.text.trim())])).toEqual([
      ['src/calculator.js', ['return sum(values) / values.length;']],
    ]);

    // Each verdict is signed over canonical JSON with a key the platform lists; tampering breaks it.
    for (const v of result.verdicts) {
      const signed = await json<{ payload: Record<string, unknown>; signature: JsonSignature; publicKeyPem: string }>(
        await client.get(`/api/v1/tasks/${id}/artifacts/${v.verdictRef.sha256}`),
      );
      expect(signed.signature).toEqual(v.signature);
      const session = await json<{ signingKeys: { keyId: string; publicKeyPem: string }[] }>(
        await client.get(`/api/v1/council/sessions/${v.sessionId}`),
      );
      const key = session.signingKeys.find((k) => k.keyId === v.signature.keyId)!;
      expect(key.publicKeyPem).toBe(signed.publicKeyPem);
      expect(verifyJson(signed.payload, signed.signature, key.publicKeyPem)).toBe(true);
      expect(verifyJson({ ...signed.payload, subjectHash: '0'.repeat(64) }, signed.signature, key.publicKeyPem)).toBe(
        false,
      );
    }

    // Where verdicts are read, each says whether its signature verifies and with which key.
    expect(done.verdictChecks!.map((c) => [c.phase, c.verified, c.keyId])).toEqual(
      result.verdicts.map((v) => [v.phase, true, v.signature.keyId]),
    );
    const sessionView = await json<{ verdictCheck: VerdictCheck }>(
      await client.get(`/api/v1/council/sessions/${result.verdicts[0]!.sessionId}`),
    );
    expect(sessionView.verdictCheck).toMatchObject({ verified: true, keyId: result.verdicts[0]!.signature.keyId });
    // A verdict shown otherwise than signed, or signed over another payload, is flagged, never shown as valid.
    const record = result.verdicts[1]!;
    const altered = { ...record, verdict: { ...record.verdict, decision: 'reject' as const } };
    expect(await checkVerdict(workers.db, 'default', altered)).toMatchObject({
      verified: false,
      reason: 'the verdict shown differs from the verdict signed',
    });
    const signedText = await (await client.get(`/api/v1/tasks/${id}/artifacts/${record.verdictRef.sha256}`)).text();
    const forged = JSON.parse(signedText) as { payload: { verdict: { score: number } } };
    forged.payload.verdict.score = 0.125; // the verdict signed scored otherwise
    const forgedRef = await putArtifact(workers.db, 'default', JSON.stringify(forged), 'application/json');
    expect(await checkVerdict(workers.db, 'default', { ...record, verdictRef: forgedRef })).toMatchObject({
      verified: false,
      keyId: record.signature.keyId,
      reason: `the signature does not verify with key ${record.signature.keyId}`,
    });
    expect(
      await checkVerdict(workers.db, 'default', {
        ...record,
        signature: { ...record.signature, keyId: 'f'.repeat(16) },
      }),
    ).toMatchObject({ verified: false, reason: `key ${'f'.repeat(16)} is not a registered signing key` });

    const audit = await json<{ events: { action: string; payload: Record<string, unknown> }[] }>(
      await client.get(`/api/v1/tasks/${id}/audit`),
    );
    const actions = audit.events.map((e) => e.action);
    expect(actions[0]).toBe('task.started');
    expect(actions.at(-1)).toBe('task.completed');
    for (const a of ['workspace.prepared', 'step.applied', 'gate.evaluated']) expect(actions).toContain(a);
    expect(actions.filter((a) => a === 'council.verdict')).toHaveLength(2);
    const spent = audit.events.find((e) => e.action === 'budget.spent')!;
    expect(spent.payload).toMatchObject({ steps: 1, tokens: 0, costUsd: 0, limits: { steps: 100 } });
    expect(await verifyAuditChain(workers.db)).toMatchObject({ ok: true });

    const artifacts = await json<{ items: { name: string | null }[] }>(
      await client.get(`/api/v1/tasks/${id}/artifacts`),
    );
    const names = artifacts.items.map((a) => a.name);
    for (const n of ['spec', 'diff-1', 'gate-tests-1', 'gate-tests-report-1', 'provenance']) expect(names).toContain(n);
    // The reports are evidence, not part of the change.
    expect(result.filesChanged).toEqual(['src/calculator.js']);
  });

  it('when a gate exits 0 without a report that shows checks passing, then it fails: no test ran, or no report at all', async () => {
    const workspace = await sampleRepo();
    await rm(path.join(workspace, 'test'), { recursive: true });
    await run('git', ['-c', 'user.name=t', '-c', 'user.email=t@x', 'commit', '-qam', 'no tests'], { cwd: workspace });
    // The hurried API: the council's `modify` goes to a person, whom nobody answers here.
    const done = await hurriedClient.finished(
      await hurriedClient.submit({
        title: 'No tests at all',
        workspace,
        spec: calculatorSpec({
          gates: [
            { name: 'tests', run: ['node', '--test'] },
            { name: 'smoke', kind: 'custom', run: ['true'] },
            { name: 'quiet', kind: 'lint', run: ['node', '-e', ''] },
          ],
        }),
      }),
    );
    expect(done.status).toBe('failed');
    expect(done.result!.reason).toMatch(
      /^the council asked for changes \(.*tests\.failed.*\) and nobody decided on the result within 1500 ms/,
    );
    const gate = (name: string) => done.result!.gates.find((g) => g.name === name)!;
    const evaluation = (name: string) => done.result!.evaluations.find((e) => e.gate === name)!;
    // `node --test` with no test file exits 0; its report shows that no test ran.
    expect(gate('tests')).toMatchObject({ exitCode: 0, passed: false, tests: { ran: 0, passed: 0, failed: 0 } });
    expect(evaluation('tests')).toMatchObject({ status: 'fail' });
    expect(evaluation('tests').reason).toContain('no test ran');
    for (const name of ['smoke', 'quiet']) {
      expect(gate(name)).toMatchObject({ exitCode: 0, missing: true });
      expect(evaluation(name).status).toBe('fail');
      expect(evaluation(name).reason).toMatch(/no report at \.agency\/gates\/.+: this run wrote none/);
    }
  });

  it('when events are streamed, then they arrive as server-sent events and a reconnect with Last-Event-ID resumes after it', async () => {
    const id = await client.submit({ title: 'Fix average() again', workspace: await sampleRepo() });
    const read = async (lastEventId?: string): Promise<{ id: string; event: string }[]> => {
      const res = await api.fetch(`/api/v1/tasks/${id}/events`, {
        headers: lastEventId ? { 'last-event-id': lastEventId } : {},
      });
      expect(res.headers.get('content-type')).toContain('text/event-stream');
      const text = await res.text(); // the stream ends after the task's final event
      return text
        .split('\n\n')
        .filter((block) => block.startsWith('id: '))
        .map((block) => ({ id: /^id: (\d+)/.exec(block)![1]!, event: /\nevent: (.+)/.exec(block)![1]! }));
    };
    const all = await read();
    expect(all[0]?.event).toBe('task.started');
    expect(all.at(-1)?.event).toBe('task.completed');
    const middle = all[Math.floor(all.length / 2)]!;
    const resumed = await read(middle.id);
    expect(resumed).toEqual(all.slice(all.indexOf(middle) + 1));
  });

  it('when strict mode asks for approval, then a stale hash is refused, the current one accepted, and both attempts recorded', async () => {
    const id = await client.submit({
      title: 'Approve me',
      workspace: await sampleRepo(),
      mode: 'strict',
      spec: calculatorSpec(),
    });
    const waiting = await client.waitFor(id, 'awaiting_approval');
    const pending = waiting.progress!.pendingApproval!;
    expect(pending.kind).toBe('plan');
    expect(pending.hash).toBe(waiting.progress!.planHash);

    const stale = await client.post(`/api/v1/tasks/${id}/approve`, { hash: 'f'.repeat(64) });
    expect(stale.status).toBe(409);
    const refused = await json<{ accepted: boolean; detail: string }>(stale);
    expect(refused.accepted).toBe(false);
    expect(refused.detail).toContain('stale');

    const session = waiting.progress!.councilSessions[0]!;
    const accepted = await client.post(`/api/v1/council/sessions/${session}/approve`, {
      hash: pending.hash,
      reason: 'looks right',
    });
    expect(accepted.status).toBe(200);
    expect(await json(accepted)).toMatchObject({ accepted: true });

    const done = await client.finished(id);
    expect(done.status).toBe('completed');
    expect(done.result!.approvals.map((a) => [a.decision, a.accepted, a.approver])).toEqual([
      ['approve', false, api.subject],
      ['approve', true, api.subject],
    ]);
    const actions = (await listAuditEvents(workers.db, { tenantId: 'default', workflowId: done.workflowId })).map(
      (e) => e.action,
    );
    expect(actions).toEqual(
      expect.arrayContaining(['approval.requested.plan', 'approval.refused', 'approval.accepted']),
    );
  });

  it('when nobody approves before the deadline, then the task ends rejected', async () => {
    const id = await hurriedClient.submit({
      title: 'Nobody answers',
      workspace: await sampleRepo(),
      mode: 'strict',
      spec: calculatorSpec(),
    });
    const done = await hurriedClient.finished(id);
    expect(done.status).toBe('failed');
    expect(done.result!.reason).toBe('rejected: no approval within 1500 ms');
    expect(done.result!.steps).toEqual([]);
  });

  it('when the change touches files outside its scope, then the council rejects it on the actual diff', async () => {
    const id = await client.submit({
      title: 'Stray edit',
      workspace: await sampleRepo(),
      spec: calculatorSpec({
        steps: [
          ...(calculatorSpec().steps as unknown[]),
          // Written by a command, so the plan does not show it: only the diff does.
          { kind: 'command', run: ['node', '-e', "require('fs').writeFileSync('README.md', 'changed')"] },
        ],
      }),
    });
    const done = await client.finished(id);
    expect(done.status).toBe('failed');
    const verdict = done.result!.verdicts.find((v) => v.phase === 'result')!.verdict;
    expect(verdict.decision).toBe('reject');
    expect(verdict.constitutional_refs).toContain('scope.outside-in');
    expect(done.result!.reason).toContain('README.md is outside scope.in');
  });

  it('when a hard-coded secret is planned, then the plan is vetoed before anything runs', async () => {
    const id = await client.submit({
      title: 'Leaky plan',
      workspace: await sampleRepo(),
      spec: calculatorSpec({
        steps: [
          ...(calculatorSpec().steps as unknown[]),
          { kind: 'write_file', path: 'src/config.js', content: `export const key = '${'AKIA'}ABCDEFGHIJKLMNOP';\n` },
        ],
      }),
    });
    const done = await client.finished(id);
    expect(done.status).toBe('failed');
    const verdict = done.result!.verdicts.find((v) => v.phase === 'plan')!.verdict;
    expect(verdict.decision).toBe('reject');
    expect(verdict.constitutional_refs.some((r) => r.startsWith('secret.'))).toBe(true);
    expect(done.result!.steps).toEqual([]);
  });

  it('when a command writes a secret the plan did not show, then the critical violation on the diff vetoes the result', async () => {
    const id = await client.submit({
      title: 'Leaky command',
      workspace: await sampleRepo(),
      spec: calculatorSpec({
        steps: [
          ...(calculatorSpec().steps as unknown[]),
          {
            kind: 'command',
            run: [
              'node',
              '-e',
              "require('fs').writeFileSync('src/config.js', 'export const key = \"' + 'AK' + 'IA' + 'ABCDEFGHIJKLMNOP\";\\n')",
            ],
          },
        ],
      }),
    });
    const done = await client.finished(id);
    expect(done.failure).toBeUndefined();
    expect(done.status).toBe('failed');
    expect(done.result!.verdicts.find((v) => v.phase === 'plan')!.verdict.decision).toBe('accept');
    const verdict = done.result!.verdicts.find((v) => v.phase === 'result')!.verdict;
    expect(verdict.decision).toBe('reject');
    expect(verdict.constitutional_refs.some((r) => r.startsWith('secret.'))).toBe(true);
    // The veto holds although most judges passed.
    expect(verdict.votes.filter((v) => v.verdict === 'pass').length).toBeGreaterThanOrEqual(2);
  });

  it('when a rule judge dissents, then the deterministic council decides in one round, asks for changes, and a clarified spec completes', async () => {
    const id = await client.submit({
      title: 'Loosen permissions',
      workspace: await sampleRepo(),
      spec: calculatorSpec({
        steps: [...(calculatorSpec().steps as unknown[]), { kind: 'command', run: ['chmod', '777', 'src'] }],
      }),
    });
    const waiting = await client.waitFor(id, 'awaiting_clarification');
    expect(waiting.progress!.pendingClarification!.reasons.join(' ')).toContain('commands.chmod-777');
    const sessionId = waiting.progress!.councilSessions[0]!;
    const session = await json<{ session: CouncilSession }>(await client.get(`/api/v1/council/sessions/${sessionId}`));
    // The same rules on the same plan vote the same way: no revise round re-votes an unchanged plan.
    expect(session.session.rounds).toHaveLength(1);
    expect(session.session.plans).toEqual([waiting.progress!.planHash]);
    expect(session.session.outcome).toMatchObject({
      kind: 'final',
      record: { verdict: { decision: 'modify', rounds: 1 } },
    });

    expect((await client.post(`/api/v1/tasks/${id}/clarify`, { spec: calculatorSpec() })).status).toBe(202);
    const done = await client.finished(id);
    expect(done.status).toBe('completed');
    expect(done.result!.verdicts.map((v) => v.verdict.decision)).toEqual(['modify', 'accept', 'accept']);
  });

  it("when the diff is riskier than the plan and the council asks for changes offline, then the stricter tier applies and a person decides with the judges' reasons", async () => {
    // A command writes what no planned step shows: billing code (tier 1 by its path) with a DROP TABLE.
    const created = await client.post('/api/v1/waivers', {
      id: 'WV-1501',
      gates: ['contracts'],
      reason: 'the sample has no contract checks',
      impact_level: 'low',
      mitigation: 'reviewed by hand',
      expires_at: new Date(Date.now() + 86_400_000).toISOString(),
    });
    expect(created.status).toBe(201);
    expect((await client.post('/api/v1/waivers/WV-1501/approve', {})).status).toBe(200);
    const id = await client.submit({
      title: 'Riskier than planned',
      workspace: await sampleRepo(),
      spec: calculatorSpec({
        waiver_ids: ['WV-1501'],
        steps: [
          ...(calculatorSpec().steps as unknown[]),
          {
            kind: 'command',
            run: [
              'node',
              '-e',
              // Spelled in pieces: the plan shows this command, and only the diff shows what it writes.
              "const fs = require('fs'); const d = 'src/' + 'bill' + 'ing'; fs.mkdirSync(d); fs.writeFileSync(d + '/cleanup.sql', 'DR' + 'OP TABLE invoices;\\n')",
            ],
          },
        ],
      }),
    });
    const waiting = await eventually(
      async () => {
        const t = await client.task(id);
        return t.status === 'awaiting_approval' || t.temporalStatus !== 'RUNNING' ? t : undefined;
      },
      { timeoutMs: 90_000, what: 'the result to wait for a person' },
    );
    expect([waiting.status, waiting.result?.reason]).toEqual(['awaiting_approval', undefined]);
    const pending = waiting.progress!.pendingApproval!;
    expect(pending.kind).toBe('result');
    expect(pending.reasons[0]).toMatch(/^the council asked for changes to the result: .*sql\.drop-table/);
    expect(pending.reasons.some((r) => r.startsWith('technical: '))).toBe(true);
    expect(waiting.progress!.riskTier).toBe(1);
    const approved = await client.post(`/api/v1/tasks/${id}/approve`, { hash: pending.hash, reason: 'a test table' });
    expect(approved.status).toBe(200);
    const done = await client.finished(id);
    expect(done.status).toBe('completed');
    const result = done.result!;
    expect(result.risk).toMatchObject({ tier: 1, planTier: 3, basis: 'diff' });
    expect(result.verdicts.map((v) => [v.phase, v.verdict.decision, v.verdict.rounds])).toEqual([
      ['plan', 'accept', 1],
      ['result', 'modify', 1],
    ]);
    // The gates were judged again at tier 1: its thresholds, and its required contracts gate (waived here).
    expect(result.evaluations.find((e) => e.gate === 'coverage')).toMatchObject({ status: 'pass', threshold: 0.9 });
    expect(result.evaluations.find((e) => e.gate === 'contracts')).toMatchObject({ status: 'waived' });
    expect(result.approvals.map((a) => [a.decision, a.accepted])).toEqual([['approve', true]]);
  });

  it('when the council is split two against two under majority, then it escalates to a person, never deciding at random', async () => {
    const id = await client.submit({
      title: 'Split decision',
      workspace: await sampleRepo(),
      consensus: 'majority',
      spec: calculatorSpec({
        risk_tier: 2,
        contracts: [{ type: 'openapi', path: 'api/openapi.yaml' }],
        acceptance: [],
        gates: [{ name: 'tests', run: ['node', '--test'] }],
        steps: [{ kind: 'command', run: ['git', 'push', '--force'] }],
      }),
    });
    const waiting = await client.waitFor(id, 'awaiting_approval');
    expect(waiting.progress!.pendingApproval!.reasons[0]).toContain('majority vote tied');
    const rejected = await client.post(`/api/v1/tasks/${id}/reject`, {
      hash: waiting.progress!.pendingApproval!.hash,
      reason: 'no force pushes',
    });
    expect(rejected.status).toBe(200);
    const done = await client.finished(id);
    expect(done.status).toBe('failed');
    expect(done.result!.reason).toBe(`rejected by ${api.subject}: no force pushes`);
    expect(done.result!.steps).toEqual([]);
  });

  it('when a task is paused, then no further step starts until it is resumed', async () => {
    const id = await client.submit({
      title: 'Pause me',
      workspace: await sampleRepo(),
      spec: calculatorSpec({
        scope: { in: ['src/', 'slow.txt'], out: [] },
        steps: [
          {
            kind: 'command',
            run: ['node', '-e', "setTimeout(() => require('fs').writeFileSync('slow.txt', 's'), 1500)"],
          },
          ...(calculatorSpec().steps as unknown[]),
        ],
      }),
    });
    const workflowId = (await client.task(id)).workflowId;
    const temporal = await temporalClient(config);
    // Pause while the first (slow) step is running.
    await eventually(
      async () => (await runningActivities(temporal, executionWorkflowId(workflowId, 1))).includes('applyStep'),
      {
        what: 'the first step to run',
      },
    );
    expect((await client.post(`/api/v1/tasks/${id}/pause`)).status).toBe(202);
    const paused = await client.waitFor(id, 'paused');
    expect(paused.progress!.paused).toBe(true);
    // The running step finishes; the next one must not start while paused.
    const applied = async () =>
      (await listAuditEvents(workers.db, { tenantId: 'default', workflowId })).filter(
        (e) => e.action === 'step.applied',
      ).length;
    await eventually(async () => (await applied()) === 1, { what: 'the running step to finish' });
    // A negative observation needs a window: two more seconds with no second step.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await applied()).toBe(1);
    expect((await client.task(id)).status).toBe('paused');
    expect(await runningActivities(temporal, executionWorkflowId(workflowId, 1))).toEqual([]);
    await temporal.connection.close();

    expect((await client.post(`/api/v1/tasks/${id}/resume`)).status).toBe(202);
    const done = await client.finished(id);
    expect(done.status).toBe('completed');
    expect(await applied()).toBe(2);
  });

  it('when the step budget runs out, then the task stops in a clear state', async () => {
    const id = await client.submit({
      title: 'Too many steps',
      workspace: await sampleRepo(),
      budgets: { max_steps: 1 },
      spec: calculatorSpec({
        steps: [
          ...(calculatorSpec().steps as unknown[]),
          { kind: 'write_file', path: 'src/extra.js', content: 'export {};\n' },
        ],
      }),
    });
    const done = await client.finished(id);
    expect(done.status).toBe('failed');
    expect(done.result!.reason).toMatch(/^budget exhausted: budget exhausted \(steps\) before step 2/);
    expect(done.result!.usage.steps).toBe(1);
  });

  it('when a budget waiver is active the oversized change passes, and when it has expired it is ignored', async () => {
    const tight = (waiver: string) =>
      calculatorSpec({
        change_budget: { max_files: 1, max_loc: 1 },
        waiver_ids: [waiver],
        steps: [
          ...(calculatorSpec().steps as unknown[]),
          { kind: 'write_file', path: 'src/extra.js', content: 'export const a = 1;\nexport const b = 2;\n' },
        ],
      });
    const created = await client.post('/api/v1/waivers', {
      id: 'WV-1001',
      gates: ['budget'],
      reason: 'the fix needs a helper module',
      impact_level: 'low',
      mitigation: 'reviewed by hand',
      expires_at: new Date(Date.now() + 86_400_000).toISOString(),
      budget_delta: { max_files: 2, max_loc: 20 },
    });
    expect(created.status).toBe(201);
    expect((await client.post('/api/v1/waivers/WV-1001/approve', {})).status).toBe(200);
    // An expired waiver cannot be created through the API; this one is written as if it had lapsed.
    await workers.db.query(
      `INSERT INTO waivers (tenant_id, id, gates, reason, impact_level, mitigation, budget_delta, status, created_by, approved_by, created_at, expires_at)
       VALUES ('default', 'WV-1002', '{budget}', 'lapsed waiver', 'low', 'none', '{"max_files":2,"max_loc":20}', 'active', 'user:a', 'user:b', now() - interval '10 days', now() - interval '1 day')`,
    );

    const withWaiver = await client.finished(
      await client.submit({ title: 'Waived', workspace: await sampleRepo(), spec: tight('WV-1001') }),
    );
    expect(withWaiver.status).toBe('completed');
    const expired = await client.finished(
      await client.submit({ title: 'Not waived', workspace: await sampleRepo(), spec: tight('WV-1002') }),
    );
    expect(expired.status).toBe('failed');
    expect(expired.result!.reason).toContain('budget.');
  });

  it('when the mode is dry-run, then the plan is judged and nothing is executed', async () => {
    const done = await client.finished(
      await client.submit({
        title: 'Just look',
        workspace: await sampleRepo(),
        mode: 'dry-run',
        spec: calculatorSpec(),
      }),
    );
    expect(done.status).toBe('completed');
    expect(done.result!.reason).toBe('dry run: plan accepted by the council; nothing executed');
    expect(done.result!.verdicts.map((v) => v.phase)).toEqual(['plan']);
    expect(done.result!.steps).toEqual([]);
    expect(done.result!.diffRef).toBeUndefined();
  });

  it('when the task has no spec and no model is configured, then it waits for clarify, which completes it', async () => {
    const workspace = await sampleRepo();
    await rm(path.join(workspace, '.caws'), { recursive: true });
    await run('git', ['-c', 'user.name=t', '-c', 'user.email=t@x', 'commit', '-qam', 'no spec'], { cwd: workspace });
    const id = await client.submit({ title: 'Make it better somehow', workspace });
    const waiting = await client.waitFor(id, 'awaiting_clarification');
    const reasons = waiting.progress!.pendingClarification!.reasons;
    expect(reasons[0]).toContain('no language model is configured');
    // Offline nothing guesses what the request leaves open: it is named.
    expect(reasons.slice(1, 4)).toEqual([
      'no acceptance criteria: nothing says when the change is done (given, when, then)',
      'no scope: no file or directory the change may touch is named',
      'no gate: nothing says how the change will be checked (tests, lint, types)',
    ]);

    const bad = await client.post(`/api/v1/tasks/${id}/clarify`, { spec: 'id: [unclosed' });
    expect(bad.status).toBe(400);
    expect((await json<{ detail: string }>(bad)).detail).toMatch(/line \d+, column \d+/);

    expect((await client.post(`/api/v1/tasks/${id}/clarify`, { spec: calculatorSpec() })).status).toBe(202);
    const done = await client.finished(id);
    expect(done.status).toBe('completed');
    expect((await client.post(`/api/v1/tasks/${id}/clarify`, { spec: calculatorSpec() })).status).toBe(409);
  });

  it('when no clarification arrives before the deadline, then the task fails saying so', async () => {
    const workspace = await sampleRepo();
    await rm(path.join(workspace, '.caws'), { recursive: true });
    await run('git', ['-c', 'user.name=t', '-c', 'user.email=t@x', 'commit', '-qam', 'no spec'], { cwd: workspace });
    const done = await hurriedClient.finished(await hurriedClient.submit({ title: 'Vague', workspace }));
    expect(done.status).toBe('failed');
    expect(done.result!.reason).toMatch(/^no clarification before the deadline/);
  });
});
