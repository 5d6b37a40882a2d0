/**
 * canaryRollout against the real Temporal server, PostgreSQL and ONNX Runtime, with a serving host in this process and
 * a load generator through its router during each rollout: a good canary promoted through the default steps with no
 * failed request and the canary share within 0.1 pp of each step's target over 1000 requests; slow, erroring and
 * wrong canaries rolled back automatically; promote, abort, pause/resume over the API; blue-green. Step sizes, sample
 * counts and durations are small (from the rollout's options) so the file stays fast.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServing, type RunningServing } from '../../activities/inference/serving/index.js';
import type { Config } from '../../common/config.js';
import { createDb, type Db } from '../../common/db.js';
import { getModelVersion, versionTransitions } from '../../common/models.js';
import { queueFor } from '../../temporal/task-queues.js';
import type { canaryRolloutWorkflow } from '../../workflows/models/canary-rollout.workflow.js';
import {
  RolloutOptionsSchema,
  rolloutWorkflowId,
  type RolloutStatus,
} from '../../workflows/models/rollout-definitions.js';
import { RolloutLoad } from '../helpers/rollout-load.js';
import { registerServed, type Flavour } from '../helpers/served-models.js';
import { eventually, json, temporalClient, useStack, type RunningApi } from '../helpers/stack.js';

let config: Config;
let db: Db;
let serving: RunningServing;
let client: Client;
let api: RunningApi;

useStack((stack) => ({ config, api } = stack), {
  env: { SERVING_RELOAD_INTERVAL: '1s', SERVING_PORT: '0' },
  pools: ['orchestration', 'inference'],
});

beforeAll(async () => {
  db = createDb(config.DATABASE_URL);
  serving = await startServing({ db, config }, 0);
  client = await temporalClient(config);
});

afterAll(async () => {
  await serving?.close();
  await client?.connection.close();
  await db?.end();
});

function rollout(model: string, version: string, options: Record<string, unknown>) {
  return client.workflow.start<typeof canaryRolloutWorkflow>('canaryRolloutWorkflow', {
    args: [
      { tenantId: 'default', model, version, requestedBy: 'user:test', options: RolloutOptionsSchema.parse(options) },
    ],
    workflowId: rolloutWorkflowId('default', model, version),
    taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
  });
}

/** A model with 1.0.0 active and served, and 1.1.0 (of the given flavour) validated. */
async function servedModel(canary: Flavour): Promise<string> {
  const model = `ro-${randomUUID().slice(0, 8)}`;
  await registerServed(db, model, '1.0.0');
  const first = await rollout(model, '1.0.0', {});
  expect((await first.result()).phase).toBe('promoted');
  await registerServed(db, model, '1.1.0', canary);
  await eventually(() => serving.host.snapshot('default', model)?.baseline === '1.0.0', { what: '1.0.0 served' });
  return model;
}

// A fresh canary's p95 at a 5% share measured up to 3x the baseline's on this 2-core machine (its session is new
// and its thread competes with the baseline's), so the good-canary tests gate at 5x; the slow canary is ~100x.
const FAST = { min_step_ms: 300, analysis_interval_ms: 100, thresholds: { maxP95Ratio: 5 } };

describe('a good canary', () => {
  it('when it rolls out through 5-10-25-50-100 under load, then no request fails, each step splits exactly, and it is promoted', async () => {
    const model = await servedModel('good');
    const load = new RolloutLoad(serving.host, model, { concurrency: 8 }).start();
    const handle = await rollout(model, '1.1.0', { ...FAST, min_samples: 500 });
    const status = await handle.result().finally(() => load.stop());
    expect(status.phase).toBe('promoted');
    expect(load.failed).toBe(0);
    const shares = load.sharesPerWeight('1.1.0').filter((s) => s.weight > 0 && s.weight < 10_000);
    expect(shares.map((s) => s.weight).sort((a, b) => a - b)).toEqual([500, 1000, 2500, 5000]);
    for (const s of shares) {
      expect(s.n, `requests at ${s.weight / 100}%`).toBe(1000);
      expect(Math.abs(s.share - s.weight / 10_000), `share at ${s.weight / 100}%`).toBeLessThanOrEqual(0.001);
    }
    expect((await getModelVersion(db, 'default', model, '1.1.0'))?.status).toBe('active');
    expect((await getModelVersion(db, 'default', model, '1.0.0'))?.status).toBe('retired');
    await eventually(() => serving.host.snapshot('default', model)?.loaded.join() === '1.1.0', {
      what: '1.0.0 released',
    });
    const { rows } = await db.query<{ action: string }>(
      `SELECT action FROM audit_events WHERE workflow_id = $1 ORDER BY seq`,
      [rolloutWorkflowId('default', model, '1.1.0')],
    );
    expect(rows.map((r) => r.action)).toEqual([
      'model.rollout.start',
      ...Array<string>(4).fill('model.rollout.continue'),
      'model.rollout.promote',
    ]);
    const described = await handle.describe();
    expect(described.searchAttributes.AgencyModel).toEqual([`default/${model}`]);
  });
});

describe('bad canaries are rolled back automatically', () => {
  const BAD = { ...FAST, steps: [10, 50, 100], min_samples: 40, thresholds: { maxP95Ratio: 4 } };

  async function rolledBack(canary: Flavour, labels: boolean): Promise<RolloutStatus> {
    const model = await servedModel(canary);
    const load = new RolloutLoad(serving.host, model, { concurrency: 4, labels: labels ? db : undefined }).start();
    const status = await (await rollout(model, '1.1.0', BAD)).result().finally(() => load.stop());
    expect(serving.host.snapshot('default', model)?.canary).toBeUndefined();
    expect(load.failed).toBe(0);
    expect(status.phase).toBe('rolled_back');
    const version = await getModelVersion(db, 'default', model, '1.1.0');
    expect(version?.status).toBe('rolled_back');
    const moves = await versionTransitions(db, 'default', model, '1.1.0');
    expect(moves[moves.length - 1]?.evidence).toMatchObject({ reasons: status.decisions.at(-1)!.reasons });
    expect((await getModelVersion(db, 'default', model, '1.0.0'))?.status).toBe('active');
    return status;
  }

  it('when the canary errors, then it is rolled back on errors (and callers got the baseline)', async () => {
    const status = await rolledBack({ kind: 'error', rate: 1 }, false);
    expect(status.decisions.at(-1)?.reasons.join()).toMatch(/errors: mixture SPRT/);
  });

  it('when the canary is slow, then it is rolled back on the p95 ratio at the step boundary', async () => {
    // Slow by a wide margin (tens of ms against a fraction of one), so a loaded machine's noise cannot hide it.
    const status = await rolledBack({ kind: 'slow', size: 512, repeats: 8 }, false);
    expect(status.decisions.at(-1)?.reasons.join()).toMatch(/latency: p95 ratio/);
  });

  it('when the canary is wrong on labelled traffic, then it is rolled back on accuracy', async () => {
    const status = await rolledBack({ kind: 'wrong' }, true);
    expect(status.decisions.at(-1)?.reasons.join()).toMatch(/labelled accuracy/);
  });
});

describe('people: promote, abort, pause and resume over the API', () => {
  const SLOW_STEPS = { ...FAST, min_step_ms: 120_000, min_samples: 10 };
  const post = (path: string, body: unknown = {}) =>
    api.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  it('when a person pauses, resumes and promotes, then the canary is active at once; a second promote is refused', async () => {
    const model = await servedModel('good');
    const base = `/api/v1/models/${model}/versions/1.1.0/rollout`;
    expect((await post(base, SLOW_STEPS)).status).toBe(202);
    expect((await post(base, SLOW_STEPS)).status).toBe(409);
    await eventually(async () => (await json<RolloutStatus>(await api.fetch(base))).phase === 'stepping');
    expect((await post(`${base}/pause`, { reason: 'look first' })).status).toBe(202);
    await eventually(async () => (await json<RolloutStatus>(await api.fetch(base))).phase === 'paused');
    expect((await post(`${base}/resume`)).status).toBe(202);
    await eventually(async () => (await json<RolloutStatus>(await api.fetch(base))).phase === 'stepping');
    const promoted = await post(`${base}/promote`, { reason: 'looks good' });
    expect(promoted.status).toBe(200);
    expect((await json<RolloutStatus>(promoted)).phase).toBe('promoted');
    expect((await post(`${base}/promote`)).status).toBe(409);
    expect((await getModelVersion(db, 'default', model, '1.1.0'))?.status).toBe('active');
    expect((await json<RolloutStatus>(await api.fetch(base))).decisions.map((d) => d.action)).toEqual([
      'start',
      'pause',
      'resume',
      'promote',
    ]);
  });

  it('when a person aborts mid-step, then the canary weight is 0 everywhere and the version rolled back', async () => {
    const model = await servedModel('good');
    const base = `/api/v1/models/${model}/versions/1.1.0/rollout`;
    expect((await post(base, SLOW_STEPS)).status).toBe(202);
    await eventually(() => (serving.host.snapshot('default', model)?.canary?.weight ?? 0) > 0, {
      what: 'canary weight',
    });
    const aborted = await post(`${base}/abort`, { reason: 'changed my mind' });
    expect((await json<RolloutStatus>(aborted)).phase).toBe('aborted');
    expect(serving.host.snapshot('default', model)?.canary).toBeUndefined();
    expect((await getModelVersion(db, 'default', model, '1.1.0'))?.status).toBe('rolled_back');
    expect((await post(`${base}/abort`)).status).toBe(409);
    expect((await api.fetch(`/api/v1/models/${model}/versions/9.9.9/rollout`)).status).toBe(404);
    expect((await post(`/api/v1/models/${model}/versions/not-semver/rollout`)).status).toBe(400);
  });
});

describe('blue-green', () => {
  it('when blue-green switches, then all traffic moves at once with the old version warm; abort switches back', async () => {
    const model = await servedModel('good');
    const handle = await rollout(model, '1.1.0', { strategy: 'blue-green', min_step_ms: 60_000 });
    await eventually(() => serving.host.snapshot('default', model)?.baseline === '1.1.0', { what: 'switch' });
    expect(serving.host.snapshot('default', model)?.loaded.sort()).toEqual(['1.0.0', '1.1.0']);
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => serving.host.predict('default', model, [[0, 0, 0, 0, 0, 0, 0, 0]])),
    );
    expect(new Set(answers.map((a) => a.version))).toEqual(new Set(['1.1.0']));
    const status = await handle.executeUpdate('abort', { args: [{ by: 'user:test', reason: 'blue is bad' }] });
    expect((status as RolloutStatus).phase).toBe('aborted');
    expect(serving.host.snapshot('default', model)?.baseline).toBe('1.0.0');
    expect((await getModelVersion(db, 'default', model, '1.1.0'))?.status).toBe('rolled_back');

    const other = await servedModel('good');
    const promoted = await (await rollout(other, '1.1.0', { strategy: 'blue-green', min_step_ms: 200 })).result();
    expect(promoted.phase).toBe('promoted');
    await eventually(() => serving.host.snapshot('default', other)?.loaded.join() === '1.1.0', {
      what: 'old released',
    });
    expect((await getModelVersion(db, 'default', other, '1.0.0'))?.status).toBe('retired');
  });
});
