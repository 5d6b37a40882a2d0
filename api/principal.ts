/**
 * Who is calling, and what they may do.
 *
 * Authentication: an API key (`X-API-Key: ak_…`, or `Authorization: Bearer ak_…`) looked up by its hash in
 * PostgreSQL, or a JWT bearer token verified with `jose` (HS256 with JWT_SECRET, or RS256/ES256 against
 * JWT_JWKS_URL; issuer and audience checked; `alg: none` and unlisted algorithms refused). Anything else is a 401.
 * Authorisation: every route declares the role it needs with requireRole(); admin implies every role.
 * Tenancy: routes read the caller's tenant from principalOf(res) and never from the request.
 */
import type { RequestHandler, Response } from 'express';
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { authenticateKey, ROLES, tenantExists, type Role } from '../common/api-keys.js';
import { appendAuditEvent } from '../common/audit.js';
import type { Config } from '../common/config.js';
import type { Db } from '../common/db.js';
import { HttpProblem } from './errors.js';

export type { Role };

export interface Principal {
  tenantId: string;
  /** Actor id as recorded in the audit trail: user:<name> */
  subject: string;
  roles: readonly Role[];
  via: 'api-key' | 'jwt';
  /** What rate limiting counts by: the key id or the token subject. */
  rateKey: string;
}

const unauthorized = (detail: string): HttpProblem =>
  new HttpProblem(401, 'Unauthorized', detail, {}, { 'WWW-Authenticate': 'Bearer realm="agent-agency"' });

export function createAuthenticator({ db, config }: { db: Db; config: Config }): RequestHandler {
  const jwks: JWTVerifyGetKey | undefined = config.JWT_JWKS_URL
    ? createRemoteJWKSet(new URL(config.JWT_JWKS_URL))
    : undefined;
  const secret = config.JWT_SECRET ? new TextEncoder().encode(config.JWT_SECRET) : undefined;

  async function fromJwt(token: string): Promise<Principal> {
    if (!jwks && !secret)
      throw unauthorized('bearer tokens are not enabled here (no JWT_SECRET or JWT_JWKS_URL); use an API key');
    let payload;
    try {
      const options = {
        audience: config.JWT_AUDIENCE,
        issuer: config.JWT_ISSUER,
        algorithms: jwks ? ['RS256', 'ES256'] : ['HS256'],
      };
      ({ payload } = jwks ? await jwtVerify(token, jwks, options) : await jwtVerify(token, secret!, options));
    } catch (err) {
      throw unauthorized(`invalid token: ${(err as Error).message}`);
    }
    const tenant = payload[config.JWT_TENANT_CLAIM];
    if (typeof payload.sub !== 'string' || !payload.sub) throw unauthorized('invalid token: no subject');
    if (typeof tenant !== 'string' || !(await tenantExists(db, tenant))) {
      throw unauthorized(`invalid token: the ${config.JWT_TENANT_CLAIM} claim names no known tenant`);
    }
    const claimed = payload[config.JWT_ROLES_CLAIM];
    const roles = (Array.isArray(claimed) ? claimed : []).filter((r): r is Role =>
      (ROLES as readonly unknown[]).includes(r),
    );
    return {
      tenantId: tenant,
      subject: `user:${payload.sub}`,
      roles,
      via: 'jwt',
      rateKey: `jwt:${tenant}:${payload.sub}`,
    };
  }

  return async (req, res, next) => {
    const bearer = /^Bearer\s+(.+)$/i.exec(req.get('authorization') ?? '')?.[1]?.trim();
    const key = req.get('x-api-key')?.trim() ?? (bearer?.startsWith('ak_') ? bearer : undefined);
    let principal: Principal;
    if (key) {
      const found = await authenticateKey(db, key);
      if (!found.ok) throw unauthorized(found.reason);
      const p = found.principal;
      principal = {
        tenantId: p.tenantId,
        subject: `user:${p.name}`,
        roles: p.roles,
        via: 'api-key',
        rateKey: `key:${p.keyId}`,
      };
    } else if (bearer) {
      principal = await fromJwt(bearer);
    } else {
      throw unauthorized('authentication required: send X-API-Key: <key> or Authorization: Bearer <token>');
    }
    res.locals.principal = principal;
    next();
  };
}

export function principalOf(res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw new Error('authentication did not run before this route');
  return principal;
}

/** Records what the caller did to `subject`, in its tenant, as itself, under the request's correlation id. */
export async function auditByCaller(
  db: Db,
  res: Response,
  action: string,
  subject: string,
  payload: Record<string, unknown>,
): Promise<void> {
  const p = principalOf(res);
  await appendAuditEvent(db, {
    tenantId: p.tenantId,
    actor: p.subject,
    action,
    subject,
    correlationId: res.locals.correlationId as string,
    payload,
  });
}

/** Whether the principal has the role; admin implies every role. */
export function hasRole(principal: Pick<Principal, 'roles'>, role: Role): boolean {
  return principal.roles.includes(role) || principal.roles.includes('admin');
}

/** Route guard: the caller needs this role (admin implies every role). A missing role is 403 problem+json. */
export function requireRole(role: Role): RequestHandler {
  return (_req, res, next) => {
    if (hasRole(principalOf(res), role)) return next();
    throw new HttpProblem(403, 'Forbidden', `this route needs the ${role} role`);
  };
}

/** The role each task operation needs, over REST (route guards) and MCP (per tool) alike. */
export const TASK_ROLES = {
  start: 'operator',
  list: 'viewer',
  get: 'viewer',
  result: 'viewer',
  artifacts: 'viewer',
  artifact: 'viewer',
  audit: 'viewer',
  events: 'viewer',
  pendingApprovals: 'viewer',
  pause: 'operator',
  resume: 'operator',
  cancel: 'operator',
  clarify: 'operator',
  decide: 'approver',
} as const satisfies Record<string, Role>;
export type TaskOperation = keyof typeof TASK_ROLES;

/** 403 problem (extra.role names the role) unless the principal may perform the task operation. */
export function authorize(principal: Pick<Principal, 'roles'>, operation: TaskOperation): void {
  const role = TASK_ROLES[operation];
  if (!hasRole(principal, role))
    throw new HttpProblem(403, 'Forbidden', `this operation needs the ${role} role`, { role });
}
