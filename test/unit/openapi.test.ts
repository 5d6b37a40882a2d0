/**
 * The OpenAPI document (api/routes/openapi.ts) against the application itself: every route createApp() registers —
 * found by walking Express's router stack, not by reading a list — is in the document with its method, and the
 * document has no operation the app does not serve. Served at /api/v1/openapi.json without authentication.
 */
import type { AddressInfo } from 'node:net';
import type { Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.js';
import { OPENAPI_PATH, OPERATIONS, openApiDocument, openApiPath } from '../../api/routes/openapi.js';
import { loadConfig } from '../../common/config.js';
import type { Db } from '../../common/db.js';
import { createLogger } from '../../common/logger.js';

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  /** The path a router or middleware was mounted on ('/' for the root). */
  rawPath?: unknown;
}

interface OpenApiDoc {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<
    string,
    Record<string, { requestBody?: unknown; security?: unknown[]; parameters?: { name: string }[] }>
  >;
}

const app = createApp({
  temporal: {} as Client,
  db: {} as Db,
  config: loadConfig({ LOG_LEVEL: 'silent' }),
  log: createLogger('silent'),
});

/** Every (method, path) the app routes, recursively through mounted routers (with their mount paths). */
function registeredRoutes(): { method: string; path: string }[] {
  const out: { method: string; path: string }[] = [];
  const walk = (stack: Layer[], prefix: string): void => {
    for (const layer of stack) {
      if (layer.route) {
        const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
        for (const method of Object.keys(layer.route.methods).filter((m) => layer.route!.methods[m])) {
          for (const path of paths) out.push({ method, path: `${prefix}${path}` });
        }
      } else if (layer.handle?.stack) {
        expect(typeof layer.rawPath, 'a router mounted on a string path').toBe('string');
        walk(layer.handle.stack, `${prefix}${layer.rawPath === '/' ? '' : (layer.rawPath as string)}`);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
  return out;
}

describe('the OpenAPI document', () => {
  const doc = openApiDocument() as OpenApiDoc;
  const routes = registeredRoutes();

  it('is OpenAPI 3.x with a title and the package version', () => {
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(doc.info.title).toBe('Agent Agency API');
    expect(doc.info.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('when the app registers a route, then the document has that path and method', () => {
    expect(routes.length).toBeGreaterThan(30);
    const missing = routes.filter((r) => !doc.paths[openApiPath(r.path)]?.[r.method]);
    expect(missing, 'routes the document does not describe: add them to OPERATIONS').toEqual([]);
  });

  it('has no operation the app does not serve', () => {
    const served = new Set(routes.map((r) => `${r.method} ${openApiPath(r.path)}`));
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(documented.filter((op) => !served.has(op))).toEqual([]);
    expect(new Set(OPERATIONS.map((o) => `${o.method} ${o.path}`)).size, 'an operation listed twice').toBe(
      OPERATIONS.length,
    );
  });

  it('documents request bodies and path parameters from the route schemas', () => {
    const start = doc.paths['/api/v1/tasks']?.post;
    expect(JSON.stringify(start?.requestBody)).toContain('"workspace"');
    expect(JSON.stringify(start?.requestBody)).toContain('"additionalProperties":false');
    const decide = doc.paths['/api/v1/tasks/{id}/approve']?.post;
    expect(JSON.stringify(decide?.requestBody)).toContain('^[0-9a-f]{64}$');
    expect(decide?.parameters?.map((p) => p.name)).toEqual(['id']);
    for (const [path, ops] of Object.entries(doc.paths)) {
      const names = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries(ops)) {
        expect(op.parameters?.map((p) => p.name) ?? [], `${method} ${path}`).toEqual(expect.arrayContaining(names));
      }
    }
  });

  it('marks the public routes as needing no credentials', () => {
    for (const path of ['/health', '/metrics', OPENAPI_PATH]) expect(doc.paths[path]?.get?.security).toEqual([]);
    expect(doc.paths['/api/v1/tasks']?.get?.security).toBeUndefined();
  });

  it('when fetched over HTTP without credentials, then GET /api/v1/openapi.json answers the document', async () => {
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}${OPENAPI_PATH}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/application\/json/);
      expect(((await res.json()) as OpenApiDoc).paths).toEqual(doc.paths);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
