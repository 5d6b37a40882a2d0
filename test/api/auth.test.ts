/**
 * Authentication, roles and tenants over HTTP on the real stack: every registered route × every role, cross-tenant
 * access to every object type, a negative JWT suite (HS256 and a JWKS identity provider), key revocation and expiry,
 * rate limiting, security headers, and property-based fuzzing of every route with zero 5xx.
 */
import { createServer, type Server } from 'node:http';
import fc from 'fast-check';
import type { Express } from 'express';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.js';
import { OPERATIONS } from '../../api/routes/openapi.js';
import { createApiKey, type Role } from '../../common/api-keys.js';
import type { Config } from '../../common/config.js';
import { freePort } from '../helpers/ports.js';
import {
  eventually,
  json,
  sampleRepo,
  startApi,
  testConfig,
  testLog,
  useStack,
  type RunningApi,
} from '../helpers/stack.js';
import { calculatorSpec, taskClient } from '../helpers/tasks.js';

/** `authenticated`: any role gets in; what it may do is checked per call (the MCP endpoint, per tool). */
type Access = Role | 'public' | 'authenticated';

/** Every route the API registers and the role it needs. A route missing here fails the first test. */
const ROUTE_ROLES: Record<string, Access> = {
  'GET /health': 'public',
  'GET /health/temporal': 'public',
  'GET /health/database': 'public',
  'POST /api/v1/tasks': 'operator',
  'GET /api/v1/tasks': 'viewer',
  'GET /api/v1/tasks/:id': 'viewer',
  'GET /api/v1/tasks/:id/result': 'viewer',
  'GET /api/v1/tasks/:id/artifacts': 'viewer',
  'GET /api/v1/tasks/:id/artifacts/:sha256': 'viewer',
  'GET /api/v1/tasks/:id/audit': 'viewer',
  'GET /api/v1/tasks/:id/events': 'viewer',
  'POST /api/v1/tasks/:id/pause': 'operator',
  'POST /api/v1/tasks/:id/resume': 'operator',
  'POST /api/v1/tasks/:id/cancel': 'operator',
  'POST /api/v1/tasks/:id/clarify': 'operator',
  'POST /api/v1/tasks/:id/approval-token': 'approver',
  'POST /api/v1/tasks/:id/approve': 'approver',
  'POST /api/v1/tasks/:id/reject': 'approver',
  'GET /api/v1/council/sessions': 'viewer',
  'GET /api/v1/council/sessions/:id': 'viewer',
  'POST /api/v1/council/sessions/:id/approve': 'approver',
  'POST /api/v1/council/sessions/:id/reject': 'approver',
  'POST /api/v1/council/review': 'operator',
  'GET /api/v1/council/review/:id': 'viewer',
  'GET /api/v1/waivers': 'viewer',
  'POST /api/v1/waivers': 'operator',
  'GET /api/v1/waivers/:id': 'viewer',
  'PATCH /api/v1/waivers/:id': 'operator',
  'POST /api/v1/waivers/:id/approve': 'approver',
  'POST /api/v1/waivers/:id/revoke': 'approver',
  'GET /api/v1/tools/servers': 'viewer',
  'POST /api/v1/tools/servers': 'admin',
  'GET /api/v1/tools/servers/:id': 'viewer',
  'POST /api/v1/tools/servers/:id/refresh': 'admin',
  'PATCH /api/v1/tools/servers/:id': 'admin',
  'GET /api/v1/repositories': 'viewer',
  'POST /api/v1/repositories': 'admin',
  'GET /api/v1/repositories/:id': 'viewer',
  'DELETE /api/v1/repositories/:id': 'admin',
  'GET /api/v1/keys': 'admin',
  'POST /api/v1/keys': 'admin',
  'POST /api/v1/keys/:id/revoke': 'admin',
  'POST /api/v1/tenants': 'admin',
  'GET /api/v1/audit/events': 'viewer',
  'GET /api/v1/audit/events/:id': 'viewer',
  'GET /api/v1/audit/export': 'admin',
  'GET /api/v1/audit/verify': 'admin',
  'POST /api/v1/codec/encode': 'viewer',
  'POST /api/v1/codec/decode': 'viewer',
  // Models: the registry (M1), predictions and rollouts (serving), tuning runs.
  'GET /api/v1/models': 'viewer',
  'GET /api/v1/models/:name': 'viewer',
  'POST /api/v1/models/:name/versions': 'operator',
  'GET /api/v1/models/:name/versions/:version': 'viewer',
  'GET /api/v1/models/:name/versions/:version/artifact': 'viewer',
  'POST /api/v1/models/:name/versions/:version/validate': 'operator',
  'POST /api/v1/models/:name/versions/:version/retire': 'admin',
  'POST /api/v1/models/:name/predict': 'viewer',
  'POST /api/v1/models/:name/predictions/:id/feedback': 'operator',
  'POST /api/v1/models/:name/versions/:version/rollout': 'admin',
  'GET /api/v1/models/:name/versions/:version/rollout': 'viewer',
  'POST /api/v1/models/:name/versions/:version/rollout/promote': 'admin',
  'POST /api/v1/models/:name/versions/:version/rollout/abort': 'admin',
  'POST /api/v1/models/:name/versions/:version/rollout/pause': 'operator',
  'POST /api/v1/models/:name/versions/:version/rollout/resume': 'operator',
  'POST /api/v1/tuning/runs': 'operator',
  'GET /api/v1/tuning/runs/:id': 'viewer',
  'POST /api/v1/tuning/runs/:id/apply': 'admin',
  'POST /api/v1/tuning/runs/:id/cancel': 'operator',
  // Federation: participants, budgets, campaigns, schedules.
  'GET /api/v1/federation/participants': 'viewer',
  'POST /api/v1/federation/participants': 'admin',
  'GET /api/v1/federation/participants/:id': 'viewer',
  'PATCH /api/v1/federation/participants/:id': 'admin',
  'GET /api/v1/federation/budgets': 'viewer',
  'PUT /api/v1/federation/budgets': 'admin',
  'POST /api/v1/federation/campaigns': 'operator',
  'GET /api/v1/federation/campaigns': 'viewer',
  'GET /api/v1/federation/campaigns/:id': 'viewer',
  'POST /api/v1/federation/campaigns/:id/pause': 'operator',
  'POST /api/v1/federation/campaigns/:id/resume': 'operator',
  'POST /api/v1/federation/campaigns/:id/stop': 'operator',
  'POST /api/v1/federation/campaigns/:id/participants/:participant/opt-in': 'admin',
  'POST /api/v1/federation/campaigns/:id/participants/:participant/withdraw': 'admin',
  'POST /api/v1/federation/schedules': 'operator',
  'GET /api/v1/federation/schedules': 'viewer',
  'GET /api/v1/federation/schedules/:id': 'viewer',
  'POST /api/v1/federation/schedules/:id/pause': 'operator',
  'POST /api/v1/federation/schedules/:id/resume': 'operator',
  'POST /api/v1/federation/schedules/:id/trigger': 'operator',
  'PATCH /api/v1/federation/schedules/:id': 'operator',
  'DELETE /api/v1/federation/schedules/:id': 'operator',
  // CORS preflight for the Web UI: answered before authentication, as browsers send no credentials on it.
  'OPTIONS /api/v1/codec/encode': 'public',
  'OPTIONS /api/v1/codec/decode': 'public',
  'GET /metrics': 'public',
  'GET /api/v1/openapi.json': 'public',
  // MCP (Streamable HTTP, stateless): every role is let in; each tool checks its REST route's role (mcp.test.ts).
  'POST /mcp': 'authenticated',
  'GET /mcp': 'authenticated',
  'DELETE /mcp': 'authenticated',
};

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/** Every method + path registered on the Express app, walking mounted routers. */
function registeredRoutes(app: Express): string[] {
  const found: string[] = [];
  const walk = (stack: Layer[]): void => {
    for (const layer of stack) {
      if (layer.route) {
        const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
        for (const method of Object.keys(layer.route.methods)) {
          for (const p of paths) found.push(`${method.toUpperCase()} ${p}`);
        }
      } else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return [...new Set(found)].sort();
}

const concrete = (path: string): string =>
  path
    .replace(':sha256', 'a'.repeat(64))
    .replace(':id', 'WV-0001')
    .replace(/:(\w+)/g, 'x');

describe('authentication, roles and tenants', () => {
  let config: Config;
  let api: RunningApi;
  const keys = {} as Record<Role, string>;
  const as = (key: string, path: string, init: RequestInit = {}) =>
    fetch(`${api.url}${path}`, {
      ...init,
      headers: { 'x-api-key': key, 'content-type': 'application/json', ...(init.headers as object) },
    });

  useStack((stack) => ({ config, api } = stack));
  beforeAll(async () => {
    for (const role of ['viewer', 'operator', 'approver', 'admin'] as const) {
      keys[role] = (await createApiKey(api.db, { tenantId: 'default', name: `only-${role}`, roles: [role] })).key;
    }
  });

  it('when the app is built, then every registered route has a declared role in the matrix, and no entry is stale', () => {
    const app = createApp({ temporal: api.temporal, db: api.db, config, log: testLog });
    expect(registeredRoutes(app)).toEqual(Object.keys(ROUTE_ROLES).sort());
  });

  it('when each role calls each route, then exactly the roles that may are let through (admin implies every role)', async () => {
    const failures: string[] = [];
    for (const [route, needed] of Object.entries(ROUTE_ROLES)) {
      if (needed === 'public') continue;
      const [method, path] = route.split(' ') as [string, string];
      for (const role of ['viewer', 'operator', 'approver', 'admin'] as const) {
        const res = await as(keys[role], concrete(path), {
          method,
          body: ['GET', 'OPTIONS'].includes(method) ? undefined : '{}',
        });
        if (path.endsWith('/events') && res.status === 200) await res.body?.cancel();
        else await res.arrayBuffer();
        const allowed = needed === 'authenticated' || role === needed || role === 'admin';
        if (res.status === 401) failures.push(`${route} as ${role}: 401`);
        if (allowed && res.status === 403) failures.push(`${route} as ${role}: 403 but should pass`);
        if (!allowed && res.status !== 403) failures.push(`${route} as ${role}: ${res.status} but should be 403`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('when no or bad credentials are sent, then 401 problem+json with a challenge; health stays public', async () => {
    const none = await fetch(`${api.url}/api/v1/tasks`);
    expect(none.status).toBe(401);
    expect(none.headers.get('content-type')).toContain('application/problem+json');
    expect(none.headers.get('www-authenticate')).toContain('Bearer');
    for (const key of ['nonsense', `ak_abcdefgh_${'A'.repeat(43)}`]) {
      const res = await fetch(`${api.url}/api/v1/tasks`, { headers: { 'x-api-key': key } });
      expect(res.status).toBe(401);
    }
    expect((await fetch(`${api.url}/health`)).status).toBe(200);
  });

  it('when responses go out, then security headers are set and no CORS is granted', async () => {
    const res = await fetch(`${api.url}/api/v1/tasks`, {
      headers: { 'x-api-key': keys.viewer, origin: 'https://evil.example' },
    });
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('strict-transport-security')).toBeTruthy();
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('when a key is revoked or expires, then it stops working at once; its last use is recorded', async () => {
    const created = await json<{ id: string; key: string }>(
      await as(keys.admin, '/api/v1/keys', {
        method: 'POST',
        body: JSON.stringify({ name: 'ci-bot', roles: ['viewer'] }),
      }),
    );
    expect((await as(created.key, '/api/v1/tasks')).status).toBe(200);
    const listed = await json<{ items: { id: string; lastUsedAt: string | null; prefix: string }[] }>(
      await as(keys.admin, '/api/v1/keys'),
    );
    const entry = listed.items.find((k) => k.id === created.id)!;
    expect(entry.lastUsedAt).not.toBeNull();
    expect(JSON.stringify(listed)).not.toContain(created.key);

    expect((await as(keys.admin, `/api/v1/keys/${created.id}/revoke`, { method: 'POST', body: '{}' })).status).toBe(
      200,
    );
    const revoked = await as(created.key, '/api/v1/tasks');
    expect(revoked.status).toBe(401);
    expect((await json<{ detail: string }>(revoked)).detail).toBe('API key revoked');

    const shortLived = await json<{ key: string }>(
      await as(keys.admin, '/api/v1/keys', {
        method: 'POST',
        body: JSON.stringify({
          name: 'short',
          roles: ['viewer'],
          expires_at: new Date(Date.now() + 1500).toISOString(),
        }),
      }),
    );
    expect((await as(shortLived.key, '/api/v1/tasks')).status).toBe(200);
    await eventually(async () => (await as(shortLived.key, '/api/v1/tasks')).status === 401, {
      what: 'the key to expire',
    });

    const actions = (
      await api.db.query<{ action: string }>(`SELECT action FROM audit_events WHERE subject = $1 ORDER BY seq`, [
        created.id,
      ])
    ).rows;
    expect(actions.map((a) => a.action)).toEqual(['key.created', 'key.revoked']);
  });

  it('when another tenant asks for this tenant’s objects, then every one is a 404, and its lists are empty of them', async () => {
    const client = taskClient(() => api);
    const id = await client.submit({ title: 'Tenant A task', workspace: await sampleRepo(), spec: calculatorSpec() });
    const done = await client.finished(id);
    expect(done.status).toBe('completed');
    const diff = done.result!.diffRef!.sha256;
    const session = done.result!.verdicts[0]!.sessionId;
    await as(keys.admin, '/api/v1/waivers', {
      method: 'POST',
      body: JSON.stringify({
        id: 'WV-3001',
        gates: ['lint'],
        reason: 'tenant A only waiver',
        impact_level: 'low',
        mitigation: 'none needed',
        expires_at: new Date(Date.now() + 86_400_000).toISOString(),
      }),
    });
    const adminKeyId = (await json<{ items: { id: string; name: string }[] }>(await as(keys.admin, '/api/v1/keys')))
      .items[0]!.id;

    const tenant = await as(keys.admin, '/api/v1/tenants', {
      method: 'POST',
      body: JSON.stringify({ id: 'tenant-b', name: 'Tenant B' }),
    });
    expect(tenant.status).toBe(201);
    const other = (await json<{ adminKey: { key: string } }>(tenant)).adminKey.key;

    const probes: [string, string][] = [
      ['GET', `/api/v1/tasks/${id}`],
      ['GET', `/api/v1/tasks/${id}/result`],
      ['GET', `/api/v1/tasks/${id}/artifacts`],
      ['GET', `/api/v1/tasks/${id}/artifacts/${diff}`],
      ['GET', `/api/v1/tasks/${id}/audit`],
      ['GET', `/api/v1/tasks/${id}/events`],
      ['POST', `/api/v1/tasks/${id}/cancel`],
      ['POST', `/api/v1/tasks/${id}/pause`],
      ['GET', `/api/v1/council/sessions/${session}`],
      ['POST', `/api/v1/council/sessions/${session}/approve`],
      ['GET', '/api/v1/waivers/WV-3001'],
      ['POST', '/api/v1/waivers/WV-3001/approve'],
      ['POST', `/api/v1/keys/${adminKeyId}/revoke`],
    ];
    for (const [method, path] of probes) {
      const body =
        path.endsWith('/approve') && path.includes('sessions') ? JSON.stringify({ hash: 'a'.repeat(64) }) : '{}';
      const res = await as(other, path, { method, body: method === 'GET' ? undefined : body });
      expect([path, res.status]).toEqual([path, 404]);
    }
    const tasks = await json<{ items: { id: string }[] }>(await as(other, '/api/v1/tasks?limit=100'));
    expect(tasks.items.map((t) => t.id)).not.toContain(id);
    expect((await json<{ items: unknown[] }>(await as(other, '/api/v1/waivers'))).items).toEqual([]);
    // Tenant B's admin cannot create tenants; only the bootstrap tenant's admins can.
    expect(
      (await as(other, '/api/v1/tenants', { method: 'POST', body: JSON.stringify({ id: 'tenant-c', name: 'C' }) }))
        .status,
    ).toBe(403);
  });

  it('when requests exceed the per-key rate, then 429 problem+json with Retry-After, and other keys are unaffected', async () => {
    const limited = await startApi({ ...config, RATE_LIMIT_PER_MINUTE: 3 });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await limited.fetch('/api/v1/waivers')).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      const res = await limited.fetch('/api/v1/waivers');
      expect(res.headers.get('retry-after')).toBe('60');
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect((await fetch(`${limited.url}/api/v1/waivers`, { headers: { 'x-api-key': keys.viewer } })).status).toBe(
        200,
      );
    } finally {
      await limited.stop();
    }
  });

  it('when any route gets arbitrary bodies and parameters, then it never answers 5xx', async () => {
    const routes = Object.entries(ROUTE_ROLES).filter(([, role]) => role !== 'public');
    const failures: string[] = [];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes.map(([route]) => route)),
        fc.oneof(
          fc.string(),
          fc.stringMatching(/^[A-Za-z0-9_.-]{1,120}$/),
          fc.constant('WV-0001'),
          fc.constant('a'.repeat(64)),
        ),
        // Any text, U+0000 and lone surrogates too (PostgreSQL can store neither).
        fc.oneof(fc.jsonValue(), fc.object(), fc.string(), fc.jsonValue({ stringUnit: 'binary' })),
        async (route, param, body) => {
          const [method, path] = route.split(' ') as [string, string];
          const url = path.replace(/:(\w+)/g, () => encodeURIComponent(param));
          const res = await as(keys.admin, url, {
            method,
            body: method === 'GET' ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
          });
          if (url.includes('/events') && res.status === 200) await res.body?.cancel();
          else await res.arrayBuffer();
          if (res.status >= 500)
            failures.push(`${method} ${url} ${JSON.stringify(body).slice(0, 200)} -> ${res.status}`);
          return res.status < 500;
        },
      ),
      { numRuns: 400, seed: 20261122 },
    );
    expect(failures).toEqual([]);
  });

  it('when a path is malformed, a list gets a cursor it never gave out, or text PostgreSQL cannot hold, then 400', async () => {
    const checks: [string, number][] = [
      ['/api/v1/tasks?cursor=zzz', 400],
      ['/api/v1/council/sessions?cursor=zzz', 400],
      ['/api/v1/council/sessions/%ff', 400],
      ['/api/v1/tasks/%ff', 400],
      ['/api/v1/tasks/%', 400],
      ['/api/v1/waivers/%e2%82', 400],
      ['/api/v1/tasks/x/artifacts/%ff', 400],
      ['/api/v1/audit/events?actor=%00', 400],
      ['/api/v1/audit/events?workflow_id=a%00b', 400],
      ['/api/v1/audit/events?since=0000-01-01T00:00:00Z', 400],
      ['/api/v1/audit/export?until=0000-12-31T23:59:59%2B01:00', 400],
      ['/api/v1/waivers?%00=1', 400],
    ];
    const bodies: [string, unknown][] = [
      ['/api/v1/tenants', { id: 't-nul', name: 'a\u0000b' }],
      ['/api/v1/tenants', { id: 't-surrogate', name: 'a\ud800b' }],
      ['/api/v1/keys', { name: 'nul', roles: ['viewer'], expires_at: '0000-01-01T00:00:00Z' }],
    ];
    for (const [url, body] of bodies) {
      const res = await as(keys.admin, url, { method: 'POST', body: JSON.stringify(body) });
      expect([url, JSON.stringify(body), res.status]).toEqual([url, JSON.stringify(body), 400]);
      expect(await res.json()).toMatchObject({ status: 400, title: 'Bad Request' });
    }
    for (const [url, status] of checks) {
      const res = await as(keys.admin, url);
      const body = (await res.json()) as { status: number; title: string; instance: string };
      expect([url, res.status, res.headers.get('content-type')]).toEqual([
        url,
        status,
        expect.stringContaining('application/problem+json'),
      ]);
      expect(body).toMatchObject({ status, title: 'Bad Request', instance: url });
    }
  });

  it('when any operation in the OpenAPI document gets arbitrary path parameters and query strings, then never 5xx', async () => {
    // Keys of their own (RATE_LIMIT_PER_MINUTE is 600 a key): the body fuzz above spends most of the admin key's.
    const adminKey = async (name: string): Promise<string> =>
      (await createApiKey(api.db, { tenantId: 'default', name, roles: ['admin'] })).key;
    const sweepKey = await adminKey('sweep-params');
    const fuzzKey = await adminKey('fuzz-params');
    /** encodeURIComponent, except that a lone surrogate becomes its (invalid) UTF-8 bytes rather than a throw. */
    const encode = (s: string): string => {
      try {
        return encodeURIComponent(s);
      } catch {
        return '%ED%A0%80';
      }
    };
    const base64url = (v: unknown): string => Buffer.from(JSON.stringify(v) ?? 'null').toString('base64url');
    /** Raw text as it goes on the wire: valid, malformed (%ff, a lone %, a cut UTF-8 sequence) or encoded anything. */
    const raw = fc.oneof(
      fc.constantFrom(
        '%ff',
        '%',
        '%e2%82',
        '%00',
        '%2e%2e',
        '..',
        '%2F',
        '%C0%AF',
        '%ED%A0%80',
        'zzz',
        'a'.repeat(300),
      ),
      fc.stringMatching(/^(?:%[0-9A-Fa-f]{0,2}|[A-Za-z0-9._~!$'()*+,;=:@-]){1,40}$/),
      fc.string({ unit: 'binary', maxLength: 40 }).map(encode),
      fc.constantFrom('WV-0001', 'a'.repeat(64), '00000000-0000-0000-0000-000000000000', '1', '0', '-1', '1e309'),
    );
    /** Query values: raw text as above, numbers and dates out of range, and cursors that decode to JSON. */
    const value = fc.oneof(
      raw,
      fc.constantFrom('0000-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '+275760-09-13T00:00:00Z', '100', '101'),
      fc.constantFrom('99999999999999999999', '9223372036854775807', '9223372036854775808', 'completed', ''),
      fc.jsonValue({ maxDepth: 2 }).map(base64url),
      fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }).map(base64url),
    );
    const operations = OPERATIONS.map((op) => ({
      method: op.method.toUpperCase(),
      path: op.path,
      queryKeys: op.query ? Object.keys((op.query as unknown as { shape: Record<string, unknown> }).shape) : [],
    }));
    const failures: string[] = [];
    const call = async (key: string, method: string, url: string): Promise<void> => {
      const res = await as(key, url, { method, body: method === 'GET' || method === 'OPTIONS' ? undefined : '{}' });
      if (res.status === 200 && (res.headers.get('content-type') ?? '').includes('text/event-stream'))
        await res.body?.cancel();
      else await res.arrayBuffer();
      if (res.status >= 500) failures.push(`${method} ${url} -> ${res.status}`);
    };
    // First every path parameter and every query key of every operation with each edge value, then random mixes.
    const EDGES = ['%ff', '%', '%00', '%ED%A0%80', 'zzz', '-1', '99999999999999999999', 'e30', '0000-01-01T00:00:00Z'];
    for (const op of operations) {
      const params = op.path.match(/:\w+/g) ?? [];
      for (const name of params) {
        for (const edge of EDGES)
          await call(
            sweepKey,
            op.method,
            op.path.replace(/:\w+/g, (p) => (p === name ? edge : 'x1')),
          );
      }
      const path = op.path.replace(/:\w+/g, 'x1');
      for (const k of op.queryKeys) for (const edge of EDGES) await call(sweepKey, op.method, `${path}?${k}=${edge}`);
    }
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...operations),
        fc.array(raw, { minLength: 3, maxLength: 3 }),
        fc.array(fc.tuple(fc.oneof(fc.constantFrom('cursor', 'limit', 'x'), fc.string({ maxLength: 8 })), value), {
          maxLength: 4,
        }),
        fc.array(fc.tuple(fc.nat(), value), { maxLength: 4 }),
        async (op, params, extra, known) => {
          let i = 0;
          const path = op.path.replace(/:(\w+)/g, () => params[i++ % params.length]!);
          // Known query keys (each may repeat: an array), then arbitrary ones.
          const pairs = [
            ...known.flatMap(([n, v]) => (op.queryKeys.length ? [[op.queryKeys[n % op.queryKeys.length]!, v]] : [])),
            ...extra.map(([k, v]) => [encode(k), v]),
          ];
          await call(
            fuzzKey,
            op.method,
            pairs.length ? `${path}?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}` : path,
          );
          return true;
        },
      ),
      { numRuns: 500, seed: 20261202 },
    );
    expect(failures).toEqual([]);
  });
});

describe('JWT bearer tokens', () => {
  let config: Config;
  let api: RunningApi;
  let hs: RunningApi;
  let jwksServer: Server;
  const secret = 'a-test-secret-that-is-long-enough-for-hs256';
  let es: Awaited<ReturnType<typeof generateKeyPair>>;

  const token = (
    claims: Record<string, unknown>,
    opts: {
      alg?: string;
      key?: Parameters<SignJWT['sign']>[0];
      exp?: string | number;
      aud?: string;
      kid?: string;
    } = {},
  ) => {
    const jwt = new SignJWT({ tenant: 'default', roles: ['viewer'], ...claims })
      .setProtectedHeader({ alg: opts.alg ?? 'HS256', ...(opts.kid ? { kid: opts.kid } : {}) })
      .setIssuedAt()
      .setIssuer('https://idp.example')
      .setAudience(opts.aud ?? 'agent-agency')
      .setExpirationTime(opts.exp ?? '5m');
    if (claims.sub !== null) jwt.setSubject(typeof claims.sub === 'string' ? claims.sub : 'alice');
    return jwt.sign(opts.key ?? new TextEncoder().encode(secret));
  };
  const call = (base: RunningApi, bearer: string, path = '/api/v1/waivers', init: RequestInit = {}) =>
    fetch(`${base.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    });

  beforeAll(async () => {
    es = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(es.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const port = await freePort();
    jwksServer = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => jwksServer.listen(port, '127.0.0.1', r));
    config = testConfig({ JWT_ISSUER: 'https://idp.example' });
    hs = await startApi({ ...config, JWT_SECRET: secret });
    api = await startApi({ ...config, JWT_JWKS_URL: `http://127.0.0.1:${port}/jwks.json` });
  });
  afterAll(async () => {
    await hs?.stop();
    await api?.stop();
    await new Promise((r) => jwksServer?.close(r));
  });

  it('when a valid HS256 token is sent, then its subject, tenant and roles apply', async () => {
    expect((await call(hs, await token({}))).status).toBe(200);
    // viewer only: starting a task is forbidden.
    const post = await call(hs, await token({}), '/api/v1/tasks', {
      method: 'POST',
      body: JSON.stringify({ title: 'x', workspace: '/tmp' }),
    });
    expect(post.status).toBe(403);
  });

  it('when a token is forged, expired, for another audience or issuer, unsigned, or names no tenant, then 401', async () => {
    const [header, payload] = (await token({})).split('.');
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.`;
    const bad = [
      unsigned,
      `${header}.${payload}.${'A'.repeat(43)}`,
      await token({}, { key: new TextEncoder().encode('another-secret-that-is-long-enough-too!!') }),
      await token({}, { exp: Math.floor(Date.now() / 1000) - 60 }),
      await token({}, { aud: 'someone-else' }),
      await new SignJWT({ tenant: 'default', roles: ['viewer'] })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('alice')
        .setIssuer('https://evil.example')
        .setAudience('agent-agency')
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(secret)),
      await token({ tenant: 'no-such-tenant' }),
      await token({ sub: null }),
      await token({}, { alg: 'ES256', key: es.privateKey }),
    ];
    const statuses = await Promise.all(bad.map(async (t) => (await call(hs, t)).status));
    expect(statuses).toEqual(bad.map(() => 401));
  });

  it('when an identity provider signs with ES256 and publishes a JWKS, then its tokens work and HS256 ones do not', async () => {
    expect((await call(api, await token({}, { alg: 'ES256', key: es.privateKey, kid: 'k1' }))).status).toBe(200);
    expect((await call(api, await token({}))).status).toBe(401);
    const other = await generateKeyPair('ES256');
    expect((await call(api, await token({}, { alg: 'ES256', key: other.privateKey, kid: 'k1' }))).status).toBe(401);
  });
});
