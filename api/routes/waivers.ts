/**
 * Waivers (CAWS): created pending by an operator, made active by an approver, revoked by
 * a person; at most 90 days. Every change is audited. No model can create or change a waiver: this API is the only way.
 */
import { Router, type Response } from 'express';
import { z } from 'zod';
import type { AppDeps } from '../app.js';
import { conflict, HttpProblem, notFound, validate } from '../errors.js';
import { Timestamp } from '../input.js';
import { auditByCaller, principalOf, requireRole } from '../principal.js';

export const WaiverId = z.string().regex(/^WV-\d{4,}$/, 'waiver ids look like WV-0001');
export const CreateSchema = z
  .object({
    id: WaiverId,
    gates: z
      .array(z.string().regex(/^[a-z][a-z0-9_-]*$/))
      .min(1)
      .max(20),
    reason: z.string().min(10).max(2000),
    impact_level: z.enum(['low', 'medium', 'high', 'critical']),
    mitigation: z.string().min(5).max(2000),
    expires_at: Timestamp,
    budget_delta: z
      .object({ max_files: z.number().int().min(0).optional(), max_loc: z.number().int().min(0).optional() })
      .strict()
      .optional(),
  })
  .strict()
  .refine((w) => !w.budget_delta || w.gates.includes('budget'), {
    message: 'a waiver with a budget_delta names the budget gate',
    path: ['gates'],
  });
export const UpdateSchema = z
  .object({
    reason: z.string().min(10).max(2000).optional(),
    mitigation: z.string().min(5).max(2000).optional(),
    expires_at: Timestamp.optional(),
  })
  .strict();
export const DecisionSchema = z.object({ reason: z.string().max(2000).optional() }).strict();

interface WaiverRow {
  id: string;
  gates: string[];
  reason: string;
  impact_level: string;
  mitigation: string;
  budget_delta: unknown;
  status: string;
  created_by: string;
  approved_by: string | null;
  created_at: Date;
  approved_at: Date | null;
  expires_at: Date;
}

function view(r: WaiverRow, now = Date.now()) {
  const expired = r.expires_at.getTime() <= now;
  return {
    id: r.id,
    gates: r.gates,
    reason: r.reason,
    impact_level: r.impact_level,
    mitigation: r.mitigation,
    budget_delta: r.budget_delta ?? undefined,
    status: r.status === 'active' && expired ? 'expired' : r.status,
    created_by: r.created_by,
    approved_by: r.approved_by,
    created_at: r.created_at.toISOString(),
    approved_at: r.approved_at?.toISOString() ?? null,
    expires_at: r.expires_at.toISOString(),
  };
}

export function waiverRoutes({ db }: AppDeps): Router {
  const router = Router();
  const load = async (res: Response, raw: string): Promise<WaiverRow> => {
    const id = validate(WaiverId, raw, 'params');
    const { rows } = await db.query<WaiverRow>('SELECT * FROM waivers WHERE tenant_id = $1 AND id = $2', [
      principalOf(res).tenantId,
      id,
    ]);
    if (!rows[0]) throw notFound(`no waiver ${id}`);
    return rows[0];
  };

  router.get('/api/v1/waivers', requireRole('viewer'), async (_req, res) => {
    const { rows } = await db.query<WaiverRow>('SELECT * FROM waivers WHERE tenant_id = $1 ORDER BY created_at DESC', [
      principalOf(res).tenantId,
    ]);
    res.json({ items: rows.map((r) => view(r)) });
  });

  router.post('/api/v1/waivers', requireRole('operator'), async (req, res) => {
    const w = validate(CreateSchema, req.body);
    const expires = Date.parse(w.expires_at);
    if (expires <= Date.now())
      throw new HttpProblem(400, 'Bad Request', 'expires_at must be in the future', {
        issues: [{ path: 'expires_at', code: 'custom', message: 'must be in the future' }],
      });
    if (expires > Date.now() + 90 * 86_400_000) {
      throw new HttpProblem(400, 'Bad Request', 'a waiver lasts at most 90 days', {
        issues: [{ path: 'expires_at', code: 'custom', message: 'at most 90 days from now' }],
      });
    }
    const p = principalOf(res);
    const inserted = await db.query<WaiverRow>(
      `INSERT INTO waivers (tenant_id, id, gates, reason, impact_level, mitigation, budget_delta, expires_at, created_by)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (tenant_id, id) DO NOTHING RETURNING *`,
      [
        p.tenantId,
        w.id,
        w.gates,
        w.reason,
        w.impact_level,
        w.mitigation,
        w.budget_delta ? JSON.stringify(w.budget_delta) : null,
        w.expires_at,
        p.subject,
      ],
    );
    if (!inserted.rows[0]) throw conflict(`waiver ${w.id} already exists`);
    await auditByCaller(db, res, 'waiver.created', w.id, {
      gates: w.gates,
      impact_level: w.impact_level,
      expires_at: w.expires_at,
    });
    res.status(201).location(`/api/v1/waivers/${w.id}`).json(view(inserted.rows[0]));
  });

  router.get('/api/v1/waivers/:id', requireRole('viewer'), async (req, res) => {
    res.json(view(await load(res, String(req.params.id))));
  });

  router.patch('/api/v1/waivers/:id', requireRole('operator'), async (req, res) => {
    const body = validate(UpdateSchema, req.body);
    const current = await load(res, String(req.params.id));
    if (current.status !== 'pending')
      throw conflict(`waiver ${current.id} is ${current.status}; only a pending waiver can be changed`);
    if (body.expires_at && Date.parse(body.expires_at) > current.created_at.getTime() + 90 * 86_400_000) {
      throw new HttpProblem(400, 'Bad Request', 'a waiver lasts at most 90 days from its creation');
    }
    const { rows } = await db.query<WaiverRow>(
      `UPDATE waivers SET reason = COALESCE($3, reason), mitigation = COALESCE($4, mitigation), expires_at = COALESCE($5, expires_at)
        WHERE tenant_id = $1 AND id = $2 RETURNING *`,
      [principalOf(res).tenantId, current.id, body.reason ?? null, body.mitigation ?? null, body.expires_at ?? null],
    );
    await auditByCaller(db, res, 'waiver.updated', current.id, { ...body });
    res.json(view(rows[0]!));
  });

  router.post('/api/v1/waivers/:id/approve', requireRole('approver'), async (req, res) => {
    const body = validate(DecisionSchema, req.body);
    const current = await load(res, String(req.params.id));
    const p = principalOf(res);
    if (current.status !== 'pending') throw conflict(`waiver ${current.id} is ${current.status}`);
    if (current.expires_at.getTime() <= Date.now()) throw conflict(`waiver ${current.id} has already expired`);
    const { rows } = await db.query<WaiverRow>(
      `UPDATE waivers SET status = 'active', approved_by = $3, approved_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING *`,
      [p.tenantId, current.id, p.subject],
    );
    await auditByCaller(db, res, 'waiver.approved', current.id, { reason: body.reason ?? null });
    res.json(view(rows[0]!));
  });

  router.post('/api/v1/waivers/:id/revoke', requireRole('approver'), async (req, res) => {
    const body = validate(DecisionSchema, req.body);
    const current = await load(res, String(req.params.id));
    if (current.status === 'revoked') throw conflict(`waiver ${current.id} is already revoked`);
    const { rows } = await db.query<WaiverRow>(
      `UPDATE waivers SET status = 'revoked' WHERE tenant_id = $1 AND id = $2 RETURNING *`,
      [principalOf(res).tenantId, current.id],
    );
    await auditByCaller(db, res, 'waiver.revoked', current.id, { reason: body.reason ?? null });
    res.json(view(rows[0]!));
  });

  return router;
}
