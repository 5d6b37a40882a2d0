/**
 * The dev session's codec credential (api/routes/codec.ts), without servers: the token in the path is accepted only
 * from a loopback peer, unproxied, addressed to a loopback host name, from the Web UI's origin; the route exists only
 * when CODEC_DEV_TOKEN is set; the token never reaches the request log.
 */
import { randomBytes } from 'node:crypto';
import { request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { defaultPayloadConverter } from '@temporalio/common';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppDeps } from '../../api/app.js';
import { errorHandler } from '../../api/errors.js';
import { requestLog } from '../../api/request-log.js';
import { codecCors, devCodecEndpoint, isLoopbackAddress, redactCodecDevPath } from '../../api/routes/codec.js';
import { loadConfig, type Config } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import { codecFromConfig } from '../../temporal/codec.js';

const UI = 'http://localhost:8233';
const token = randomBytes(32).toString('base64url');

async function serve(config: Config, logLines: string[]): Promise<{ url: string; server: Server }> {
  const log = createLogger(
    'info',
    {},
    new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(chunk.toString());
        done();
      },
    }),
  );
  const app = express();
  app.use(requestLog(log));
  app.use(express.json());
  app.use(codecCors({ config } as AppDeps));
  app.use((_req, res) => void res.status(418).end()); // stands for the authenticator: not reached by dev routes
  app.use(errorHandler(log));
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('the dev session codec credential', () => {
  const logLines: string[] = [];
  let config: Config;
  let url: string;
  let server: Server;
  let body: string;

  beforeAll(async () => {
    config = loadConfig({
      PAYLOAD_KEYS: `d:${randomBytes(32).toString('base64')}`,
      PAYLOAD_KEY_ID: 'd',
      TEMPORAL_UI_URL: UI,
      CODEC_DEV_TOKEN: token,
    });
    ({ url, server } = await serve(config, logLines));
    const [p] = await codecFromConfig(config)!.encode([defaultPayloadConverter.toPayload({ hello: 'world' })]);
    const b64 = (b: Uint8Array | null | undefined): string => Buffer.from(b ?? new Uint8Array()).toString('base64');
    body = JSON.stringify({
      payloads: [
        {
          metadata: Object.fromEntries(Object.entries(p!.metadata ?? {}).map(([k, v]) => [k, b64(v)])),
          data: b64(p!.data),
        },
      ],
    });
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const post = (path: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: UI, ...headers },
      body,
    });
  const endpoint = (t = token): string => new URL(devCodecEndpoint(url, t)).pathname;
  /** fetch() will not send another Host header (a browser after DNS rebinding does): node:http will. */
  const postAs = (path: string, headers: Record<string, string>): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = request(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: UI, ...headers },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(body);
    });

  it('when the UI calls with the session token, then it decodes (CORS for the UI origin only)', async () => {
    const res = await post(`${endpoint()}/decode`);
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(UI);
    const { payloads } = (await res.json()) as { payloads: { data: string }[] };
    expect(JSON.parse(Buffer.from(payloads[0]!.data, 'base64').toString())).toEqual({ hello: 'world' });
    const preflight = await fetch(`${url}${endpoint()}/decode`, { method: 'OPTIONS', headers: { origin: UI } });
    expect(preflight.status).toBe(204);
  });

  it('when the token, origin, host or proxying is wrong, then 401 and no plaintext', async () => {
    const cases: [string, string, Record<string, string>][] = [
      ['wrong token', `${endpoint(randomBytes(32).toString('base64url'))}/decode`, {}],
      ['empty token', '/api/v1/codec/dev//decode', {}],
      ['another origin', `${endpoint()}/decode`, { origin: 'http://evil.example' }],
      ['no origin', `${endpoint()}/decode`, { origin: '' }],
      ['proxied', `${endpoint()}/decode`, { 'x-forwarded-for': '203.0.113.9' }],
      ['forwarded', `${endpoint()}/decode`, { forwarded: 'for=203.0.113.9' }],
    ];
    for (const [what, path, headers] of cases) {
      const res = await post(path, headers);
      expect([401, 418], what).toContain(res.status); // 418: not this route at all (the authenticator's turn)
      if (what !== 'empty token') expect(res.status, what).toBe(401);
      expect(await res.text(), what).not.toContain('world');
    }
  });

  it('when the request is addressed to another host name (DNS rebinding), then 401', async () => {
    expect(await postAs(`${endpoint()}/decode`, { host: 'evil.example:8080' })).toBe(401);
    expect(await postAs(`${endpoint()}/decode`, { host: new URL(url).host })).toBe(200);
  });

  it('when requests are logged, then the token is not', () => {
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('\n')).not.toContain(token);
    expect(logLines.join('\n')).toContain('/api/v1/codec/dev/[redacted]/decode');
  });

  it('when CODEC_DEV_TOKEN is unset, then the dev routes do not exist', async () => {
    const lines: string[] = [];
    const plain = await serve(loadConfig({ TEMPORAL_UI_URL: UI }), lines);
    try {
      const res = await fetch(`${plain.url}/api/v1/codec/dev/${token}/decode`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: UI },
        body,
      });
      expect(res.status).toBe(418);
    } finally {
      plain.server.close();
    }
  });

  it('loopback addresses and log redaction', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) expect(isLoopbackAddress(a), a).toBe(true);
    for (const a of ['10.0.0.1', '::ffff:10.0.0.1', '0.0.0.0', '', undefined, '128.0.0.1', 'fe80::1'])
      expect(isLoopbackAddress(a), String(a)).toBe(false);
    expect(redactCodecDevPath(`/api/v1/codec/dev/${token}/decode`)).toBe('/api/v1/codec/dev/[redacted]/decode');
    expect(redactCodecDevPath('/api/v1/codec/decode')).toBe('/api/v1/codec/decode');
  });
});
