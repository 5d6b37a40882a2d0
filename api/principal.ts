/**
 * Who is calling. Until API keys and JWTs are enforced (the security issue), every request acts as the local
 * operator of the `default` tenant — which is why the API binds to 127.0.0.1 by default.
 * Routes read the principal only through principalOf(), so enforcing authentication changes this file alone.
 */
import type { RequestHandler, Response } from 'express';

export interface Principal {
  tenantId: string;
  /** Actor id as recorded in the audit trail: user:<name> */
  subject: string;
  roles: readonly ('viewer' | 'operator' | 'approver' | 'admin')[];
}

const LOCAL_OPERATOR: Principal = {
  tenantId: 'default',
  subject: 'user:local',
  roles: ['viewer', 'operator', 'approver', 'admin'],
};

export const resolvePrincipal: RequestHandler = (_req, res, next) => {
  res.locals.principal = LOCAL_OPERATOR;
  next();
};

export function principalOf(res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw new Error('resolvePrincipal did not run before this route');
  return principal;
}

export type Role = Principal['roles'][number];

/** Route guard: the caller needs this role (admin implies every role). A missing role is 403 problem+json. */
export function requireRole(role: Role): RequestHandler {
  return (_req, res, next) => {
    const principal = principalOf(res);
    if (principal.roles.includes(role) || principal.roles.includes('admin')) return next();
    res
      .status(403)
      .type('application/problem+json')
      .json({
        type: 'https://agent-agency.dev/problems/forbidden',
        title: 'Forbidden',
        status: 403,
        detail: `this route needs the ${role} role`,
      });
  };
}
