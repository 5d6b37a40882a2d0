/**
 * The model registry's routes (api/routes/models.ts) against the real API, PostgreSQL and blob store: an ONNX file
 * streamed in and downloaded byte for byte, registration by a stored blob or a federation campaign's result, every bad
 * input a clear 4xx (size cap, media type, empty body, bad name/version, both sources, a taken version, another
 * tenant's blob or campaign), roles, tenant isolation, retirement along the state machine, and validation through
 * modelValidationWorkflow on real orchestration and inference workers (an incompatible candidate is rejected).
 */
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, ensureTenant } from '../../common/api-keys.js';
import { blobStoreOf } from '../../common/blob-store/index.js';
import type { Config } from '../../common/config.js';
import { setVersionStatus } from '../../common/models.js';
import { buildMlpOnnx, randomMlp } from '../../common/onnx/builder.js';
import { eventually, json, useStack, type RunningApi } from '../helpers/stack.js';

const MAX = 4 * 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('model registry API', () => {
  let config: Config;
  let api: RunningApi;
  let tenant: string;
  let viewerKey: string;
  let operatorKey: string;
  let otherKey: string;
  let otherTenant: string;
  const model = (seed: number) => buildMlpOnnx(randomMlp([8, 4], seed));
  const name = () => `m-${randomUUID().slice(0, 8)}`;

  const as = (key: string, path: string, init: RequestInit = {}) =>
    fetch(`${api.url}${path}`, { ...init, headers: { 'x-api-key': key, ...(init.headers as Record<string, string>) } });
  const upload = (path: string, body: Uint8Array | ReadableStream, key = api.key, type = 'application/octet-stream') =>
    as(key, path, { method: 'POST', headers: { 'content-type': type }, body, duplex: 'half' });
  const post = (path: string, body: unknown, key = api.key) =>
    as(key, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  useStack((stack) => ({ config, api } = stack), {
    env: { MODEL_UPLOAD_MAX_BYTES: String(MAX) },
    pools: ['orchestration', 'inference'],
  });
  beforeAll(async () => {
    tenant = config.BOOTSTRAP_TENANT;
    viewerKey = (await createApiKey(api.db, { tenantId: tenant, name: `v-${name()}`, roles: ['viewer'] })).key;
    operatorKey = (await createApiKey(api.db, { tenantId: tenant, name: `o-${name()}`, roles: ['operator'] })).key;
    otherTenant = `models-other-${randomUUID().slice(0, 8)}`;
    await ensureTenant(api.db, otherTenant, 'another tenant');
    otherKey = (await createApiKey(api.db, { tenantId: otherTenant, name: 'other', roles: ['admin'] })).key;
  });

  it('when an ONNX file is uploaded, then it is registered and downloads byte for byte; listing and reading show it', async () => {
    const m = name();
    const bytes = model(1);
    const res = await upload(`/api/v1/models/${m}/versions?version=1.2.0`, bytes, operatorKey);
    expect(res.status, await res.clone().text()).toBe(201);
    expect(res.headers.get('location')).toBe(`/api/v1/models/${m}/versions/1.2.0`);
    const created = await json(res);
    expect(created).toMatchObject({
      name: m,
      version: '1.2.0',
      status: 'registered',
      signature: null,
      artifact: { sha256: sha(bytes), size_bytes: bytes.length },
      provenance: { by: { kind: 'person', principal: expect.stringMatching(/^user:/) as string } },
    });
    const second = await json(await upload(`/api/v1/models/${m}/versions`, model(2)));
    expect(second.version).toBe('1.2.1');

    const download = await as(viewerKey, `/api/v1/models/${m}/versions/1.2.0/artifact`);
    expect(download.status).toBe(200);
    expect(download.headers.get('etag')).toBe(`"${sha(bytes)}"`);
    expect(download.headers.get('content-type')).toMatch(/application\/onnx/);
    expect(Buffer.from(await download.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);

    const one = await json(await as(viewerKey, `/api/v1/models/${m}`));
    expect(one).toMatchObject({ name: m, active: null });
    expect((one.versions as { version: string }[]).map((v) => v.version)).toEqual(['1.2.1', '1.2.0']);
    const version = await json(await as(viewerKey, `/api/v1/models/${m}/versions/1.2.0`));
    expect(version.history).toEqual([expect.objectContaining({ from: null, to: 'registered' })]);
    const list = await json(await as(viewerKey, '/api/v1/models'));
    expect(list.items).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: m, versions: 2, latest: '1.2.1' })]),
    );
  });

  it('when an upload streams in chunks past the cap, then it is a 413 and nothing is registered', async () => {
    const m = name();
    const chunk = new Uint8Array(256 * 1024).fill(7);
    let sent = 0;
    const body = Readable.toWeb(
      Readable.from(
        (function* () {
          while (sent < MAX + chunk.length * 2) {
            sent += chunk.length;
            yield chunk;
          }
        })(),
      ),
    ) as ReadableStream;
    const res = await upload(`/api/v1/models/${m}/versions`, body).catch((err: Error) => err);
    // The API may answer before the client finished sending; either way it is a 413, never a registration.
    if (res instanceof Response) expect(res.status).toBe(413);
    expect((await as(viewerKey, `/api/v1/models/${m}`)).status).toBe(404);
    const declared = await as(api.key, `/api/v1/models/${m}/versions`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(MAX + 1) },
      body: new Uint8Array(MAX + 1),
    });
    expect(declared.status).toBe(413);
    expect((await json(declared)).detail).toMatch(/MODEL_UPLOAD_MAX_BYTES/);
  });

  it('when the request is malformed, then each answer is a clear 4xx', async () => {
    const m = name();
    const problems: [Response, number, RegExp][] = [
      [await upload(`/api/v1/models/${m}/versions`, model(1), api.key, 'text/plain'), 415, /octet-stream/],
      [await upload(`/api/v1/models/${m}/versions`, new Uint8Array(0)), 400, /empty/],
      [await upload(`/api/v1/models/${m}/versions?version=1.2`, model(1)), 400, /semantic version/],
      [await upload(`/api/v1/models/${m}/versions?colour=red`, model(1)), 400, /query/],
      [await upload(`/api/v1/models/Not%20OK/versions`, model(1)), 400, /model name/],
      [await post(`/api/v1/models/${m}/versions`, {}), 400, /exactly one of artifact/],
      [
        await post(`/api/v1/models/${m}/versions`, { artifact: { sha256: 'a'.repeat(64) }, from: { campaignId: 'c' } }),
        400,
        /exactly one/,
      ],
      [await post(`/api/v1/models/${m}/versions`, { artifact: { sha256: 'nope' } }), 400, /sha256/],
      [await post(`/api/v1/models/${m}/versions`, { artifact: { sha256: 'a'.repeat(64) } }), 404, /no blob/],
      [
        await post(`/api/v1/models/${m}/versions`, {
          artifact: { sha256: 'a'.repeat(64) },
          settings: { serving: { maxBatchSize: 0, maxWaitMs: 1, concurrency: 1 } },
        }),
        400,
        /maxBatchSize/,
      ],
      [await as(viewerKey, `/api/v1/models/${m}/versions/1.0.0`), 404, /no version/],
      [await as(viewerKey, `/api/v1/models/${m}/versions/latest`), 400, /semantic version/],
    ];
    for (const [res, status, detail] of problems) {
      expect(res.status, res.url).toBe(status);
      expect(res.headers.get('content-type')).toMatch(/problem\+json/);
      expect((await json(res)).detail).toMatch(detail);
    }
  });

  it('when a stored blob or a campaign result is registered, then provenance says where it came from', async () => {
    const m = name();
    const bytes = model(3);
    const ref = await blobStoreOf(api.db).put(tenant, bytes);
    const byBlob = await post(`/api/v1/models/${m}/versions`, {
      version: '0.1.0',
      artifact: { sha256: ref.sha256, tenantId: tenant },
      metrics: { accuracy: 0.91 },
      settings: { serving: { maxBatchSize: 8, maxWaitMs: 2, concurrency: 1 } },
      data: { dataset: 'mnist' },
    });
    expect(byBlob.status).toBe(201);
    expect(await json(byBlob)).toMatchObject({
      metrics: { accuracy: 0.91 },
      provenance: { data: { dataset: 'mnist' } },
    });
    // The same version again with the same file is the same registration; with another file it is a conflict.
    expect(
      (await post(`/api/v1/models/${m}/versions`, { version: '0.1.0', artifact: { sha256: ref.sha256 } })).status,
    ).toBe(201);
    const other = await blobStoreOf(api.db).put(tenant, model(4));
    const taken = await post(`/api/v1/models/${m}/versions`, { version: '0.1.0', artifact: { sha256: other.sha256 } });
    expect(taken.status).toBe(409);
    // Another tenant's blob is not found, whether named by digest or by a BlobRef of that tenant.
    const foreign = await blobStoreOf(api.db).put(otherTenant, model(5));
    expect((await post(`/api/v1/models/${m}/versions`, { artifact: { sha256: foreign.sha256 } })).status).toBe(404);
    expect((await post(`/api/v1/models/${m}/versions`, { artifact: { ...foreign } })).status).toBe(404);

    // A federation campaign of the tenant with its ONNX result, one without a result yet, and another tenant's.
    const campaign = async (id: string, owner: string, result: unknown) =>
      api.db.query(
        `INSERT INTO federation_campaigns (id, tenant_id, model_name, config, status, result, created_by)
         VALUES ($1, $2, $3, '{}', $4, $5, 'user:test')`,
        [id, owner, m, result ? 'completed' : 'running', result ? JSON.stringify(result) : null],
      );
    const done = `c-${randomUUID().slice(0, 8)}`;
    const running = `c-${randomUUID().slice(0, 8)}`;
    const theirs = `c-${randomUUID().slice(0, 8)}`;
    const onnx = await blobStoreOf(api.db).put(tenant, model(6));
    await campaign(done, tenant, { onnx, rounds: 3 });
    await campaign(running, tenant, null);
    await campaign(theirs, otherTenant, { onnx: foreign });
    const fromCampaign = await post(`/api/v1/models/${m}/versions`, { from: { campaignId: done } });
    expect(fromCampaign.status).toBe(201);
    expect(await json(fromCampaign)).toMatchObject({
      version: '0.1.1',
      artifact: { sha256: onnx.sha256 },
      provenance: { by: { kind: 'workflow', workflowType: 'federationCampaignWorkflow' }, data: { campaignId: done } },
    });
    expect((await post(`/api/v1/models/${m}/versions`, { from: { campaignId: running } })).status).toBe(409);
    expect((await post(`/api/v1/models/${m}/versions`, { from: { campaignId: theirs } })).status).toBe(404);
  });

  it('when callers lack the role or belong to another tenant, then they are refused or see nothing', async () => {
    const m = name();
    expect((await upload(`/api/v1/models/${m}/versions`, model(1), viewerKey)).status).toBe(403);
    expect((await upload(`/api/v1/models/${m}/versions`, model(1), operatorKey)).status).toBe(201);
    expect((await post(`/api/v1/models/${m}/versions/1.0.0/retire`, {}, operatorKey)).status).toBe(403);
    for (const path of [
      `/api/v1/models/${m}`,
      `/api/v1/models/${m}/versions/1.0.0`,
      `/api/v1/models/${m}/versions/1.0.0/artifact`,
    ])
      expect((await as(otherKey, path)).status, path).toBe(404);
    expect((await post(`/api/v1/models/${m}/versions/1.0.0/retire`, {}, otherKey)).status).toBe(404);
    const theirs = await json(await as(otherKey, '/api/v1/models'));
    expect(theirs.items).toEqual([]);
  });

  it('when validation is asked for, then the inference pool validates a compatible version and rejects an incompatible one', async () => {
    const m = name();
    const first = await json(await upload(`/api/v1/models/${m}/versions?validate=true`, model(1)));
    expect(first.validation_workflow_id).toBe(`model-validate-${tenant}-${m}-1.0.0`);
    const settled = (version: string) =>
      eventually(
        async () => {
          const v = await json(await as(viewerKey, `/api/v1/models/${m}/versions/${version}`));
          return v.status === 'registered' ? undefined : v;
        },
        { timeoutMs: 60_000 },
      );
    const validated = await settled('1.0.0');
    expect(validated).toMatchObject({
      status: 'validated',
      signature: { inputs: [{ name: 'input', type: 'float32', shape: ['batch', 8] }] },
      validation: { passed: true },
    });
    await setVersionStatus(api.db, tenant, m, '1.0.0', { to: 'active', actor: 'user:test', evidence: {} });

    const wider = buildMlpOnnx(randomMlp([9, 4], 2));
    await upload(`/api/v1/models/${m}/versions`, wider);
    const started = await post(`/api/v1/models/${m}/versions/1.0.1/validate`, { runs: 3 }, operatorKey);
    expect(started.status).toBe(202);
    const rejected = await settled('1.0.1');
    expect(rejected).toMatchObject({ status: 'rejected', validation: { passed: false, against: '1.0.0' } });
    expect((rejected.validation as { reasons: string[] }).reasons[0]).toMatch(/input 'input' dim 1 is \[batch, 9\]/);
    // Validating again what is settled, or what does not exist, is refused.
    expect((await post(`/api/v1/models/${m}/versions/1.0.1/validate`, {})).status).toBe(409);
    expect((await post(`/api/v1/models/${m}/versions/7.0.0/validate`, {})).status).toBe(404);
    expect((await post(`/api/v1/models/${m}/versions/1.0.0/validate`, { runs: 0 })).status).toBe(400);
  });

  it('when a version is retired, then it moves along the state machine; a canary cannot be retired', async () => {
    const m = name();
    await upload(`/api/v1/models/${m}/versions`, model(1));
    await upload(`/api/v1/models/${m}/versions`, model(2));
    const retired = await post(`/api/v1/models/${m}/versions/1.0.0/retire`, { reason: 'superseded' });
    expect(retired.status).toBe(200);
    expect((await json(retired)).status).toBe('retired');
    const history = (await json(await as(viewerKey, `/api/v1/models/${m}/versions/1.0.0`))).history as unknown[];
    expect(history.at(-1)).toMatchObject({ to: 'retired', evidence: { reason: 'superseded', via: 'api' } });
    await setVersionStatus(api.db, tenant, m, '1.0.1', { to: 'validated', actor: 'test', evidence: {} });
    await setVersionStatus(api.db, tenant, m, '1.0.1', { to: 'canary', actor: 'test', evidence: {} });
    const refused = await post(`/api/v1/models/${m}/versions/1.0.1/retire`, {});
    expect(refused.status).toBe(409);
    expect(await json(refused)).toMatchObject({
      detail: expect.stringMatching(/is canary/) as string,
      status_now: 'canary',
    });
    expect((await post(`/api/v1/models/${m}/versions/1.0.1/retire`, { colour: 'red' })).status).toBe(400);
  });
});
