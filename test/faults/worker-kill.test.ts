import { afterAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { parseUnifiedDiff } from '../../activities/council/review.js';
import { getArtifact } from '../../common/artifacts.js';
import { createDb, type Db } from '../../common/db.js';
import { loadConfig } from '../../common/config.js';
import { executionWorkflowId } from '../../workflows/execution/definitions.js';
import {
  eventually,
  killHard,
  runningActivities,
  sampleRepo,
  spawnWorkerProcess,
  temporalClient,
  testEnv,
} from '../helpers/stack.js';
import { directTaskInput, slowStepSpec, startTaskWorkflow } from '../helpers/tasks.js';

describe('a worker process killed in the middle of a task', () => {
  const env = testEnv();
  const config = loadConfig(env);
  const children: ChildProcess[] = [];
  let db: Db | undefined;
  afterAll(async () => {
    await Promise.all(children.map(killHard));
    await db?.end();
  });

  it('when a new worker starts, then the task completes and no step or its side effect happens twice', async () => {
    db = createDb(config.DATABASE_URL);
    const client = await temporalClient(config);
    const workspace = await sampleRepo();
    const id = `kill-${Date.now()}`;
    const input = directTaskInput(id, workspace, 'Survive a worker crash', {
      id: 'FIX-7',
      title: 'Fix average and record each step run',
      risk_tier: 3,
      mode: 'fix',
      scope: { in: ['src/', 'ran-1.txt', 'ran-2.txt', 'done.txt'], out: [] },
      acceptance: [],
      invariants: [],
      steps: [
        { kind: 'replace', path: 'src/calculator.js', find: '(values.length - 1)', replace: 'values.length' },
        { kind: 'command', run: ['node', '-e', "require('fs').appendFileSync('ran-1.txt', 'x\\n')"] },
        {
          kind: 'command',
          run: ['node', '-e', "setTimeout(() => require('fs').appendFileSync('ran-2.txt', 'y\\n'), 4000)"],
        },
        { kind: 'write_file', path: 'done.txt', content: 'done\n' },
      ],
      gates: [{ name: 'tests', run: ['node', '--test'] }],
    });
    const first = spawnWorkerProcess(env);
    children.push(first);
    const handle = await startTaskWorkflow(client, config, input);

    // Wait until steps 0 and 1 are recorded and step 2 (the slow command) is running, then kill the process.
    await eventually(
      async () => {
        const { rows } = await db!.query('SELECT 1 FROM audit_events WHERE workflow_id = $1 AND action = $2', [
          handle.workflowId,
          'step.applied',
        ]);
        return (
          rows.length === 2 &&
          (await runningActivities(client, executionWorkflowId(handle.workflowId, 1))).includes('applyStep')
        );
      },
      { timeoutMs: 60_000, what: 'the slow step to be running' },
    );
    await killHard(first);

    const second = spawnWorkerProcess(env);
    children.push(second);
    const result = await handle.result();

    expect(result.status).toBe('completed');
    expect(result.steps.map((s) => s.ok)).toEqual([true, true, true, true]);
    // Each step's effect landed once: the diff shows exactly one line written by each command.
    const diff = (await getArtifact(db, 'default', result.diffRef!.sha256))!.content.toString();
    const files = Object.fromEntries(parseUnifiedDiff(diff).map((f) => [f.path, f.added.map((a) => a.text)]));
    expect(files['ran-1.txt']).toEqual(['x']);
    expect(files['ran-2.txt']).toEqual(['y']);
    expect(files['done.txt']).toEqual(['done']);
    // Each step is recorded once in PostgreSQL.
    const { rows } = await db.query<{ subject: string; n: string }>(
      `SELECT subject, count(*) AS n FROM audit_events WHERE workflow_id = $1 AND action = 'step.applied' GROUP BY subject ORDER BY subject`,
      [handle.workflowId],
    );
    expect(rows).toEqual([
      { subject: 'step-0', n: '1' },
      { subject: 'step-1', n: '1' },
      { subject: 'step-2', n: '1' },
      { subject: 'step-3', n: '1' },
    ]);
    // The slow step really was interrupted and run again on the new worker.
    const history = await client.workflow.getHandle(executionWorkflowId(handle.workflowId, 1)).fetchHistory();
    const attempts = history.events
      ?.filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 1);
    expect(Math.max(...(attempts ?? [1]))).toBeGreaterThan(1);
    await client.connection.close();
  });
});

describe('a worker process stopped with SIGTERM in the middle of a step', () => {
  const env = testEnv({ WORKER_SHUTDOWN_GRACE: '20s' });
  const config = loadConfig(env);
  const children: ChildProcess[] = [];
  let db: Db | undefined;
  afterAll(async () => {
    await Promise.all(children.map(killHard));
    await db?.end();
  });

  it('when it shuts down, then the in-flight step finishes within the grace time, the process exits 0, and another worker completes the task', async () => {
    db = createDb(config.DATABASE_URL);
    const client = await temporalClient(config);
    const input = directTaskInput(
      `term-${Date.now()}`,
      await sampleRepo(),
      'Survive a rolling restart',
      slowStepSpec('FIX-9', 'Fix average while the worker is replaced', 3000),
    );
    const first = spawnWorkerProcess(env);
    children.push(first);
    const exited = new Promise<number | null>((resolve) => first.once('exit', (code) => resolve(code)));
    const handle = await startTaskWorkflow(client, config, input);
    await eventually(
      async () => (await runningActivities(client, executionWorkflowId(handle.workflowId, 1))).includes('applyStep'),
      {
        timeoutMs: 60_000,
        what: 'the slow step to run',
      },
    );
    first.kill('SIGTERM');
    expect(await exited).toBe(0);
    // The step that was running when SIGTERM arrived finished and was recorded before the process left.
    const { rows } = await db.query<{ subject: string }>(
      `SELECT subject FROM audit_events WHERE workflow_id = $1 AND action = 'step.applied'`,
      [handle.workflowId],
    );
    expect(rows.map((r) => r.subject)).toEqual(['step-0']);

    children.push(spawnWorkerProcess(env));
    const result = await handle.result();
    expect(result.status).toBe('completed');
    const diff = (await getArtifact(db, 'default', result.diffRef!.sha256))!.content.toString();
    expect(
      parseUnifiedDiff(diff)
        .find((f) => f.path === 'slow.txt')
        ?.added.map((a) => a.text),
    ).toEqual(['s']);
    await client.connection.close();
  });
});
