/**
 * The serving data plane against the real PostgreSQL and ONNX Runtime: predictions through the API (forwarded to a
 * serving process), ids and feedback, header (A/B) routing, shadow traffic that never reaches the caller, weight
 * changes reaching two separate serving processes with an exact split in each, and swaps and a rollback landing in
 * the middle of a swap under load with zero failed requests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServing, type RunningServing } from '../../activities/inference/serving/index.js';
import { PROJECT_ROOT, type Config } from '../../common/config.js';
import { createDb, type Db } from '../../common/db.js';
import { setServing } from '../../common/model-serving.js';
import { freePort } from '../helpers/ports.js';
import { registerServed, inputRow, labelOf } from '../helpers/served-models.js';
import { eventually, json, killHard, startApi, testConfig, testEnv, type RunningApi } from '../helpers/stack.js';

let config: Config;
let db: Db;
let serving: RunningServing;
let api: RunningApi;
const model = `srv-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  config = testConfig({ SERVING_RELOAD_INTERVAL: '1s' });
  db = createDb(config.DATABASE_URL);
  await registerServed(db, model, '1.0.0');
  await registerServed(db, model, '1.1.0');
  await registerServed(db, model, '1.2.0');
  await registerServed(db, model, '2.0.0-err', { kind: 'error', rate: 1 });
  await setServing(db, 'default', model, { baselineVersion: '1.0.0' });
  serving = await startServing({ db, config }, await freePort());
  api = await startApi({ ...config, SERVING_URL: serving.url! });
});

afterAll(async () => {
  await api?.stop();
  await serving?.close();
  await db?.end();
});

const predict = (body: unknown, headers: Record<string, string> = {}) =>
  api.fetch(`/api/v1/models/${model}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

/** Waits until this process applies the row's current generation. */
async function applied(check: (s: NonNullable<ReturnType<RunningServing['host']['snapshot']>>) => boolean) {
  await eventually(
    () => {
      const s = serving.host.snapshot('default', model);
      return !!s && check(s);
    },
    { what: 'the serving process to apply the change', timeoutMs: 15_000 },
  );
}

describe('predictions through the API', () => {
  it('when a served model is asked, then the answer has an id, the version and the class; feedback labels that version', async () => {
    const row = inputRow(1);
    const res = await predict({ input: row });
    expect(res.status).toBe(200);
    const body = await json<{ prediction_id: string; version: string; predicted: number[]; outputs: number[][] }>(res);
    expect(body.version).toBe('1.0.0');
    expect(body.predicted[0]).toBe(labelOf(row));
    expect(body.outputs[0]!.reduce((a, x) => a + x, 0)).toBeCloseTo(1, 4);
    const fb = await api.fetch(`/api/v1/models/${model}/predictions/${body.prediction_id}/feedback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ label: labelOf(row) }),
    });
    expect(fb.status).toBe(200);
    expect(await json(fb)).toMatchObject({ version: '1.0.0', correct: true, predicted: labelOf(row) });
  });

  it('when the input, the model or the prediction is wrong, then a clear 4xx', async () => {
    expect((await predict({ input: [1, 2] })).status).toBe(400);
    expect((await predict({ input: inputRow(0), inputs: [inputRow(0)] })).status).toBe(400);
    expect((await predict({ input: ['x'] })).status).toBe(400);
    const missing = await api.fetch(`/api/v1/models/no-such-model/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input: inputRow(0) }),
    });
    expect(missing.status).toBe(404);
    const fb = await api.fetch(`/api/v1/models/${model}/predictions/${randomUUID()}/feedback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ label: 1 }),
    });
    expect(fb.status).toBe(404);
    expect((await predict({ input: inputRow(0) }, { 'x-model-version': 'drop table' })).status).toBe(400);
  });

  it('when a request names a version or an arm in x-model-version, then that version answers (A/B)', async () => {
    await setServing(db, 'default', model, { canaryVersion: '1.1.0', canaryWeight: 0 });
    await applied((s) => s.canary?.version === '1.1.0');
    const versionOf = async (headers: Record<string, string>) =>
      (await json<{ version: string }>(await predict({ input: inputRow(2) }, headers))).version;
    expect(await versionOf({})).toBe('1.0.0');
    expect(await versionOf({ 'x-model-version': '1.1.0' })).toBe('1.1.0');
    expect(await versionOf({ 'x-model-version': 'canary' })).toBe('1.1.0');
    expect(await versionOf({ 'x-model-version': 'baseline' })).toBe('1.0.0');
    await setServing(db, 'default', model, { canaryVersion: null, canaryWeight: 0 });
    await applied((s) => s.canary === undefined);
  });
});

describe('shadow traffic', () => {
  it('when half the requests are mirrored to an erroring canary, then every caller gets the baseline and no error', async () => {
    await setServing(db, 'default', model, { canaryVersion: '2.0.0-err', canaryWeight: 0, shadowShare: 5000 });
    await applied((s) => s.shadow === '2.0.0-err');
    const started = new Date();
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => serving.host.predict('default', model, [inputRow(i)])),
    );
    expect(new Set(answers.map((a) => a.version))).toEqual(new Set(['1.0.0']));
    await eventually(
      async () => {
        await serving.host.flush();
        const { rows } = await db.query<{ n: number; failed: number }>(
          `SELECT count(*)::int AS n, count(*) FILTER (WHERE NOT ok)::int AS failed FROM model_predictions
          WHERE model = $1 AND route = 'shadow' AND created_at >= $2`,
          [model, started],
        );
        return rows[0]?.n === 50 && rows[0]?.failed === 50;
      },
      { what: '50 failed shadow rows' },
    );
    await setServing(db, 'default', model, { canaryVersion: null, canaryWeight: 0, shadowShare: 0 });
    await applied((s) => s.shadow === undefined && s.canary === undefined);
  });
});

describe('two serving processes', () => {
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) await killHard(c);
  });

  async function spawnServing(): Promise<string> {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(PROJECT_ROOT, 'test/helpers/serving-child.ts')],
      {
        cwd: PROJECT_ROOT,
        env: { PATH: process.env.PATH ?? '', ...testEnv({ SERVING_RELOAD_INTERVAL: '1s' }) },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    children.push(child);
    const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve));
    return (JSON.parse(line) as { url: string }).url;
  }

  it('when the weight changes, then both processes apply it, and each splits 1000 requests exactly', async () => {
    const urls = await Promise.all([spawnServing(), spawnServing()]);
    const snap = async (url: string) =>
      (await (await fetch(`${url}/v1/models/default/${model}`)).json()) as {
        canary?: { weight: number };
        loaded: string[];
      };
    await setServing(db, 'default', model, { canaryVersion: '1.1.0', canaryWeight: 2500 });
    for (const url of urls) {
      await eventually(async () => (await snap(url)).canary?.weight === 2500, {
        what: `${url} at 25%`,
        timeoutMs: 20_000,
      });
    }
    for (const url of urls) {
      let canary = 0;
      // 20 at a time: the split is exact over any 1000 consecutive routing decisions, however they interleave.
      for (let i = 0; i < 1000; i += 20) {
        const answers = await Promise.all(
          Array.from({ length: 20 }, async (_, j) => {
            const res = await fetch(`${url}/v1/predict`, {
              method: 'POST',
              body: JSON.stringify({ tenantId: 'default', model, inputs: [inputRow(i + j)] }),
            });
            expect(res.status).toBe(200);
            return ((await res.json()) as { version: string }).version;
          }),
        );
        canary += answers.filter((v) => v === '1.1.0').length;
      }
      expect(Math.abs(canary / 1000 - 0.25)).toBeLessThanOrEqual(0.001);
    }
    await setServing(db, 'default', model, { canaryVersion: null, canaryWeight: 0 });
    for (const url of urls) {
      await eventually(async () => (await snap(url)).canary === undefined, { what: `${url} without canary` });
    }
    await applied((s) => s.canary === undefined);
  });
});

describe('swaps under load', () => {
  it('when a new baseline is swapped in and a rollback lands mid-swap, then no request fails and old sessions drain', async () => {
    let stop = false;
    let failed = 0;
    let served = 0;
    const versions = new Set<string>();
    const load = Array.from({ length: 6 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        try {
          const p = await serving.host.predict('default', model, [inputRow(i * 6 + w)]);
          versions.add(p.version);
          served++;
        } catch {
          failed++;
        }
      }
    });
    await setServing(db, 'default', model, { canaryVersion: '1.1.0', canaryWeight: 5000 });
    await applied((s) => s.canary?.weight === 5000);
    // Blue-green switch to 1.2.0 (it must load), then a rollback before or while it warms.
    await setServing(db, 'default', model, {
      baselineVersion: '1.2.0',
      canaryVersion: null,
      canaryWeight: 0,
      warmVersions: ['1.0.0'],
    });
    await new Promise((r) => setTimeout(r, 5));
    await setServing(db, 'default', model, { baselineVersion: '1.0.0', canaryVersion: null, warmVersions: [] });
    await applied((s) => s.baseline === '1.0.0' && s.canary === undefined && s.loaded.join() === '1.0.0');
    // And a full swap that completes: 1.2.0 becomes the baseline under load.
    await setServing(db, 'default', model, { baselineVersion: '1.2.0', warmVersions: [] });
    await applied((s) => s.baseline === '1.2.0' && s.loaded.join() === '1.2.0');
    const before = served;
    await eventually(() => served > before + 50, { what: 'requests after the swap' });
    stop = true;
    await Promise.all(load);
    expect(failed).toBe(0);
    expect(served).toBeGreaterThan(200);
    expect(versions).toContain('1.1.0');
    expect(versions).toContain('1.2.0');
    await setServing(db, 'default', model, { baselineVersion: '1.0.0' });
    await applied((s) => s.baseline === '1.0.0');
  });
});
