/**
 * The audit trail: query a tenant's events (filters, cursor pagination), export them as JSON Lines, and verify the
 * hash chain and its signed checkpoints. Events are returned exactly as hashed (common/audit.ts AuditEvent), so an
 * exported file can be re-checked with auditHash outside the platform.
 *
 * Listing is scoped to the caller's tenant. Verification walks the whole chain, every tenant's events (the chain is
 * global); it reports only positions, counts and reasons, no other tenant's content.
 */
import { Router, type Response } from 'express';
import { z } from 'zod';
import { auditHeadSeq, getAuditEvent, queryAuditEvents, verifyAuditChain } from '../../common/audit.js';
import type { AppDeps } from '../app.js';
import { notFound, validate } from '../errors.js';
import { Timestamp } from '../input.js';
import { principalOf, requireRole } from '../principal.js';

export const AUDIT_PAGE_MAX = 500;
const EXPORT_PAGE = 500;

const Filters = {
  actor: z.string().min(1).max(200).optional(),
  action: z.string().min(1).max(200).optional(),
  workflow_id: z.string().min(1).max(256).optional(),
  since: Timestamp.optional(),
  until: Timestamp.optional(),
};
const sinceBeforeUntil = (q: { since?: string; until?: string }): boolean =>
  !q.since || !q.until || Date.parse(q.since) < Date.parse(q.until);
const sinceBeforeUntilError = { message: 'since must be before until', path: ['until'] };

export const ListQuerySchema = z
  .object({
    ...Filters,
    limit: z.coerce.number().int().min(1).max(AUDIT_PAGE_MAX).default(100),
    cursor: z
      .string()
      .regex(/^\d{1,18}$/, 'the cursor is the nextCursor of the previous page')
      .optional(),
  })
  .strict()
  .refine(sinceBeforeUntil, sinceBeforeUntilError);
export const ExportQuerySchema = z.object(Filters).strict().refine(sinceBeforeUntil, sinceBeforeUntilError);
export const EmptyQuerySchema = z.object({}).strict();
export const EventIdSchema = z.uuid('an audit event id is a UUID');

function filtersOf(q: z.output<typeof ExportQuerySchema>) {
  return { actor: q.actor, action: q.action, workflowId: q.workflow_id, since: q.since, until: q.until };
}

/** Resolves once the response can take more data (or has closed). */
function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

export function auditRoutes({ db, config, log }: AppDeps): Router {
  const router = Router();

  router.get('/api/v1/audit/events', requireRole('viewer'), async (req, res) => {
    const q = validate(ListQuerySchema, req.query, 'query');
    const page = await queryAuditEvents(db, {
      tenantId: principalOf(res).tenantId,
      ...filtersOf(q),
      afterSeq: q.cursor,
      limit: q.limit,
    });
    res.json(page);
  });

  router.get('/api/v1/audit/events/:id', requireRole('viewer'), async (req, res) => {
    const id = validate(EventIdSchema, req.params.id, 'params');
    const event = await getAuditEvent(db, principalOf(res).tenantId, id);
    if (!event) throw notFound(`no audit event ${id}`);
    res.json(event);
  });

  /** Every matching event as one JSON object per line, up to the head at the start of the export, page by page. */
  router.get('/api/v1/audit/export', requireRole('admin'), async (req, res) => {
    const q = validate(ExportQuerySchema, req.query, 'query');
    const tenantId = principalOf(res).tenantId;
    const throughSeq = await auditHeadSeq(db);
    res.status(200).type('application/x-ndjson');
    res.setHeader('content-disposition', `attachment; filename="audit-${tenantId}-${throughSeq}.ndjson"`);
    res.setHeader('x-audit-head-seq', throughSeq);
    let afterSeq: string | undefined;
    try {
      do {
        const page = await queryAuditEvents(db, {
          tenantId,
          ...filtersOf(q),
          afterSeq,
          throughSeq,
          limit: EXPORT_PAGE,
        });
        if (res.destroyed) return;
        if (page.items.length && !res.write(page.items.map((e) => `${JSON.stringify(e)}\n`).join(''))) {
          await drained(res);
        }
        afterSeq = page.nextCursor ?? undefined;
      } while (afterSeq && !res.destroyed);
      res.end();
    } catch (err) {
      if (!res.headersSent) throw err;
      // Part of the file is out: cut the connection so the client sees an incomplete export, not a short one.
      log.error({ err, correlationId: res.locals.correlationId }, 'audit export failed midway');
      res.destroy();
    }
  });

  router.get('/api/v1/audit/verify', requireRole('admin'), async (req, res) => {
    validate(EmptyQuerySchema, req.query, 'query');
    const result = await verifyAuditChain(db);
    const latest = result.checkpoints.latest;
    // Checkpointing stopped, or recent checkpoints were removed: events after the newest one are not covered.
    const stale = !latest || Date.now() - Date.parse(latest.signedAt) > 2 * config.AUDIT_CHECKPOINT_INTERVAL;
    res.json({ ...result, checkpoints: { ...result.checkpoints, stale } });
  });

  return router;
}
