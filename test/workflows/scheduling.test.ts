/**
 * awaitHostCapacity (workflows/scheduling/defer.ts) on the real Temporal server: the host is read by an activity on
 * its own queue (an injected reading), deferrable work waits with durable timers up to its maximum delay, and
 * non-deferrable work never waits and never reads.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSchedulingActivities } from '../../activities/scheduling/host-state.js';
import type { DeferralPolicy, HostReading, Priority } from '../../workflows/scheduling/decision.js';
import { deferralProbeWorkflow } from './fixtures/scheduling.workflows.js';
import { testConfig, testLog } from '../helpers/stack.js';
import { installRuntime } from '../../workers/runtime.js';

const config = testConfig();
const queue = `${config.TASK_QUEUE_PREFIX}sched-probe`;
const hostQueue = `${config.TASK_QUEUE_PREFIX}sched-host`;
let level = 8;
let reads = 0;
const reading = (): HostReading => ({
  host: 'probe',
  at: new Date().toISOString(),
  cores: 2,
  load1: level,
  cpuTempC: null,
  memAvailableFraction: 0.5,
  memPressurePct: null,
});

describe('awaitHostCapacity', () => {
  let client: Client;
  let worker: Worker;
  let hostWorker: Worker;
  let running: Promise<unknown>;
  beforeAll(async () => {
    installRuntime(testLog);
    const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
    worker = await Worker.create({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      taskQueue: queue,
      workflowsPath: path.join(import.meta.dirname, 'fixtures', 'scheduling.workflows.ts'),
    });
    hostWorker = await Worker.create({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      taskQueue: hostQueue,
      activities: createSchedulingActivities({
        source: {
          read: () => {
            reads++;
            return Promise.resolve(reading());
          },
        },
      }),
    });
    running = Promise.all([worker.run(), hostWorker.run()]);
    client = new Client({
      connection: await Connection.connect({ address: config.TEMPORAL_ADDRESS }),
      namespace: config.TEMPORAL_NAMESPACE,
    });
  });
  afterAll(async () => {
    worker?.shutdown();
    hostWorker?.shutdown();
    await running;
    await client?.connection.close();
  });

  const probe = (workload: { deferrable: boolean; priority: Priority }, policy: DeferralPolicy) =>
    client.workflow.execute(deferralProbeWorkflow, {
      taskQueue: queue,
      workflowId: `sched-${randomUUID()}`,
      args: [
        { workload: { name: 'probe', expectedLoad: 1, estimatedDurationMs: 1000, ...workload }, policy, hostQueue },
      ],
    });

  it('when the host reads high, then deferrable work waits with timers until the maximum delay and records each reading', async () => {
    level = 8;
    const started = Date.now();
    const record = await probe({ deferrable: true, priority: 'low' }, { maxDelayMs: 4000, checkIntervalMs: 500 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(4000);
    expect(record.waitedMs).toBeGreaterThanOrEqual(4000);
    expect(record.final).toMatchObject({ action: 'run', reason: 'max-delay' });
    // A reading, a timer, another reading…: how many fit in 4 s depends on how fast the activities come back.
    expect(record.entries.length).toBeGreaterThanOrEqual(2);
    for (const e of record.entries) expect(e.reading?.load1).toBe(8);
    expect(record.entries.slice(0, -1).every((e) => e.decision.action === 'defer')).toBe(true);
  });

  it('when the host calms down while work waits, then it runs at the next reading', async () => {
    level = 8;
    const wait = probe({ deferrable: true, priority: 'low' }, { maxDelayMs: 60_000, checkIntervalMs: 400 });
    setTimeout(() => (level = 0.1), 900);
    const record = await wait;
    expect(record.final).toMatchObject({ action: 'run', reason: 'host-ok' });
    expect(record.waitedMs).toBeLessThan(30_000);
    expect(record.entries.at(-1)?.reading?.load1).toBe(0.1);
  });

  it('when work is not deferrable, then it never waits and the host is not even read', async () => {
    level = 8;
    const before = reads;
    const record = await probe({ deferrable: false, priority: 'high' }, { maxDelayMs: 60_000, checkIntervalMs: 500 });
    expect(record.waitedMs).toBe(0);
    expect(record.entries).toHaveLength(1);
    expect(record.final).toMatchObject({ action: 'run', reason: 'not-deferrable' });
    expect(reads).toBe(before);
  });
});
