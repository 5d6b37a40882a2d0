/**
 * §3 of issue 13, production: the Web UI with SSO passes the user's access token to /api/v1/codec, and the API
 * verifies it as a JWT from the identity provider (a key pair made here, its JWKS served on loopback): issuer,
 * audience, expiry and signature are checked (401 otherwise), then the viewer role and whether the token's tenant may
 * decrypt this namespace (CODEC_TENANTS, default BOOTSTRAP_TENANT; 403 otherwise). API keys keep working.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { defaultPayloadConverter } from '@temporalio/common';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, ensureTenant } from '../../common/api-keys.js';
import type { Config } from '../../common/config.js';
import { codecFromConfig } from '../../temporal/codec.js';
import { json, startApi, testConfig, type RunningApi } from '../helpers/stack.js';

const UI_ORIGIN = 'http://ui.agency.test:8233';
const ISSUER = 'https://idp.agency.test/';
const AUDIENCE = 'agency-codec-test';
type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

describe('the codec endpoint with the Web UI access token (JWT from the identity provider)', () => {
  let idp: Server;
  let api: RunningApi;
  let config: Config;
  let key: SigningKey;
  let strangerKey: SigningKey;
  let otherTenant: string;
  let body: string;
  const secret = `codec-auth-secret-${randomUUID()}`;

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    key = pair.privateKey;
    strangerKey = (await generateKeyPair('ES256')).privateKey; // signs, but is not in the JWKS
    const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'test-1', alg: 'ES256', use: 'sig' };
    idp = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => idp.listen(0, '127.0.0.1', resolve));
    const { port } = idp.address() as AddressInfo;
    config = testConfig({
      PAYLOAD_KEYS: `k1:${randomBytes(32).toString('base64')}`,
      PAYLOAD_KEY_ID: 'k1',
      TEMPORAL_UI_URL: UI_ORIGIN,
      JWT_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json`,
      JWT_ISSUER: ISSUER,
      JWT_AUDIENCE: AUDIENCE,
    });
    api = await startApi(config);
    otherTenant = `codec-other-${randomUUID().slice(0, 8)}`;
    await ensureTenant(api.db, otherTenant, 'another tenant');
    const [encrypted] = await codecFromConfig(config)!.encode([defaultPayloadConverter.toPayload({ secret })]);
    const b64 = (b: Uint8Array | null | undefined): string => Buffer.from(b ?? new Uint8Array()).toString('base64');
    body = JSON.stringify({
      payloads: [
        {
          metadata: Object.fromEntries(Object.entries(encrypted!.metadata ?? {}).map(([k, v]) => [k, b64(v)])),
          data: b64(encrypted!.data),
        },
      ],
    });
  });
  afterAll(async () => {
    await api?.stop();
    await new Promise((resolve) => idp?.close(resolve));
  });

  const token = (
    claims: Record<string, unknown> = {},
    {
      signWith = key,
      issuer = ISSUER,
      audience = AUDIENCE,
      expiresIn = '5m',
    }: { signWith?: SigningKey; issuer?: string; audience?: string; expiresIn?: string | number } = {},
  ): Promise<string> =>
    new SignJWT({ tenant: config.BOOTSTRAP_TENANT, roles: ['viewer'], ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: 'test-1' })
      .setSubject('alice@example.com')
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime(expiresIn)
      .sign(signWith);

  /** What the Web UI sends with "pass access token": Authorization: Bearer <token>, X-Namespace, from its origin. */
  const decode = (headers: Record<string, string>): Promise<Response> =>
    fetch(`${api.url}/api/v1/codec/decode`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-namespace': config.TEMPORAL_NAMESPACE,
        origin: UI_ORIGIN,
        ...headers,
      },
      body,
    });
  const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });
  const plaintextOf = async (res: Response): Promise<unknown> => {
    const { payloads } = await json<{ payloads: { data: string }[] }>(res);
    return JSON.parse(Buffer.from(payloads[0]!.data, 'base64').toString('utf8'));
  };

  it('when the token is valid and its tenant may see the namespace, then decode answers 200 with the plaintext', async () => {
    const res = await decode(bearer(await token()));
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
    expect(await plaintextOf(res)).toEqual({ secret });
  });

  it('when the token has the wrong issuer, audience, has expired, is unsigned or signed by another key, then 401', async () => {
    const now = Math.floor(Date.now() / 1000);
    const b64url = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({
      sub: 'alice@example.com',
      iss: ISSUER,
      aud: AUDIENCE,
      exp: now + 300,
      tenant: config.BOOTSTRAP_TENANT,
      roles: ['viewer'],
    })}.`;
    const cases: Record<string, string> = {
      'wrong issuer': await token({}, { issuer: 'https://evil.example/' }),
      'wrong audience': await token({}, { audience: 'someone-else' }),
      expired: await token({}, { expiresIn: now - 120 }),
      unsigned,
      'another key': await token({}, { signWith: strangerKey }),
      garbage: 'not-a-jwt',
    };
    for (const [what, t] of Object.entries(cases)) {
      const res = await decode(bearer(t));
      expect(res.status, what).toBe(401);
      // The UI can read the refusal (CORS on its origin), and it carries no plaintext.
      expect(res.headers.get('access-control-allow-origin'), what).toBe(UI_ORIGIN);
      expect(await res.text(), what).not.toContain(secret);
    }
    expect((await decode({})).status).toBe(401);
  });

  it("when the token's tenant may not see the namespace, or it lacks the viewer role, then 403", async () => {
    const other = await decode(bearer(await token({ tenant: otherTenant })));
    expect(other.status).toBe(403);
    expect(await other.text()).not.toContain(secret);
    expect((await decode(bearer(await token({ roles: [] })))).status).toBe(403);
    // The same rule for API keys: another tenant's viewer key is refused, the namespace's tenant's is not.
    const otherKey = (await createApiKey(api.db, { tenantId: otherTenant, name: 'codec-viewer', roles: ['viewer'] }))
      .key;
    expect((await decode({ 'x-api-key': otherKey })).status).toBe(403);
    const ownKey = (
      await createApiKey(api.db, {
        tenantId: config.BOOTSTRAP_TENANT,
        name: `cv-${randomUUID().slice(0, 8)}`,
        roles: ['viewer'],
      })
    ).key;
    const res = await decode({ 'x-api-key': ownKey });
    expect(res.status).toBe(200);
    expect(await plaintextOf(res)).toEqual({ secret });
  });

  it('when CODEC_DEV_TOKEN is not configured, then the dev session path is no route: 401 like any call without credentials', async () => {
    const res = await fetch(`${api.url}/api/v1/codec/dev/${'a'.repeat(43)}/decode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: UI_ORIGIN },
      body,
    });
    expect(res.status).toBe(401);
  });
});
