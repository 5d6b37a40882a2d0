/**
 * The remote codec endpoint for the Temporal Web UI (Temporal's codec server protocol), so people allowed to see
 * payloads read them decrypted in the UI while the server stores only ciphertext:
 *
 *   POST /api/v1/codec/decode   {payloads: [{metadata: {k: base64}, data: base64}]} → the same shape, decrypted
 *   POST /api/v1/codec/encode   the same shape, encrypted with the active key (the UI encodes signal/start input)
 *
 * Who may call it:
 *   - Production: the Web UI with SSO and its codec "pass access token" setting sends the user's access token
 *     (`Authorization: Bearer <JWT>`). app.ts's authenticator verifies it (JWT_JWKS_URL, JWT_ISSUER, JWT_AUDIENCE;
 *     api/principal.ts); programmatic callers use an API key as everywhere else. Then the caller needs the viewer
 *     role (403) and a tenant listed in CODEC_TENANTS (default: BOOTSTRAP_TENANT; 403): one namespace holds every
 *     tenant's workflows, so decrypting it is for the tenants that operate the namespace, not for every tenant.
 *   - Development (`npm run dev`, scripts/dev.ts): the CLI's dev server cannot make the UI send a token or cookies
 *     (its UI settings have PassAccessToken and IncludeCredentials false, and no flag changes them), so the dev
 *     session's secret is part of the endpoint the UI is started with:
 *       POST /api/v1/codec/dev/<CODEC_DEV_TOKEN>/decode|encode
 *     Accepted only when CODEC_DEV_TOKEN is configured, the token matches (constant time), the peer is a loopback
 *     address, the request went through no proxy (no Forwarded / X-Forwarded-For), its Host is a loopback name and
 *     its Origin is the Web UI's (TEMPORAL_UI_URL). Anything else is 401. It acts for BOOTSTRAP_TENANT, viewer.
 *
 * Answers:
 *   - CORS only for the origin of TEMPORAL_UI_URL (credentials allowed); any other origin gets no CORS headers.
 *     The preflight (OPTIONS) carries no credentials, so codecCors answers it before authentication (app.ts).
 *   - 400 problem+json for a malformed body, an X-Namespace other than TEMPORAL_NAMESPACE (the keys belong to this
 *     namespace), or a payload that does not decrypt (unknown key id, failed tag) — the protocol's "decoder error".
 *   - 404 problem+json when no codec is configured (PAYLOAD_KEYS unset): there is nothing to encode or decode, and
 *     the UI shows payloads as stored.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Router, type Request, type RequestHandler } from 'express';
import type { Payload } from '@temporalio/common';
import { z } from 'zod';
import { codecFromConfig, PayloadDecryptionError } from '../../temporal/codec.js';
import type { AppDeps } from '../app.js';
import { HttpProblem, validationProblem } from '../errors.js';
import { principalOf, requireRole } from '../principal.js';

export const CODEC_BASE_PATH = '/api/v1/codec';
export const CODEC_DEV_PATH = `${CODEC_BASE_PATH}/dev`;
const ALLOWED_HEADERS = 'content-type, x-namespace, authorization';

/** The endpoint to give the Web UI (`--ui-codec-endpoint`) for a dev session: the token is part of the path. */
export function devCodecEndpoint(apiBaseUrl: string, token: string): string {
  return `${apiBaseUrl.replace(/\/+$/, '')}${CODEC_DEV_PATH}/${token}`;
}

/** A dev codec path with its token replaced, for logs. */
export function redactCodecDevPath(url: string): string {
  return url.startsWith(`${CODEC_DEV_PATH}/`) ? url.replace(/^(\/api\/v1\/codec\/dev\/)[^/?#]*/, '$1[redacted]') : url;
}

/** Proto3 JSON bytes: standard or URL-safe base64, padding optional. */
const base64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'expected base64');
export const PayloadsBodySchema = z.object({
  payloads: z.array(
    z.object({
      metadata: z.record(z.string(), base64).optional(),
      data: base64.optional(),
    }),
  ),
});
type PayloadsJson = z.output<typeof PayloadsBodySchema>;

const fromJson = ({ payloads }: PayloadsJson): Payload[] =>
  payloads.map((p) => ({
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(p.data ?? '', 'base64'),
  }));

const toJson = (payloads: Payload[]): PayloadsJson => ({
  payloads: payloads.map((p) => ({
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
  })),
});

/** CORS for the Web UI's origin only; other origins get no CORS headers (Vary: Origin either way). */
function corsFor(config: AppDeps['config']): RequestHandler {
  const uiOrigin = new URL(config.TEMPORAL_UI_URL).origin;
  return (req, res, next) => {
    res.vary('Origin');
    if (req.get('origin') === uiOrigin) {
      res.setHeader('Access-Control-Allow-Origin', uiOrigin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      if (req.method === 'OPTIONS') {
        res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
        res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
        res.setHeader('Access-Control-Max-Age', '600');
      }
    }
    next();
  };
}

const unauthorized = (detail: string): HttpProblem =>
  new HttpProblem(401, 'Unauthorized', detail, {}, { 'WWW-Authenticate': 'Bearer realm="agent-agency"' });

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}
const hostnameOf = (host: string | undefined): string | undefined => {
  if (!host) return undefined;
  try {
    return new URL(`http://${host}`).hostname;
  } catch {
    return undefined;
  }
};
const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * The dev session's credential: the token in the path, from a loopback peer, not proxied, addressed to a loopback
 * host name, from the Web UI's origin. Every refusal is the same 401 (no hint which check failed beyond the detail).
 */
function devSession(config: AppDeps['config']): RequestHandler {
  const expected = config.CODEC_DEV_TOKEN ? digest(config.CODEC_DEV_TOKEN) : undefined;
  const uiOrigin = new URL(config.TEMPORAL_UI_URL).origin;
  return (req, _res, next) => {
    const refuse = (why: string): never => {
      throw unauthorized(`dev session codec credential refused: ${why}`);
    };
    if (!expected) refuse('no dev session is configured here (CODEC_DEV_TOKEN is unset)'); // not mounted then
    const token = (req.params as { token?: string }).token ?? '';
    if (!timingSafeEqual(digest(token), expected!)) refuse('unknown token');
    if (!isLoopbackAddress(req.socket.remoteAddress)) refuse('only loopback peers may use it');
    if (req.get('forwarded') !== undefined || req.get('x-forwarded-for') !== undefined)
      refuse('a proxied request may not use it');
    if (!LOOPBACK_HOSTS.has(hostnameOf(req.get('host')) ?? '')) refuse('the request is not addressed to loopback');
    if (req.get('origin') !== uiOrigin) refuse(`only the Web UI's origin (${uiOrigin}) may use it`);
    next();
  };
}

/** The caller's tenant must be one that may decrypt this namespace (CODEC_TENANTS, default BOOTSTRAP_TENANT). */
function tenantMaySeeNamespace(config: AppDeps['config']): RequestHandler {
  const allowed = new Set(config.CODEC_TENANTS ?? [config.BOOTSTRAP_TENANT]);
  return (_req, res, next) => {
    const { tenantId } = principalOf(res);
    if (allowed.has(tenantId)) return next();
    throw new HttpProblem(
      403,
      'Forbidden',
      `tenant ${tenantId} may not decrypt payloads of namespace ${config.TEMPORAL_NAMESPACE} (CODEC_TENANTS)`,
    );
  };
}

function handler(config: AppDeps['config'], operation: 'encode' | 'decode'): RequestHandler {
  const codec = codecFromConfig(config);
  return async (req: Request, res) => {
    const namespace = req.get('x-namespace');
    if (namespace !== undefined && namespace !== config.TEMPORAL_NAMESPACE) {
      throw new HttpProblem(
        400,
        'Bad Request',
        `this codec serves namespace ${config.TEMPORAL_NAMESPACE}, not ${JSON.stringify(namespace)}`,
      );
    }
    if (!codec) {
      throw new HttpProblem(
        404,
        'Not Found',
        'payload encryption is not configured (PAYLOAD_KEYS is unset): payloads are stored as they are',
      );
    }
    const body = PayloadsBodySchema.safeParse(req.body);
    if (!body.success) throw validationProblem(body.error);
    let payloads: Payload[];
    try {
      payloads = await codec[operation](fromJson(body.data));
    } catch (err) {
      if (err instanceof PayloadDecryptionError) throw new HttpProblem(400, 'Bad Request', err.message);
      throw err;
    }
    res.setHeader('Cache-Control', 'no-store');
    res.json(toJson(payloads));
  };
}

/**
 * CORS and the preflight, mounted in app.ts BEFORE authentication: browsers send the preflight without credentials,
 * and the UI must be able to read a 401/403 answer (so the CORS headers are set before the authenticator runs).
 * The dev session's routes live here too, and only when CODEC_DEV_TOKEN is set (never in a deployment that does not
 * set it): their credential is the path, not a header the authenticator reads.
 */
export function codecCors({ config }: AppDeps): Router {
  const router = Router();
  router.use(CODEC_BASE_PATH, corsFor(config));
  const preflight: RequestHandler = (_req, res) => {
    res.status(204).end();
  };
  router.options([`${CODEC_BASE_PATH}/encode`, `${CODEC_BASE_PATH}/decode`], preflight);
  if (config.CODEC_DEV_TOKEN) {
    router.options([`${CODEC_DEV_PATH}/:token/encode`, `${CODEC_DEV_PATH}/:token/decode`], preflight);
    for (const operation of ['encode', 'decode'] as const) {
      router.post(`${CODEC_DEV_PATH}/:token/${operation}`, devSession(config), handler(config, operation));
    }
  }
  return router;
}

/** encode/decode, mounted after authentication (and rate limiting) like the other routers. */
export function codecRoutes({ config }: AppDeps): Router {
  const router = Router();
  // Idempotent with codecCors: the answer carries the CORS headers even if only this router is mounted.
  router.use(CODEC_BASE_PATH, corsFor(config));
  const mayDecrypt = [requireRole('viewer'), tenantMaySeeNamespace(config)];
  router.post(`${CODEC_BASE_PATH}/encode`, ...mayDecrypt, handler(config, 'encode'));
  router.post(`${CODEC_BASE_PATH}/decode`, ...mayDecrypt, handler(config, 'decode'));
  return router;
}
