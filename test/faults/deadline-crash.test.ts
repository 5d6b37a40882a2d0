/**
 * A deadline a crash consumed is named as such: the orchestration worker (a child process) is SIGKILLed while a task
 * waits for a person's approval, and no orchestration worker runs when the approval's deadline passes (so the API's
 * `decide` Update and the `progress` query could not be answered). The task still ends without approval, as the
 * deadline says, but its reason and `outages` say that infrastructure consumed the end of it. The same wait without a
 * crash ends with the bare reason (test/api/pipeline.test.ts, 'when nobody approves before the deadline').
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../common/config.js';
import { LATE_TIMER_MS } from '../../workflows/task/deadlines.js';
import { progressQuery } from '../../workflows/task/definitions.js';
import {
  eventually,
  killHard,
  sampleRepo,
  spawnWorkerProcess,
  startWorkers,
  temporalClient,
  testEnv,
  type RunningWorkers,
} from '../helpers/stack.js';
import { directTaskInput, startTaskWorkflow } from '../helpers/tasks.js';
import type { WorkingSpec } from '../../workflows/task/spec.js';

const APPROVAL_TIMEOUT_MS = 3_000;

const SPEC: WorkingSpec = {
  id: 'FIX-13',
  title: 'Fix average() while nobody can approve',
  risk_tier: 3,
  mode: 'fix',
  scope: { in: ['src/'], out: ['test/'] },
  acceptance: [],
  invariants: [],
  steps: [
    {
      kind: 'replace',
      path: 'src/calculator.js',
      find: 'return sum(values) / (values.length - 1);',
      replace: 'return sum(values) / values.length;',
    },
  ],
  gates: [{ name: 'tests', run: ['node', '--test'] }],
};

describe('the orchestration worker killed while a task waits for approval', () => {
  const env = testEnv();
  const config = loadConfig(env);
  const children: ChildProcess[] = [];
  let workers: RunningWorkers | undefined;
  afterAll(async () => {
    await Promise.all(children.map(killHard));
    await workers?.stop();
  });

  it('when the approval deadline passes with no orchestration worker, then the task fails naming infrastructure', async () => {
    workers = await startWorkers(config, ['planning', 'execution', 'council']);
    const orchestration = (): ChildProcess => {
      const child = spawnWorkerProcess({ ...env, WORKER_QUEUES: 'orchestration' });
      children.push(child);
      return child;
    };
    const client = await temporalClient(config);
    const first = orchestration();
    const handle = await startTaskWorkflow(client, config, {
      ...directTaskInput(`deadline-crash-${Date.now()}`, await sampleRepo(), 'Nobody can approve', SPEC),
      mode: 'strict',
      settings: { approvalTimeoutMs: APPROVAL_TIMEOUT_MS },
    });
    const pending = await eventually(async () => (await handle.query(progressQuery)).pendingApproval, {
      timeoutMs: 60_000,
      what: 'the plan approval to be asked',
    });
    // The deadline's timer is running (it starts once the request is recorded): only then no worker is left to see it.
    const timerStartedMs = await eventually(
      async () => {
        const { events } = await handle.fetchHistory();
        const started = events?.find(
          (e) => Number(e.timerStartedEventAttributes?.startToFireTimeout?.seconds) * 1000 === APPROVAL_TIMEOUT_MS,
        );
        return started?.eventTime ? Number(started.eventTime.seconds) * 1000 : undefined;
      },
      { timeoutMs: 60_000, what: "the approval deadline's timer to start" },
    );
    expect(Date.parse(pending.deadline)).toBeLessThanOrEqual(timerStartedMs + APPROVAL_TIMEOUT_MS + 1_000);
    await killHard(first);
    // Past the deadline by more than a timer is ever late while a worker runs, then a worker again.
    const until = timerStartedMs + 1_000 + APPROVAL_TIMEOUT_MS + LATE_TIMER_MS + 3_000;
    await new Promise((r) => setTimeout(r, Math.max(0, until - Date.now())));
    orchestration();

    const result = await handle.result();
    expect(result.status).toBe('failed');
    expect(result.reason).toMatch(
      new RegExp(
        `^rejected: no approval within ${APPROVAL_TIMEOUT_MS} ms; consumed by infrastructure: the plan approval's ` +
          `deadline passed while no orchestration worker was running \\(handled \\d+ s late\\)$`,
      ),
    );
    expect(result.outages).toEqual([
      expect.stringMatching(/^the plan approval's deadline passed while no orchestration/),
    ]);
    expect(result.steps).toEqual([]);
    await client.connection.close();
  }, 120_000);
});
