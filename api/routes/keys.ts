/**
 * API keys and tenants (admin). A key is created in the caller's tenant only and its secret is shown once; revoking
 * is immediate. Tenants are created by admins of the bootstrap tenant, each with its first admin key. All audited.
 */
import { Router, type Response } from 'express';
import { z } from 'zod';
import { createApiKey, ensureTenant, listApiKeys, revokeApiKey, ROLES } from '../../common/api-keys.js';
import type { AppDeps } from '../app.js';
import { conflict, HttpProblem, notFound, validate } from '../errors.js';
import { Timestamp } from '../input.js';
import { auditByCaller, principalOf, requireRole } from '../principal.js';

export const CreateKeySchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lowercase letters, digits, dot, dash, underscore'),
    roles: z.array(z.enum(ROLES)).min(1),
    expires_at: Timestamp.optional(),
  })
  .strict();
export const CreateTenantSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes'),
    name: z.string().min(1).max(200),
  })
  .strict();
export const KeyId = z.uuid('a key id');

export function keyRoutes({ db, config }: AppDeps): Router {
  const router = Router();
  const audit = (res: Response, action: string, subject: string, payload: Record<string, unknown>) =>
    auditByCaller(db, res, action, subject, payload);

  router.get('/api/v1/keys', requireRole('admin'), async (_req, res) => {
    res.json({ items: await listApiKeys(db, principalOf(res).tenantId) });
  });

  router.post('/api/v1/keys', requireRole('admin'), async (req, res) => {
    const body = validate(CreateKeySchema, req.body);
    if (body.expires_at && Date.parse(body.expires_at) <= Date.now()) {
      throw new HttpProblem(400, 'Bad Request', 'expires_at must be in the future');
    }
    const created = await createApiKey(db, {
      tenantId: principalOf(res).tenantId,
      name: body.name,
      roles: body.roles,
      expiresAt: body.expires_at,
    });
    await audit(res, 'key.created', created.id, {
      name: created.name,
      roles: created.roles,
      expiresAt: created.expiresAt,
    });
    res.status(201).json(created);
  });

  router.post('/api/v1/keys/:id/revoke', requireRole('admin'), async (req, res) => {
    const id = validate(KeyId, req.params.id, 'params');
    const revoked = await revokeApiKey(db, principalOf(res).tenantId, id);
    if (!revoked) throw notFound(`no key ${id}`);
    await audit(res, 'key.revoked', revoked.id, { name: revoked.name });
    res.json(revoked);
  });

  router.post('/api/v1/tenants', requireRole('admin'), async (req, res) => {
    if (principalOf(res).tenantId !== config.BOOTSTRAP_TENANT) {
      throw new HttpProblem(403, 'Forbidden', `only admins of the ${config.BOOTSTRAP_TENANT} tenant create tenants`);
    }
    const body = validate(CreateTenantSchema, req.body);
    if (!(await ensureTenant(db, body.id, body.name))) throw conflict(`tenant ${body.id} already exists`);
    const admin = await createApiKey(db, { tenantId: body.id, name: 'admin', roles: ['admin'] });
    await audit(res, 'tenant.created', body.id, { name: body.name, adminKey: admin.id });
    res.status(201).json({ tenant: body, adminKey: admin });
  });

  return router;
}
