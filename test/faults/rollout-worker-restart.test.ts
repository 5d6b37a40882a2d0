/**
 * A canary rollout survives its worker: the process running the orchestration and inference pools is SIGKILLed in
 * the middle of a step, a new one starts, and the rollout carries on from its history to promotion, while the load
 * generator (through a serving host in this process) sees no failed request.
 */
import { randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServing, type RunningServing } from '../../activities/inference/serving/index.js';
import type { Config } from '../../common/config.js';
import { createDb, type Db } from '../../common/db.js';
import { getModelVersion } from '../../common/models.js';
import { queueFor } from '../../temporal/task-queues.js';
import type { canaryRolloutWorkflow } from '../../workflows/models/canary-rollout.workflow.js';
import { RolloutOptionsSchema, rolloutWorkflowId, statusQuery } from '../../workflows/models/rollout-definitions.js';
import { RolloutLoad } from '../helpers/rollout-load.js';
import { registerServed } from '../helpers/served-models.js';
import { eventually, killHard, spawnWorkerProcess, temporalClient, testEnv } from '../helpers/stack.js';
import { loadConfig } from '../../common/config.js';

const env = testEnv({ SERVING_RELOAD_INTERVAL: '1s', SERVING_PORT: '0', WORKER_QUEUES: 'orchestration,inference' });
let config: Config;
let db: Db;
let serving: RunningServing;
const children: ChildProcess[] = [];

beforeAll(async () => {
  config = loadConfig(env);
  db = createDb(config.DATABASE_URL);
  serving = await startServing({ db, config }, 0);
});

afterAll(async () => {
  for (const c of children) await killHard(c);
  await serving?.close();
  await db?.end();
});

function worker(): ChildProcess {
  const child = spawnWorkerProcess(env);
  children.push(child);
  return child;
}

it('when the worker is killed mid-step, then a new worker finishes the rollout and no request fails', async () => {
  const client = await temporalClient(config);
  const model = `rr-${randomUUID().slice(0, 8)}`;
  const start = (version: string, options: Record<string, unknown>) =>
    client.workflow.start<typeof canaryRolloutWorkflow>('canaryRolloutWorkflow', {
      args: [
        { tenantId: 'default', model, version, requestedBy: 'user:test', options: RolloutOptionsSchema.parse(options) },
      ],
      workflowId: rolloutWorkflowId('default', model, version),
      taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
    });
  await registerServed(db, model, '1.0.0');
  await registerServed(db, model, '1.1.0');
  const first = worker();
  expect((await (await start('1.0.0', {})).result()).phase).toBe('promoted');
  await eventually(() => serving.host.snapshot('default', model)?.baseline === '1.0.0', { what: 'served' });

  const load = new RolloutLoad(serving.host, model, { concurrency: 4 }).start();
  const handle = await start('1.1.0', {
    steps: [20, 100],
    min_samples: 200,
    min_step_ms: 4000,
    analysis_interval_ms: 200,
    thresholds: { maxP95Ratio: 5 },
  });
  await eventually(async () => (await handle.query(statusQuery)).phase === 'stepping', { what: 'stepping' });
  await eventually(() => (serving.host.snapshot('default', model)?.canary?.weight ?? 0) === 2000, { what: '20%' });
  await killHard(first);
  worker();
  const status = await handle.result().finally(() => load.stop());
  client.connection.close().catch(() => undefined);
  expect(status.phase).toBe('promoted');
  expect(status.decisions.map((d) => d.action)).toEqual(['start', 'continue', 'promote']);
  expect(load.failed).toBe(0);
  expect(load.samples.some((s) => s.version === '1.1.0' && s.weight === 2000)).toBe(true);
  expect((await getModelVersion(db, 'default', model, '1.1.0'))?.status).toBe('active');
});
