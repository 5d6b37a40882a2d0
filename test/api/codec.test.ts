import { randomBytes, randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../common/api-keys.js';
import type { Config } from '../../common/config.js';
import { taskWorkflowId } from '../../workflows/task/definitions.js';
import { eventually, json, sampleRepo, startApi, testConfig, useStack, type RunningApi } from '../helpers/stack.js';

interface PayloadJson {
  metadata: Record<string, string>;
  data: string;
}
const b64 = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString('base64');
const unb64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');
const toJson = (p: { metadata?: Record<string, Uint8Array> | null; data?: Uint8Array | null }): PayloadJson => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, b64(v)])),
  data: b64(p.data),
});

const UI_ORIGIN = 'http://ui.agency.test:8233';

describe('payload encryption and the Web UI codec endpoint against the real stack', () => {
  let config: Config;
  let api: RunningApi;
  /** A client with no codec: what the Temporal server (and anyone reading it directly) sees. */
  let plain: Client;
  let viewerKey: string;
  let approverKey: string;

  useStack((stack) => ({ config, api } = stack), {
    env: {
      PAYLOAD_KEYS: `old:${randomBytes(32).toString('base64')},current:${randomBytes(32).toString('base64')}`,
      PAYLOAD_KEY_ID: 'current',
      TEMPORAL_UI_URL: `${UI_ORIGIN}/`,
    },
  });
  beforeAll(async () => {
    plain = new Client({
      connection: await Connection.connect({ address: config.TEMPORAL_ADDRESS }),
      namespace: config.TEMPORAL_NAMESPACE,
    });
    const tenantId = config.BOOTSTRAP_TENANT;
    const suffix = randomUUID().slice(0, 8);
    viewerKey = (await createApiKey(api.db, { tenantId, name: `codec-viewer-${suffix}`, roles: ['viewer'] })).key;
    approverKey = (await createApiKey(api.db, { tenantId, name: `codec-approver-${suffix}`, roles: ['approver'] })).key;
  });
  afterAll(async () => {
    await plain?.connection.close();
  });

  const codecPost = (op: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${api.url}/api/v1/codec/${op}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-namespace': config.TEMPORAL_NAMESPACE, ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  it('when a task runs with PAYLOAD_KEYS, then the server holds ciphertext and the codec endpoint decrypts it', async () => {
    const title = `Fix average, secret marker ${randomUUID()}`;
    const workspace = await sampleRepo();
    const res = await api.fetch('/api/v1/tasks', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title, workspace }),
    });
    expect(res.status).toBe(202);
    const { id } = await json<{ id: string }>(res);

    // The workers and the API (both with the codec) carry the task through to the end.
    const done = await eventually(
      async () => {
        const t = await json<{ status: string; temporalStatus: string }>(await api.fetch(`/api/v1/tasks/${id}`));
        return ['completed', 'failed', 'canceled'].includes(t.status) && t.temporalStatus !== 'RUNNING' ? t : undefined;
      },
      { timeoutMs: 60_000, what: `task ${id} to end` },
    );
    expect(done.status).toBe('completed');

    // What the server stores: encrypted input with the active key id, no title in the bytes.
    const history = await plain.workflow.getHandle(taskWorkflowId(id)).fetchHistory();
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    const input = started?.input?.payloads?.[0];
    expect(input).toBeDefined();
    expect(Buffer.from(input?.metadata?.encoding ?? []).toString()).toBe('binary/encrypted');
    expect(Buffer.from(input?.metadata?.['encryption-key-id'] ?? []).toString()).toBe('current');
    expect(Buffer.from(input?.data ?? []).includes(title)).toBe(false);
    expect(Buffer.from(input?.data ?? []).includes('secret marker')).toBe(false);
    const memo = started?.memo?.fields?.tenantId;
    expect(Buffer.from(memo?.metadata?.encoding ?? []).toString()).toBe('binary/encrypted');
    // Without the codec the result cannot be read.
    await expect(plain.workflow.getHandle(taskWorkflowId(id)).result()).rejects.toThrow();

    // The Web UI's decode call: the original JSON comes back.
    const decoded = await codecPost('decode', { payloads: [toJson(input!)] }, { 'x-api-key': viewerKey });
    expect(decoded.status).toBe(200);
    expect(decoded.headers.get('cache-control')).toBe('no-store');
    const body = await json<{ payloads: PayloadJson[] }>(decoded);
    expect(body.payloads).toHaveLength(1);
    expect(unb64(body.payloads[0]?.metadata.encoding)).toBe('json/plain');
    expect(JSON.parse(unb64(body.payloads[0]?.data))).toMatchObject({ id, title, workspace });

    // The result event decodes the same way.
    const completed = history.events?.find((e) => e.workflowExecutionCompletedEventAttributes);
    const result = completed?.workflowExecutionCompletedEventAttributes?.result?.payloads?.[0];
    expect(Buffer.from(result?.metadata?.encoding ?? []).toString()).toBe('binary/encrypted');
    const decodedResult = await json<{ payloads: PayloadJson[] }>(
      await codecPost('decode', { payloads: [toJson(result!)] }, { 'x-api-key': viewerKey }),
    );
    expect(JSON.parse(unb64(decodedResult.payloads[0]?.data))).toMatchObject({ filesChanged: ['src/calculator.js'] });
  });

  it('when the UI encodes a value, then it is encrypted with the active key and decodes back', async () => {
    const original = { metadata: { encoding: b64(Buffer.from('json/plain')) }, data: b64(Buffer.from('{"a":1}')) };
    const encodedRes = await codecPost('encode', { payloads: [original] }, { 'x-api-key': viewerKey });
    expect(encodedRes.status).toBe(200);
    const encoded = await json<{ payloads: PayloadJson[] }>(encodedRes);
    expect(unb64(encoded.payloads[0]?.metadata.encoding)).toBe('binary/encrypted');
    expect(unb64(encoded.payloads[0]?.metadata['encryption-key-id'])).toBe('current');
    const back = await json<{ payloads: PayloadJson[] }>(
      await codecPost('decode', encoded, { 'x-api-key': viewerKey }),
    );
    expect(back.payloads).toEqual([original]);
  });

  it('when the preflight comes from the Web UI origin, then it gets CORS headers without credentials; other origins get none', async () => {
    const preflight = (origin: string): Promise<Response> =>
      fetch(`${api.url}/api/v1/codec/decode`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,x-namespace,authorization',
        },
      });
    const ok = await preflight(UI_ORIGIN);
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
    expect(ok.headers.get('access-control-allow-credentials')).toBe('true');
    expect(ok.headers.get('access-control-allow-methods')).toMatch(/POST/);
    expect(ok.headers.get('access-control-allow-headers')).toBe('content-type, x-namespace, authorization');
    expect(ok.headers.get('vary')).toMatch(/origin/i);

    const other = await preflight('http://evil.example');
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    expect(other.headers.get('access-control-allow-credentials')).toBeNull();
    expect(other.headers.get('access-control-allow-headers')).toBeNull();

    // The real request from the UI origin carries CORS headers too, even when it is refused (the UI can read why).
    const anonymous = await codecPost('decode', { payloads: [] }, { origin: UI_ORIGIN });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
    const fromElsewhere = await codecPost(
      'decode',
      { payloads: [] },
      { origin: 'http://evil.example', 'x-api-key': viewerKey },
    );
    expect(fromElsewhere.status).toBe(200);
    expect(fromElsewhere.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('when the caller lacks the viewer role, then decoding is refused with 403', async () => {
    const res = await codecPost('decode', { payloads: [] }, { 'x-api-key': approverKey });
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
  });

  it('when the body is malformed, the namespace is another, or a payload does not decrypt, then 400 problem+json', async () => {
    const auth = { 'x-api-key': viewerKey };
    const cases: [string | object, Record<string, string>, RegExp][] = [
      ['{not json', {}, /not valid JSON/],
      [{ payload: [] }, {}, /payloads/],
      [{ payloads: [{ metadata: { encoding: '***' }, data: '' }] }, {}, /base64/],
      [{ payloads: [] }, { 'x-namespace': 'other' }, /serves namespace agency/],
      [
        {
          payloads: [
            {
              metadata: {
                encoding: b64(Buffer.from('binary/encrypted')),
                'encryption-key-id': b64(Buffer.from('retired')),
              },
              data: b64(randomBytes(64)),
            },
          ],
        },
        {},
        /key "retired", which is not configured/,
      ],
      [
        {
          payloads: [
            {
              metadata: {
                encoding: b64(Buffer.from('binary/encrypted')),
                'encryption-key-id': b64(Buffer.from('old')),
              },
              data: b64(randomBytes(64)),
            },
          ],
        },
        {},
        /key "old" failed authentication/,
      ],
    ];
    for (const [body, headers, detail] of cases) {
      const res = await codecPost('decode', body, { ...auth, ...headers });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect((await json<{ detail: string }>(res)).detail).toMatch(detail);
    }
  });
});

describe('the codec endpoint without PAYLOAD_KEYS', () => {
  let api: RunningApi;
  beforeAll(async () => {
    api = await startApi(testConfig());
  });
  afterAll(async () => {
    await api?.stop();
  });

  it('when no codec is configured, then encode and decode answer 404 problem+json', async () => {
    for (const op of ['encode', 'decode']) {
      const res = await api.fetch(`/api/v1/codec/${op}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ payloads: [] }),
      });
      expect(res.status).toBe(404);
      expect((await json<{ detail: string }>(res)).detail).toMatch(/PAYLOAD_KEYS is unset/);
    }
  });
});
