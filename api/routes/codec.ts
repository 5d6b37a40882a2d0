/**
 * The remote codec endpoint for the Temporal Web UI (Temporal's codec server protocol), so people allowed to see
 * payloads read them decrypted in the UI while the server stores only ciphertext:
 *
 *   POST /api/v1/codec/decode   {payloads: [{metadata: {k: base64}, data: base64}]} → the same shape, decrypted
 *   POST /api/v1/codec/encode   the same shape, encrypted with the active key (the UI encodes signal/start input)
 *
 * Point the UI at it with `--ui-codec-endpoint http://<api>/api/v1/codec` (scripts/dev.ts does when PAYLOAD_KEYS is
 * set). Answers:
 *   - CORS only for the origin of TEMPORAL_UI_URL (credentials allowed); any other origin gets no CORS headers.
 *     The preflight (OPTIONS) carries no credentials, so codecCors answers it before authentication (app.ts).
 *   - authentication (app.ts) and the viewer role (requireRole) for encode and decode; the UI passes the caller's
 *     token when started with its "pass access token" option (Authorization is an allowed header).
 *   - 400 problem+json for a malformed body, an X-Namespace other than TEMPORAL_NAMESPACE (the keys belong to this
 *     namespace), or a payload that does not decrypt (unknown key id, failed tag) — the protocol's "decoder error".
 *   - 404 problem+json when no codec is configured (PAYLOAD_KEYS unset): there is nothing to encode or decode, and
 *     the UI shows payloads as stored.
 */
import { Router, type RequestHandler } from 'express';
import type { Payload } from '@temporalio/common';
import { z } from 'zod';
import { codecFromConfig, PayloadDecryptionError } from '../../temporal/codec.js';
import type { AppDeps } from '../app.js';
import { HttpProblem, validationProblem } from '../errors.js';
import { requireRole } from '../principal.js';

export const CODEC_BASE_PATH = '/api/v1/codec';
const ALLOWED_HEADERS = 'content-type, x-namespace, authorization';

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

/**
 * CORS and the preflight, mounted in app.ts BEFORE authentication: browsers send the preflight without credentials,
 * and the UI must be able to read a 401/403 answer (so the CORS headers are set before the authenticator runs).
 */
export function codecCors({ config }: AppDeps): Router {
  const router = Router();
  router.use(CODEC_BASE_PATH, corsFor(config));
  router.options([`${CODEC_BASE_PATH}/encode`, `${CODEC_BASE_PATH}/decode`], (_req, res) => {
    res.status(204).end();
  });
  return router;
}

/** encode/decode, mounted after authentication (and rate limiting) like the other routers. */
export function codecRoutes({ config }: AppDeps): Router {
  const router = Router();
  const codec = codecFromConfig(config);
  // Idempotent with codecCors: the answer carries the CORS headers even if only this router is mounted.
  router.use(CODEC_BASE_PATH, corsFor(config));

  const handle =
    (operation: 'encode' | 'decode'): RequestHandler =>
    async (req, res) => {
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

  router.post(`${CODEC_BASE_PATH}/encode`, requireRole('viewer'), handle('encode'));
  router.post(`${CODEC_BASE_PATH}/decode`, requireRole('viewer'), handle('decode'));
  return router;
}
