/**
 * runtimeTuning on the real stack: the API starts a run on a served model (M1's registry, M2's serving host), the
 * inference worker (a separate process) is killed in the middle of a trial and a new one takes over — the trial is
 * retried and the run ends with every trial once; then `apply` records the incumbent as a new version of the same ONNX
 * file and rolls it out (M2's canary) while a load generator sends predictions: none fails. Bad input gets 4xx.
 * Budgets, requests and rollout steps are small so the file takes about a minute.
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServing, type RunningServing } from '../../activities/inference/serving/index.js';
import { loadConfig, type Config } from '../../common/config.js';
import { createDb, type Db } from '../../common/db.js';
import { getModelVersion } from '../../common/models.js';
import { queueFor } from '../../temporal/task-queues.js';
import type { canaryRolloutWorkflow } from '../../workflows/models/canary-rollout.workflow.js';
import { RolloutOptionsSchema, rolloutWorkflowId } from '../../workflows/models/rollout-definitions.js';
import { tuningWorkflowId, type TuningRequest, type TuningStatus } from '../../workflows/tuning/definitions.js';
import { RolloutLoad } from '../helpers/rollout-load.js';
import { registerServed } from '../helpers/served-models.js';
import {
  eventually,
  json,
  killHard,
  runningActivities,
  spawnWorkerProcess,
  startApi,
  startWorkers,
  temporalClient,
  testEnv,
  type RunningApi,
  type RunningWorkers,
} from '../helpers/stack.js';

const env = testEnv({ SERVING_RELOAD_INTERVAL: '1s', SERVING_PORT: '0' });
const inferenceEnv = { ...env, WORKER_QUEUES: 'inference' };
let config: Config;
let db: Db;
let workers: RunningWorkers;
let serving: RunningServing;
let client: Client;
let api: RunningApi;
const children: ChildProcess[] = [];
const model = `tune-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  config = loadConfig(env);
  db = createDb(config.DATABASE_URL);
  workers = await startWorkers(config, ['orchestration']);
  children.push(spawnWorkerProcess(inferenceEnv));
  serving = await startServing({ db, config }, 0);
  client = await temporalClient(config);
  api = await startApi(config);
  // 1.0.0 active and served, as a model in production would be.
  await registerServed(db, model, '1.0.0');
  const first = await client.workflow.start<typeof canaryRolloutWorkflow>('canaryRolloutWorkflow', {
    args: [
      {
        tenantId: 'default',
        model,
        version: '1.0.0',
        requestedBy: 'user:test',
        options: RolloutOptionsSchema.parse({}),
      },
    ],
    workflowId: rolloutWorkflowId('default', model, '1.0.0'),
    taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
  });
  expect((await first.result()).phase).toBe('promoted');
});

afterAll(async () => {
  await api?.stop();
  await serving?.close();
  await Promise.all(children.map(killHard));
  await workers?.stop();
  await client?.connection.close();
  await db?.end();
});

const request = (over: Partial<TuningRequest> = {}): TuningRequest => ({
  model,
  version: '1.0.0',
  budget: 3,
  space: [
    { kind: 'ordinal', name: 'serving.maxBatchSize', values: [1, 8] },
    { kind: 'ordinal', name: 'serving.concurrency', values: [1, 2] },
  ],
  workload: { concurrency: 4, requests: 60 },
  measurement: { warmupRequests: 10, minRepetitions: 2, maxRepetitions: 3, maxSpread: 10, trialTimeoutMs: 20_000 },
  guardrail: { probeRows: 8 },
  // This shared machine is busy: the trials are still read for and decided on, but never wait.
  deferral: { maxDelayMs: 0 },
  ...over,
});

const JSON_HEADERS = { 'content-type': 'application/json' };
const post = (url: string, body: unknown) =>
  api.fetch(url, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(body) });

async function status(id: string): Promise<TuningStatus> {
  const res = await api.fetch(`/api/v1/tuning/runs/${id}`);
  expect(res.status).toBe(200);
  return json<TuningStatus>(res);
}

describe('a tuning run', () => {
  let runId = '';

  it('when the inference worker is killed in the middle of a trial, then the trial is retried and the run completes with each trial once', async () => {
    const res = await post('/api/v1/tuning/runs', request());
    expect(res.status).toBe(201);
    runId = (await json<{ id: string }>(res)).id;
    const workflowId = tuningWorkflowId('default', runId);
    const described = await client.workflow.getHandle(workflowId).describe();
    expect(described.searchAttributes.AgencyModel).toEqual([`default/${model}`]);

    // The baseline is measured; trial 1 is running: kill the process that runs it.
    await eventually(
      async () =>
        (await status(runId)).trials.length >= 1 &&
        (await runningActivities(client, workflowId)).includes('runTuningTrial'),
      { timeoutMs: 60_000, what: 'a trial after the baseline to be running' },
    );
    await killHard(children[0]!);
    children.push(spawnWorkerProcess(inferenceEnv));

    const done = await eventually(
      async () => {
        const s = await status(runId);
        return s.phase === 'done' ? s : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: 'the run to finish' },
    );
    expect(done.trials.map((t) => t.index)).toEqual([0, 1, 2, 3]);
    for (const t of done.trials) {
      expect(t.result.status).toBe('ok');
      expect(t.result.figures!.throughput).toBeGreaterThan(0);
      expect(t.result.guardrail?.passed).toBe(true);
    }
    expect(new Set(done.trials.slice(1).map((t) => JSON.stringify(t.point))).size).toBe(3);
    expect(done.incumbent).not.toBeNull();
    expect(done.scheduling).toHaveLength(4);
    // The killed trial was started twice; no other activity of the run was.
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const retried = (history.events ?? []).filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1);
    expect(retried.length).toBeGreaterThanOrEqual(1);
  });

  it('when the incumbent is applied, then it becomes a new version of the same ONNX file and rolls out with no failed request', async () => {
    expect(runId).not.toBe('');
    const before = (await status(runId)).trials;
    const load = new RolloutLoad(serving.host, model, { concurrency: 4 }).start();
    let applied: TuningStatus;
    try {
      const res = await post(`/api/v1/tuning/runs/${runId}/apply`, {
        rollout: {
          steps: [50, 100],
          min_samples: 50,
          min_step_ms: 300,
          analysis_interval_ms: 100,
          thresholds: { maxP95Ratio: 5 },
        },
      });
      expect(res.status).toBe(200);
      applied = await json<TuningStatus>(res);
      const rollout = await client.workflow
        .getHandle<typeof canaryRolloutWorkflow>(applied.rolloutWorkflowId!)
        .result();
      expect(rollout.phase).toBe('promoted');
    } finally {
      await load.stop();
    }
    expect(load.failed).toBe(0);
    expect(load.samples.some((s) => s.version === applied.appliedVersion)).toBe(true);
    const tuned = (await getModelVersion(db, 'default', model, applied.appliedVersion!))!;
    const source = (await getModelVersion(db, 'default', model, '1.0.0'))!;
    expect(tuned.artifact.sha256).toBe(source.artifact.sha256);
    expect(tuned.settings).toEqual(before[applied.incumbent!]!.candidate);
    expect(tuned.status).toBe('active');
    expect(tuned.metrics['tuning.throughput_rows_per_s']).toBeGreaterThan(0);
    // Applied once: a second apply is refused.
    const again = await post(`/api/v1/tuning/runs/${runId}/apply`, {});
    expect(again.status).toBe(409);
  });

  it('when the request is bad, then the API answers 4xx and starts nothing', async () => {
    const start = (body: unknown) => post('/api/v1/tuning/runs', body);
    expect(
      (await start({ ...request(), space: [{ kind: 'ordinal', name: 'session.fancy', values: [1] }] })).status,
    ).toBe(400);
    expect((await start({ ...request(), budget: 0 })).status).toBe(400);
    expect((await start({ ...request(), surprise: true })).status).toBe(400);
    expect((await start({ ...request(), model: 'no-such-model' })).status).toBe(404);
    expect((await api.fetch('/api/v1/tuning/runs/no-such-run')).status).toBe(404);
    expect((await api.fetch('/api/v1/tuning/runs/NOT%20AN%20ID')).status).toBe(400);
  });
});
