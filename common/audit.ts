/**
 * The append-only, hash-chained audit trail. Each event's hash covers its content and the previous event's hash,
 * so an edited, deleted or reordered row breaks the chain. Appends are serialised by an advisory lock.
 * An idempotency key makes a retried writer (an activity run twice) record its event once.
 */
import type { PoolClient } from 'pg';
import type { Db } from './db.js';
import { hashJson } from './hash.js';

export const GENESIS_HASH = '0'.repeat(64);
const AUDIT_LOCK = 0x61756469; // 'audi'

export interface AuditEventInput {
  tenantId: string;
  actor: string; // user:<id> | worker:<pool> | council:<judge> | system
  action: string; // e.g. task.started, tool.called
  subject?: string;
  workflowId?: string;
  correlationId?: string;
  idempotencyKey?: string;
  payload?: Record<string, unknown>;
}

export interface AuditEvent extends Required<
  Omit<AuditEventInput, 'subject' | 'workflowId' | 'correlationId' | 'idempotencyKey'>
> {
  seq: string;
  id: string;
  occurredAt: string;
  subject: string | null;
  workflowId: string | null;
  correlationId: string | null;
  idempotencyKey: string | null;
  prevHash: string;
  hash: string;
}

interface AuditRow {
  seq: string;
  id: string;
  occurred_at: Date;
  tenant_id: string;
  actor: string;
  action: string;
  subject: string | null;
  workflow_id: string | null;
  correlation_id: string | null;
  idempotency_key: string | null;
  payload: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

function fromRow(r: AuditRow): AuditEvent {
  return {
    seq: r.seq,
    id: r.id,
    occurredAt: r.occurred_at.toISOString(),
    tenantId: r.tenant_id,
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    workflowId: r.workflow_id,
    correlationId: r.correlation_id,
    idempotencyKey: r.idempotency_key,
    payload: r.payload,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** The fields an event's hash covers: everything but its position (seq) and the hash itself. */
const HASHED_FIELDS = [
  'id',
  'occurredAt',
  'tenantId',
  'actor',
  'action',
  'subject',
  'workflowId',
  'correlationId',
  'idempotencyKey',
  'payload',
  'prevHash',
] as const;

export function auditHash(e: Omit<AuditEvent, 'seq' | 'hash'>): string {
  return hashJson(Object.fromEntries(HASHED_FIELDS.map((field) => [field, e[field]])));
}

/** Appends an event (or returns the existing one with the same idempotency key). */
export async function appendAuditEvent(db: Db, input: AuditEventInput): Promise<AuditEvent> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
    if (input.idempotencyKey) {
      const existing = await client.query<AuditRow>('SELECT * FROM audit_events WHERE idempotency_key = $1', [
        input.idempotencyKey,
      ]);
      if (existing.rows[0]) {
        await client.query('COMMIT');
        return fromRow(existing.rows[0]);
      }
    }
    const last = await client.query<{ hash: string }>('SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1');
    const { rows } = await client.query<{ id: string; occurred_at: Date }>(
      "SELECT gen_random_uuid() AS id, date_trunc('milliseconds', clock_timestamp()) AS occurred_at",
    );
    const draft = {
      id: rows[0]!.id,
      occurredAt: rows[0]!.occurred_at.toISOString(),
      tenantId: input.tenantId,
      actor: input.actor,
      action: input.action,
      subject: input.subject ?? null,
      workflowId: input.workflowId ?? null,
      correlationId: input.correlationId ?? null,
      idempotencyKey: input.idempotencyKey ?? null,
      payload: input.payload ?? {},
      prevHash: last.rows[0]?.hash ?? GENESIS_HASH,
    };
    const hash = auditHash(draft);
    const inserted = await client.query<AuditRow>(
      `INSERT INTO audit_events (id, occurred_at, tenant_id, actor, action, subject, workflow_id, correlation_id,
                                 idempotency_key, payload, prev_hash, hash)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) RETURNING *`,
      [
        draft.id,
        draft.occurredAt,
        draft.tenantId,
        draft.actor,
        draft.action,
        draft.subject,
        draft.workflowId,
        draft.correlationId,
        draft.idempotencyKey,
        JSON.stringify(draft.payload),
        draft.prevHash,
        hash,
      ],
    );
    await client.query('COMMIT');
    return fromRow(inserted.rows[0]!);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export async function listAuditEvents(
  db: Db,
  filter: { tenantId: string; workflowId?: string },
): Promise<AuditEvent[]> {
  const { rows } = await db.query<AuditRow>(
    `SELECT * FROM audit_events WHERE tenant_id = $1 AND ($2::text IS NULL OR workflow_id = $2) ORDER BY seq`,
    [filter.tenantId, filter.workflowId ?? null],
  );
  return rows.map(fromRow);
}

/** Walks the whole chain; returns the first event whose link or content does not verify. */
export async function verifyAuditChain(
  db: Db | PoolClient,
): Promise<{ ok: true; count: number } | { ok: false; brokenAt: string; reason: string }> {
  const { rows } = await db.query<AuditRow>('SELECT * FROM audit_events ORDER BY seq');
  let prev = GENESIS_HASH;
  for (const row of rows) {
    const e = fromRow(row);
    if (e.prevHash !== prev) return { ok: false, brokenAt: e.seq, reason: 'previous-hash link does not match' };
    if (auditHash(e) !== e.hash) return { ok: false, brokenAt: e.seq, reason: 'content does not match its hash' };
    prev = e.hash;
  }
  return { ok: true, count: rows.length };
}
