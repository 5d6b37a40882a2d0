/**
 * Execution with workers that share no disk: each execution worker process has a private tmpfs at WORKSPACES_DIR
 * (test/helpers/private-worker.ts), as pods with their own emptyDir would. The other pools run in this process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import type { Client } from '@temporalio/client';
import { parseUnifiedDiff } from '../../activities/council/review.js';
import { getArtifact } from '../../common/artifacts.js';
import { loadConfig } from '../../common/config.js';
import type { Db } from '../../common/db.js';
import { executionWorkflowId } from '../../workflows/execution/definitions.js';
import type { TaskResult } from '../../workflows/task/definitions.js';
import type { WorkingSpec } from '../../workflows/task/spec.js';
import { spawnPrivateWorker } from '../helpers/private-worker.js';
import {
  eventually,
  killHard,
  sampleRepo,
  startWorkers,
  temporalClient,
  testEnv,
  type RunningWorkers,
} from '../helpers/stack.js';
import { directTaskInput, startTaskWorkflow } from '../helpers/tasks.js';

const env = testEnv({ EXECUTION_HANDOVER_TIMEOUT: '2s', COUNCIL_CONSENSUS_TIMEOUT: '20s' });
const config = loadConfig(env);
const executionEnv = { ...env, WORKER_QUEUES: 'execution' };

/** Fixes the calculator, then writes and appends files through a tool and commands (a slow one when asked). */
function spec(id: string, slowMs = 0): WorkingSpec {
  return {
    id: 'FIX-0042',
    title: 'Fix average on workers that share no disk',
    risk_tier: 3,
    mode: 'fix',
    scope: { in: ['src/', 'notes.txt', 'ran.txt', 'slow.txt'], out: [] },
    acceptance: [],
    invariants: [],
    steps: [
      { kind: 'replace', path: 'src/calculator.js', find: '(values.length - 1)', replace: 'values.length' },
      { kind: 'write_file', path: 'notes.txt', content: `task ${id}\n` },
      { kind: 'command', run: ['node', '-e', "require('fs').appendFileSync('ran.txt', 'x\\n')"] },
      {
        kind: 'command',
        run: ['node', '-e', `setTimeout(() => require('fs').appendFileSync('slow.txt', 's\\n'), ${slowMs})`],
      },
      { kind: 'replace', path: 'notes.txt', find: `task ${id}`, replace: `task ${id} done` },
    ],
    gates: [{ name: 'tests', run: ['node', '--test'] }],
  };
}

/** The files the task changed, with the lines it added. */
async function changes(db: Db, result: TaskResult): Promise<Record<string, string[]>> {
  const diff = (await getArtifact(db, 'default', result.diffRef!.sha256))!.content.toString();
  return Object.fromEntries(parseUnifiedDiff(diff).map((f) => [f.path, f.added.map((a) => a.text)]));
}

function expectAppliedOnce(files: Record<string, string[]>, id: string): void {
  expect(files['src/calculator.js']).toEqual(['  return sum(values) / values.length;']);
  expect(files['notes.txt']).toEqual([`task ${id} done`]);
  expect(files['ran.txt']).toEqual(['x']);
  expect(files['slow.txt']).toEqual(['s']);
}

/** The worker identities that started each activity of an execution child, in history order. */
async function servedBy(client: Client, taskWorkflowId: string): Promise<string[]> {
  const history = await client.workflow.getHandle(executionWorkflowId(taskWorkflowId, 1)).fetchHistory();
  return (history.events ?? []).flatMap((e) =>
    e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.identity ?? ''] : [],
  );
}

describe('execution workers that share no disk', () => {
  const children: ChildProcess[] = [];
  let others: RunningWorkers;
  let client: Client;
  beforeAll(async () => {
    others = await startWorkers(config, ['orchestration', 'planning', 'council']);
    client = await temporalClient(config);
  });
  afterAll(async () => {
    await Promise.all(children.map(killHard));
    await others?.stop();
    await client?.connection.close();
  });

  it('when 10 tasks run at once on two execution processes, then every task completes with each step applied once, and steps of one task move between the processes', async () => {
    const pair = [spawnPrivateWorker(executionEnv), spawnPrivateWorker(executionEnv)];
    children.push(...pair);
    const workspace = await sampleRepo();
    const ids = Array.from({ length: 10 }, (_, i) => `nodisk-${Date.now()}-${i}`);
    const handles = await Promise.all(
      ids.map((id) =>
        startTaskWorkflow(client, config, directTaskInput(id, workspace, 'No shared disk', spec(id, 200))),
      ),
    );
    const results = await Promise.all(handles.map((h) => h.result()));

    expect(results.map((r) => r.status)).toEqual(ids.map(() => 'completed'));
    for (const [i, result] of results.entries()) expectAppliedOnce(await changes(others.db, result), ids[i]!);
    // Both processes served activities, and at least one task's activities ran on both: its workspace followed it.
    const served = await Promise.all(handles.map((h) => servedBy(client, h.workflowId)));
    expect(new Set(served.flat()).size).toBe(2);
    expect(served.some((identities) => new Set(identities).size === 2)).toBe(true);
    await Promise.all(pair.map(killHard));
  }, 300_000);

  it('when the process that holds a task workspace is SIGKILLed mid-step, then the other process rebuilds it and the task completes with every step applied once', async () => {
    const [a, b] = [spawnPrivateWorker(executionEnv), spawnPrivateWorker(executionEnv)];
    children.push(a, b);
    const id = `nodisk-kill-${Date.now()}`;
    const handle = await startTaskWorkflow(
      client,
      config,
      directTaskInput(id, await sampleRepo(), 'Lose the workspace', spec(id, 4_000)),
    );
    // The slow command (step 3) is running: kill the process running it, which has the steps before it on its disk.
    const holder = await eventually(
      async () => {
        const description = await client.workflow.getHandle(executionWorkflowId(handle.workflowId, 1)).describe();
        const running = (description.raw.pendingActivities ?? []).find(
          (p) => Number(p.state) === 2 && p.activityType?.name === 'applyStep',
        );
        const { rows } = await others.db.query(
          "SELECT 1 FROM audit_events WHERE workflow_id = $1 AND action = 'step.applied'",
          [handle.workflowId],
        );
        return rows.length === 3 && running?.lastWorkerIdentity ? running.lastWorkerIdentity : undefined;
      },
      { timeoutMs: 60_000, what: 'the slow step to be running' },
    );
    const victim = [a, b].find((c) => holder.startsWith(`${c.pid}@`));
    expect(victim, `${holder} is one of ${a.pid} and ${b.pid}`).toBeDefined();
    await killHard(victim!);

    const result = await handle.result();
    expect(result.status).toBe('completed');
    expect(result.steps.map((s) => s.ok)).toEqual([true, true, true, true, true]);
    expectAppliedOnce(await changes(others.db, result), id);
    const { rows } = await others.db.query<{ subject: string; n: string }>(
      `SELECT subject, count(*) AS n FROM audit_events WHERE workflow_id = $1 AND action = 'step.applied'
       GROUP BY subject ORDER BY subject`,
      [handle.workflowId],
    );
    expect(rows.map((r) => [r.subject, r.n])).toEqual(
      ['step-0', 'step-1', 'step-2', 'step-3', 'step-4'].map((s) => [s, '1']),
    );
    // The last activities ran on the survivor.
    const identities = await servedBy(client, handle.workflowId);
    const survivor = [a, b].find((c) => c !== victim)!;
    expect(identities.at(-1)).toMatch(new RegExp(`^${survivor.pid}@`));
  }, 300_000);
});
