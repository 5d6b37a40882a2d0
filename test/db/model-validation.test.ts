/**
 * validateModelVersion (activities/inference/validation.ts) with real ONNX Runtime in its worker thread, the real
 * blob store and registry, on models from the one builder: a good first version is validated (signature, golden
 * outputs, latency recorded); against the active version an incompatible input width or output name is rejected
 * naming the difference; junk bytes, NaN outputs, a run-time error, a slow model over the bound and outputs that
 * differ from expected golden outputs are each rejected with their reason; a retried validation records once.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OrtThread } from '../../activities/inference/ort.js';
import { createValidationActivities, type ValidateInput } from '../../activities/inference/validation.js';
import { ensureTenant } from '../../common/api-keys.js';
import { createPostgresBlobStore, type PostgresBlobStore } from '../../common/blob-store/postgres.js';
import type { Db } from '../../common/db.js';
import { registerModelVersion, setVersionStatus, versionTransitions } from '../../common/models.js';
import {
  buildCanaryOnnx,
  buildMlpOnnx,
  forwardMlp,
  randomMlp,
  type CanaryDefect,
  type MlpGraph,
} from '../../common/onnx/builder.js';
import { useDb } from '../helpers/stack.js';

const run = randomUUID().slice(0, 8);

describe('validateModelVersion', () => {
  let db: Db;
  let store: PostgresBlobStore;
  let ort: OrtThread;
  let activities: ReturnType<typeof createValidationActivities>;
  let n = 0;
  const graph = randomMlp([8, 6, 4], 5);

  useDb((pool) => {
    db = pool;
    store = createPostgresBlobStore(db);
  });
  beforeAll(() => {
    ort = new OrtThread();
    activities = createValidationActivities({ db, ort });
  });
  afterAll(async () => {
    await ort?.close();
  });

  async function freshTenant(): Promise<string> {
    const tenant = `validate-${run}-${++n}`;
    await ensureTenant(db, tenant, 'model validation');
    return tenant;
  }
  async function register(tenant: string, bytes: Uint8Array, version: string) {
    const artifact = await store.put(tenant, bytes);
    return registerModelVersion(db, {
      tenantId: tenant,
      name: 'digits',
      version,
      artifact,
      provenance: { by: { kind: 'person', principal: 'user:test' }, data: {} },
      createdBy: 'user:test',
    });
  }
  const validate = (tenant: string, version: string, extra: Partial<ValidateInput> = {}) =>
    activities.validateModelVersion({ tenantId: tenant, name: 'digits', version, runs: 5, ...extra });

  /** A tenant whose 1.0.0 (the graph above) is validated and active. */
  async function withActive(): Promise<string> {
    const tenant = await freshTenant();
    await register(tenant, buildMlpOnnx(graph), '1.0.0');
    expect((await validate(tenant, '1.0.0')).passed).toBe(true);
    await setVersionStatus(db, tenant, 'digits', '1.0.0', { to: 'active', actor: 'user:test', evidence: {} });
    return tenant;
  }

  it('when a good first version is validated, then its signature, golden outputs and latency are recorded', async () => {
    const tenant = await freshTenant();
    await register(tenant, buildMlpOnnx(graph), '1.0.0');
    const result = await validate(tenant, '1.0.0', { rows: 4 });
    expect(result).toMatchObject({ passed: true, reasons: [], status: 'validated', against: null });
    expect(result.signature).toEqual({
      inputs: [{ name: 'input', type: 'float32', shape: ['batch', 8] }],
      outputs: [{ name: 'output', type: 'float32', shape: ['batch', 4] }],
    });
    expect(result.golden).toMatchObject({ rows: 4, outputsSha256: expect.stringMatching(/^[0-9a-f]{64}$/) as string });
    expect(result.golden?.sample.output).toHaveLength(2);
    expect(result.latency).toMatchObject({ runs: 5, boundMs: 100 });
    expect(result.latency!.p95Ms).toBeGreaterThanOrEqual(result.latency!.p50Ms);
    // Retried (an activity attempt after a crash): the stored report, and no second transition.
    const again = await validate(tenant, '1.0.0', { rows: 4 });
    expect(again.golden?.outputsSha256).toBe(result.golden?.outputsSha256);
    expect((await versionTransitions(db, tenant, 'digits', '1.0.0')).map((t) => t.to)).toEqual([
      'registered',
      'validated',
    ]);
  });

  it('when a candidate is incompatible with the active version, then it is rejected naming the difference', async () => {
    const tenant = await withActive();
    await register(tenant, buildMlpOnnx(randomMlp([9, 6, 4], 6)), '1.1.0');
    const wider = await validate(tenant, '1.1.0');
    expect(wider).toMatchObject({ passed: false, status: 'rejected', against: '1.0.0' });
    expect(wider.differences).toEqual(["input 'input' dim 1 is [batch, 9], the active version [batch, 8]"]);
    expect(wider.reasons[0]).toMatch(/incompatible with the active version 1\.0\.0: input 'input' dim 1/);

    await register(tenant, buildMlpOnnx({ ...randomMlp([8, 6, 4], 7), outputName: 'probs' }), '1.2.0');
    const renamed = await validate(tenant, '1.2.0');
    expect(renamed.status).toBe('rejected');
    expect(renamed.differences).toEqual(["output 'output' is missing"]);
    const evidence = (await versionTransitions(db, tenant, 'digits', '1.2.0')).at(-1)?.evidence;
    expect(evidence).toMatchObject({ passed: false, reasons: [expect.stringContaining("output 'output' is missing")] });

    // A compatible candidate (same signature, other weights) passes against the active version.
    await register(tenant, buildMlpOnnx(randomMlp([8, 6, 4], 8)), '1.3.0');
    expect(await validate(tenant, '1.3.0')).toMatchObject({ passed: true, against: '1.0.0', differences: [] });
  });

  it('when a model cannot load, gives NaN or fails at run time, then it is not validated, with the reason', async () => {
    const tenant = await withActive();
    await register(tenant, new TextEncoder().encode('not an onnx model'), '2.0.0');
    const junk = await validate(tenant, '2.0.0');
    expect(junk.status).toBe('rejected');
    expect(junk.reasons[0]).toMatch(/cannot load/);

    const nan: MlpGraph = randomMlp([8, 6, 4], 9);
    nan.layers[0]!.weights[3] = NaN;
    await register(tenant, buildMlpOnnx(nan), '2.1.0');
    const nanResult = await validate(tenant, '2.1.0');
    expect(nanResult.status).toBe('rejected');
    expect(nanResult.reasons).toEqual([expect.stringMatching(/output 'output' has \d+ NaN or infinite values/)]);

    const erroring: CanaryDefect = { kind: 'error', rate: 1 };
    await register(tenant, buildCanaryOnnx(graph, erroring), '2.2.0');
    const failed = await validate(tenant, '2.2.0');
    expect(failed.status).toBe('rejected');
    expect(failed.reasons[0]).toMatch(/golden batch failed to run: .*Gather/);
  });

  it('when a model is slower than the bound, or differs from expected golden outputs, then it is rejected', async () => {
    const tenant = await withActive();
    await register(tenant, buildMlpOnnx(graph), '2.9.0');
    const good = await validate(tenant, '2.9.0', { latencyBoundMs: 1000 });
    expect(good.passed).toBe(true);
    await register(tenant, buildCanaryOnnx(graph, { kind: 'slow', size: 256, repeats: 30 }), '3.0.0');
    // The bound sits well above the good model's runs (about 0.2 ms) and well below the slow one's (~1 GFLOP per run:
    // about 8 ms on an idle 2-core EPYC, so a 10 ms floor let it pass). From the good model's median, not its p95: on a
    // loaded machine one descheduled run can make a tiny model's p95 tens of ms.
    const bound = Math.max(1, good.latency!.p50Ms * 5);
    const slow = await validate(tenant, '3.0.0', { latencyBoundMs: bound });
    expect(slow.status).toBe('rejected');
    expect(slow.reasons).toEqual([expect.stringMatching(/p95 latency .* exceeds the bound/)]);

    const rows = Array.from({ length: 3 }, (_, r) => Array.from({ length: 8 }, (_, c) => ((r * 8 + c) % 5) / 5));
    const expected = { output: chunk(Array.from(forwardMlp(graph, Float32Array.from(rows.flat()), 3)), 4) };
    await register(tenant, buildCanaryOnnx(graph, { kind: 'wrong' }), '3.1.0');
    const wrong = await validate(tenant, '3.1.0', { golden: { inputs: { input: rows }, expected } });
    expect(wrong.status).toBe('rejected');
    expect(wrong.reasons[0]).toMatch(/differ from the golden outputs/);
    await register(tenant, buildMlpOnnx(graph), '3.2.0');
    const same = await validate(tenant, '3.2.0', { golden: { inputs: { input: rows }, expected } });
    expect(same).toMatchObject({ passed: true, status: 'validated' });
    expect(same.golden!.maxAbsDiff).toBeLessThan(1e-5);
  });

  it('when the version is already canary or does not exist, then the activity fails without retrying', async () => {
    const tenant = await withActive();
    await register(tenant, buildMlpOnnx(randomMlp([8, 6, 4], 10)), '4.0.0');
    await validate(tenant, '4.0.0');
    await setVersionStatus(db, tenant, 'digits', '4.0.0', { to: 'canary', actor: 'user:test', evidence: {} });
    await expect(validate(tenant, '4.0.0', { force: true })).rejects.toMatchObject({
      nonRetryable: true,
      message: expect.stringMatching(/is canary/) as string,
    });
    await expect(validate(tenant, '9.9.9')).rejects.toMatchObject({ nonRetryable: true });
  });
});

function chunk(values: number[], width: number): number[][] {
  return Array.from({ length: values.length / width }, (_, i) => values.slice(i * width, (i + 1) * width));
}
