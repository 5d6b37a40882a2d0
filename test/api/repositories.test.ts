/**
 * Repositories as tenant resources (§1 of issue 13), against the real Temporal server and PostgreSQL: registration
 * confined to the tenant's file:// roots (a path outside, `..`, a symlink leading out: refused, and again at clone
 * time), another tenant's repository a 404 (read, delete, start a task), the deprecated `workspace` refused outside
 * LOCAL_WORKSPACE_ROOTS, an https repository whose token (by secret reference) reaches the git server but never the
 * workflow histories or the logs, delivery of an accepted result as a branch pushed to a bare repository, and a
 * repository's registered gate commands run for its tasks' required gates in place of the spec's and the tenant's.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, ensureTenant } from '../../common/api-keys.js';
import { getArtifact } from '../../common/artifacts.js';
import { createLogger } from '../../common/logger.js';
import { taskWorkflowId } from '../../workflows/task/definitions.js';
import { startGitHttpsServer, type GitHttpsServer } from '../helpers/git-https-server.js';
import { json, sampleRepo, useStack, type RunningApi } from '../helpers/stack.js';
import { calculatorSpec, taskClient } from '../helpers/tasks.js';

const run = promisify(execFile);
const TOKEN = `tok-${randomUUID()}`;
const SECRET_REF = `AGENCY_TEST_REPO_TOKEN_${randomUUID().slice(0, 8).toUpperCase().replace(/-/g, '_')}`;

describe('repositories: tenant resources, confined roots, credentials by reference, delivery', () => {
  let api: RunningApi;
  let git: GitHttpsServer;
  let root: string; // tenant default's file:// root
  let outside: string; // a repository outside every root
  let otherKey: string;
  const logs: string[] = [];
  const tasks = taskClient(() => api);

  const as = (key: string, url: string, init: RequestInit = {}) =>
    fetch(`${api.url}${url}`, {
      ...init,
      headers: { 'x-api-key': key, 'content-type': 'application/json', ...(init.headers as Record<string, string>) },
    });
  const register = (body: Record<string, unknown>) =>
    api.fetch('/api/v1/repositories', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString());
      done();
    },
  });
  const log = createLogger('debug', {}, sink);

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'agency-repo-root-'));
    outside = await sampleRepo();
    const served = await mkdtemp(path.join(os.tmpdir(), 'agency-repo-served-'));
    await run('git', ['clone', '--quiet', '--bare', outside, path.join(served, 'calc.git')]);
    await run('git', ['config', 'http.receivepack', 'false'], { cwd: path.join(served, 'calc.git') });
    git = await startGitHttpsServer(served, TOKEN);
    // The execution workers (in this process) hold the secret and trust the test server's certificate.
    process.env[SECRET_REF] = TOKEN;
    process.env.GIT_SSL_CAINFO = git.caFile;
  });
  afterAll(async () => {
    await git?.close();
    delete process.env[SECRET_REF];
    delete process.env.GIT_SSL_CAINFO;
    await rm(root, { recursive: true, force: true });
  });
  useStack((stack) => ({ api } = stack), {
    env: () => ({
      REPOSITORY_FILE_ROOTS: JSON.stringify({ default: [root] }),
      LOCAL_WORKSPACE_ROOTS: JSON.stringify({ default: [root] }),
      LOG_LEVEL: 'debug',
    }),
    log,
  });
  beforeAll(async () => {
    const tenant = `repo-${randomUUID().slice(0, 8)}`;
    await ensureTenant(api.db, tenant, 'Another tenant');
    otherKey = (await createApiKey(api.db, { tenantId: tenant, name: 'other-admin', roles: ['admin'] })).key;
  });

  it('when a file:// path is outside the roots, climbs out with .., or is a symlink leading out, then 400', async () => {
    const inside = path.join(root, 'calc');
    await run('git', ['clone', '--quiet', outside, inside]);
    await symlink(outside, path.join(root, 'escape'));
    const refused = [
      { id: 'outside', url: `file://${outside}` },
      { id: 'dotdot', url: `file://${root}/../${path.basename(outside)}` },
      { id: 'symlink', url: `file://${root}/escape` },
      { id: 'userinfo', url: 'https://user:pw@example.com/x.git' },
      { id: 'scheme', url: 'git://example.com/x.git' },
      { id: 'pasted-secret', url: 'https://example.com/x.git', auth_secret_ref: 'ghp_abc123' },
    ];
    for (const body of refused) {
      const res = await register(body);
      expect(res.status, body.id).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
    }
    const symlinked = await json<{ detail: string }>(await register({ id: 'symlink', url: `file://${root}/escape` }));
    expect(symlinked.detail).toMatch(/leads outside the file:\/\/ roots/);
    // Another tenant has no roots at all.
    const other = await as(otherKey, '/api/v1/repositories', {
      method: 'POST',
      body: JSON.stringify({ id: 'calc', url: `file://${inside}` }),
    });
    expect(other.status).toBe(400);
    expect((await json<{ detail: string }>(other)).detail).toMatch(/no file:\/\/ roots/);

    const ok = await register({ id: 'calc', url: `file://${inside}` });
    expect(ok.status).toBe(201);
    expect(await json(ok)).toMatchObject({ id: 'calc', url: `file://${inside}`, default_ref: 'main' });
    expect((await register({ id: 'calc', url: `file://${inside}` })).status).toBe(409);
  });

  it("when another tenant reads, deletes or starts a task on a tenant's repository, then 404", async () => {
    expect((await api.fetch('/api/v1/repositories/calc')).status).toBe(200);
    expect((await as(otherKey, '/api/v1/repositories/calc')).status).toBe(404);
    expect((await as(otherKey, '/api/v1/repositories/calc', { method: 'DELETE' })).status).toBe(404);
    expect(await json(await as(otherKey, '/api/v1/repositories'))).toEqual({ items: [] });
    const start = await as(otherKey, '/api/v1/tasks', {
      method: 'POST',
      body: JSON.stringify({ title: 'Not mine', repository: 'calc', spec: calculatorSpec() }),
    });
    expect(start.status).toBe(404);
    expect(await json(start)).toMatchObject({ status: 404, detail: 'no repository calc' });
    // A URL or path in place of a registered id is refused before anything starts.
    const url = await tasks.post('/api/v1/tasks', { title: 'By URL', repository: `file://${outside}` });
    expect(url.status).toBe(400);
    // Still there for its own tenant.
    expect((await api.fetch('/api/v1/repositories/calc')).status).toBe(200);
  });

  it('when a task names a registered repository and ref, then it is fetched and completes', async () => {
    const id = await tasks.submit({
      title: 'Fix average() from the repository',
      repository: 'calc',
      ref: 'main',
      spec: calculatorSpec(),
    });
    const done = await tasks.finished(id);
    expect(done.result).toMatchObject({ status: 'completed' });
    const { rows } = await api.db.query<{ payload: { commit: string; ref: string } }>(
      "SELECT payload FROM audit_events WHERE workflow_id = $1 AND action = 'repository.fetched'",
      [taskWorkflowId(id)],
    );
    expect(rows[0]?.payload).toMatchObject({ ref: 'main' });
  });

  it("when a repository is registered with its own gate commands, then its tasks' required gates run those, not the spec's or the tenant's", async () => {
    const inside = path.join(root, 'gated');
    await run('git', ['clone', '--quiet', outside, inside]);
    // Only the acceptance test, into a report of its own name: a run of the spec's command (`node --test`, no report)
    // or of the tenant's default (all three tests, junit.xml) would show otherwise in the gate's report.
    const tests = {
      run: [
        'node',
        '--test',
        '--test-name-pattern=^A1:',
        '--test-reporter=junit',
        '--test-reporter-destination={out}/registered.xml',
      ],
      report: 'registered.xml',
    };
    const res = await register({ id: 'gated', url: `file://${inside}`, gates: { tests } });
    expect(res.status).toBe(201);
    expect(await json(res)).toMatchObject({ id: 'gated', gates: { tests } });
    expect(await json(await api.fetch('/api/v1/repositories/gated'))).toMatchObject({ gates: { tests } });

    const spec = calculatorSpec();
    expect(spec.gates).toEqual([expect.objectContaining({ name: 'tests', run: ['node', '--test'] })]);
    const id = await tasks.submit({ title: 'Fix average() under registered gates', repository: 'gated', spec });
    const done = await tasks.finished(id);
    expect(done.result?.status, done.result?.reason).toBe('completed');
    const byKind = Object.fromEntries(done.result!.gates.map((g) => [g.kind, g]));
    expect(Object.keys(byKind).sort()).toEqual(['coverage', 'mutation', 'tests']);
    // The tests gate: the repository's command, its report read from the run's own output directory.
    expect(byKind.tests).toMatchObject({
      passed: true,
      source: 'repository',
      tests: { passed: 1, failed: 0, skipped: 2 },
      acceptance: [{ id: 'A1', passed: 1, failed: 0, skipped: 0 }],
    });
    expect(byKind.tests!.evidence).toMatch(/^\.agency\/gates\/tests-[^/]+\/registered\.xml: /);
    const report = await getArtifact(api.db, 'default', byKind.tests!.reportRef!.sha256);
    expect(report?.content.toString()).toContain('test name does not match pattern');
    // Kinds the repository left out fall back to the tenant's default.
    expect(byKind.coverage).toMatchObject({ passed: true, source: 'tenant' });
    expect(byKind.mutation).toMatchObject({ passed: true, source: 'tenant' });

    // Registered commands are validated: an unknown kind or a report path climbing out is a 400.
    for (const gates of [{ nonsense: tests }, { tests: { ...tests, report: '../x.xml' } }]) {
      const bad = await register({ id: `bad-${randomUUID().slice(0, 6)}`, url: `file://${inside}`, gates });
      expect(bad.status, JSON.stringify(gates)).toBe(400);
    }
  });

  it('when the repository becomes a symlink leading out after registration, then the task fails at clone time', async () => {
    const inside = path.join(root, 'moved');
    await run('git', ['clone', '--quiet', outside, inside]);
    expect((await register({ id: 'moved', url: `file://${inside}` })).status).toBe(201);
    await rm(inside, { recursive: true, force: true });
    await symlink(outside, inside);
    const id = await tasks.submit({ title: 'Escape after registration', repository: 'moved', spec: calculatorSpec() });
    const done = await tasks.finished(id);
    expect(done.result?.status).toBe('failed');
    expect(done.result?.reason).toMatch(/leads outside the file:\/\/ roots/);
  });

  it('when `workspace` is a local path outside LOCAL_WORKSPACE_ROOTS, or none are configured, then 400 saying what to do', async () => {
    const res = await tasks.post('/api/v1/tasks', {
      title: 'Platform checkout',
      workspace: process.cwd(),
      spec: calculatorSpec(),
    });
    expect(res.status).toBe(400);
    expect((await json<{ detail: string }>(res)).detail).toMatch(/not under a local root.*register the repository/);
    const viaSymlink = await tasks.post('/api/v1/tasks', {
      title: 'Through a link',
      workspace: path.join(root, 'escape'),
      spec: calculatorSpec(),
    });
    expect(viaSymlink.status).toBe(400);
    const other = await as(otherKey, '/api/v1/tasks', {
      method: 'POST',
      body: JSON.stringify({ title: 'Another tenant', workspace: path.join(root, 'calc'), spec: calculatorSpec() }),
    });
    expect(other.status).toBe(400);
    expect((await json<{ detail: string }>(other)).detail).toMatch(/local workspace path is refused/);
    // Under the root: accepted (the migration path).
    const allowed = await tasks.post('/api/v1/tasks', {
      title: 'Under the root',
      workspace: path.join(root, 'calc'),
      mode: 'dry-run',
      spec: calculatorSpec(),
    });
    expect(allowed.status).toBe(202);
  });

  it('when an https repository needs a token, then git gets it by reference and it is in no history and no log', async () => {
    expect(
      (await register({ id: 'remote', url: `${git.url}calc.git`, auth_secret_ref: SECRET_REF, default_ref: 'main' }))
        .status,
    ).toBe(201);
    const id = await tasks.submit({ title: 'Fix average() over https', repository: 'remote', spec: calculatorSpec() });
    const done = await tasks.finished(id);
    expect(done.result).toMatchObject({ status: 'completed' });
    expect(git.authorizations).toContain(`Bearer ${TOKEN}`);

    // A wrong token: the task fails saying so, without the token.
    process.env[SECRET_REF] = `${TOKEN}-wrong`;
    const badId = await tasks.submit({ title: 'Wrong token', repository: 'remote', spec: calculatorSpec() });
    const bad = await tasks.finished(badId);
    process.env[SECRET_REF] = TOKEN;
    expect(bad.result?.status).toBe('failed');
    expect(bad.result?.reason).toMatch(/git .*fetch.* failed/);
    expect(bad.result?.reason).not.toContain(TOKEN);

    const histories: string[] = [];
    for (const taskId of [id, badId]) {
      const workflows = api.temporal.workflow.list({ query: `WorkflowId STARTS_WITH '${taskWorkflowId(taskId)}'` });
      for await (const w of workflows) {
        const history = JSON.stringify(await api.temporal.workflow.getHandle(w.workflowId, w.runId).fetchHistory());
        // Payloads are base64 in the history's JSON: decoded, so the search sees what they carry.
        histories.push(
          JSON.stringify(JSON.parse(history), (k, v: unknown) =>
            k === 'data' && typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : v,
          ),
        );
      }
    }
    expect(histories.length).toBeGreaterThanOrEqual(4); // the tasks, their councils and executions
    expect(histories.join('\n')).toContain(SECRET_REF); // the reference travels…
    for (const h of histories) expect(h).not.toContain(TOKEN); // …the secret never does
    const captured = logs.join('');
    expect(captured).toContain('repository fetched');
    expect(captured).not.toContain(TOKEN);
    const { rows } = await api.db.query<{ n: string }>(
      'SELECT count(*) AS n FROM audit_events WHERE payload::text LIKE $1',
      [`%${TOKEN}%`],
    );
    expect(Number(rows[0]!.n)).toBe(0);
  });

  it('when delivery is asked for, then the result is pushed as agency/<task id> with the task and its verdicts', async () => {
    const bare = path.join(root, 'deliver.git');
    await run('git', ['clone', '--quiet', '--bare', outside, bare]);
    const base = (await run('git', ['rev-parse', 'main'], { cwd: bare })).stdout.trim();
    expect((await register({ id: 'deliver', url: `file://${bare}` })).status).toBe(201);
    const id = await tasks.submit({
      title: 'Fix average() and deliver it',
      repository: 'deliver',
      deliver: { branch: true },
      spec: calculatorSpec(),
    });
    const done = await tasks.finished(id);
    expect(done.result).toMatchObject({
      status: 'completed',
      delivery: { repository: 'deliver', branch: `agency/${id}` },
    });
    const branch = `agency/${id}`;
    const message = (await run('git', ['log', '-1', '--format=%B', branch], { cwd: bare })).stdout;
    expect(message).toContain(`Task ${id}`);
    expect(message).toMatch(/- plan: accept/);
    expect(message).toMatch(/- result: accept/);
    expect((await run('git', ['rev-parse', `${branch}^`], { cwd: bare })).stdout.trim()).toBe(base);
    expect((await run('git', ['rev-parse', branch], { cwd: bare })).stdout.trim()).toBe(done.result?.delivery?.commit);
    const file = (await run('git', ['show', `${branch}:src/calculator.js`], { cwd: bare })).stdout;
    expect(file).toContain('return sum(values) / values.length;');
    // The diff artifact stays as it is.
    expect(done.result?.diffRef).toBeDefined();
    // Without asking, nothing is pushed.
    const quiet = await tasks.submit({ title: 'No delivery', repository: 'deliver', spec: calculatorSpec() });
    expect((await tasks.finished(quiet)).result?.delivery).toBeUndefined();
    await mkdir(root, { recursive: true });
  });
});
