/**
 * The serving process's internal HTTP endpoint, which the API forwards authorised predictions to (api/routes/
 * predictions.ts). It is not the public API: it trusts the tenant the API names, so it listens on the pod network
 * only (deploy/kubernetes/worker-inference.yaml: a ClusterIP Service that the NetworkPolicy opens to the API pods
 * alone) and, with SERVING_TOKEN set, also requires that shared token.
 *
 *   POST /v1/predict { tenantId, model, inputs: number[][], key?, pin? } → 200 Prediction | 400 | 404 | 503
 *   GET  /v1/models/:tenant/:model                                      → what this process applies (tests, status)
 *   GET  /healthz
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { BadInput, ModelNotServed, type ServingHost } from './host.js';

const MAX_BODY = 4 * 1024 * 1024;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new BadInput('request body too large');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new BadInput('expected a JSON body');
  }
}

function authorised(req: IncomingMessage, token: string | undefined): boolean {
  if (!token) return true;
  const given = Buffer.from(req.headers.authorization ?? '');
  const want = Buffer.from(`Bearer ${token}`);
  return given.length === want.length && timingSafeEqual(given, want);
}

export function createServingServer(host: ServingHost, { token }: { token?: string } = {}): Server {
  return createServer((req, res) => {
    void (async () => {
      if (req.url === '/healthz') return send(res, 200, { ok: true, replica: host.replicaId });
      if (!authorised(req, token)) return send(res, 401, { error: 'unauthorised' });
      const status = /^\/v1\/models\/([^/]+)\/([^/]+)$/.exec(req.url ?? '');
      if (req.method === 'GET' && status) {
        const snap = host.snapshot(decodeURIComponent(status[1]!), decodeURIComponent(status[2]!));
        return snap ? send(res, 200, { replica: host.replicaId, ...snap }) : send(res, 404, { error: 'not served' });
      }
      if (req.method !== 'POST' || req.url !== '/v1/predict') return send(res, 404, { error: 'no such route' });
      const body = await readJson(req);
      const { tenantId, model, inputs, key, pin } = body as {
        tenantId: string;
        model: string;
        inputs: number[][];
        key?: string;
        pin?: string;
      };
      send(res, 200, await host.predict(tenantId, model, inputs, { key, pin }));
    })().catch((err: unknown) => {
      if (res.headersSent) return;
      if (err instanceof BadInput) return send(res, 400, { error: err.message });
      if (err instanceof ModelNotServed) return send(res, 404, { error: err.message });
      send(res, 503, { error: err instanceof Error ? err.message : 'prediction failed' });
    });
  });
}
