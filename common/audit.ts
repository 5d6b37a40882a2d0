/**
 * The append-only, hash-chained audit trail. Each event's hash covers its content and the previous event's hash,
 * so an edited, deleted or reordered row breaks the chain. Appends are serialised by an advisory lock, taken once per
 * batch: concurrent appends on one pool are committed together (group commit), the chain computed in order.
 * An idempotency key makes a retried writer (an activity run twice) record its event once.
 *
 * The chain alone cannot show that its tail was cut off, or that the whole chain was recomputed from an edited start:
 * signed checkpoints (createCheckpoint, run periodically by auditCheckpointWorkflow) record the head's seq, hash and
 * the number of events up to it under an Ed25519 signature, and verifyAuditChain checks every checkpoint against the
 * chain. The application's database role may only insert into these tables (migrations/0003_audit_hardening.sql).
 */
import pg, { type PoolClient } from 'pg';
import type { TaskRef } from '../workflows/task/definitions.js';
import type { Db } from './db.js';
import { hashJson } from './hash.js';
import { auditActionLabel, auditEventsTotal } from './metrics.js';
import {
  listSigningKeys,
  registerSigningKey,
  signJson,
  verifyJson,
  type JsonSignature,
  type SigningKey,
} from './signing.js';

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

/** The fields of an event about a task: its tenant, workflow and correlation id, and who acted. */
export function taskAudit(
  task: Pick<TaskRef, 'tenantId' | 'workflowId' | 'correlationId'>,
  actor: string,
): Pick<AuditEventInput, 'tenantId' | 'actor' | 'workflowId' | 'correlationId'> {
  return { tenantId: task.tenantId, actor, workflowId: task.workflowId, correlationId: task.correlationId };
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

/** Events one transaction appends at most; more waiting go in the next. */
const MAX_BATCH = 256;

interface PendingAppend {
  input: AuditEventInput;
  resolve: (event: AuditEvent) => void;
  reject: (err: unknown) => void;
}

/** Per pool: the appends waiting for the next transaction, and whether one is under way. */
const queues = new WeakMap<Db, { pending: PendingAppend[]; running: boolean }>();

/**
 * Appends an event (or returns the existing one with the same idempotency key) and resolves once it is committed.
 *
 * Group commit: the appends that arrive on one pool while a transaction is under way wait for it, then go together in
 * the next one (in the order they were called, at most MAX_BATCH). Each transaction takes the one advisory lock, reads
 * the head, computes every event's hash in order, each linking to the one before, and inserts them all in one
 * statement: the chain is the same single chain it always was (every verification and checkpoint unchanged), and
 * the lock is taken once per batch instead of once per event. A lone writer waits for nobody.
 */
export function appendAuditEvent(db: Db, input: AuditEventInput): Promise<AuditEvent> {
  let queue = queues.get(db);
  if (!queue) queues.set(db, (queue = { pending: [], running: false }));
  const q = queue;
  return new Promise<AuditEvent>((resolve, reject) => {
    q.pending.push({ input, resolve, reject });
    if (!q.running) void drain(db, q);
  });
}

/** An error one event of a batch can cause on its own (a data exception, a constraint): try the others without it. */
function oneEventsFault(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^2[23]/.test(code);
}

async function drain(db: Db, q: { pending: PendingAppend[]; running: boolean }): Promise<void> {
  q.running = true;
  try {
    while (q.pending.length > 0) {
      const batch = q.pending.splice(0, MAX_BATCH);
      try {
        const events = await appendBatch(
          db,
          batch.map((p) => p.input),
        );
        batch.forEach((p, i) => p.resolve(events[i]!));
      } catch (err) {
        if (batch.length === 1 || !oneEventsFault(err)) {
          for (const p of batch) p.reject(err);
          continue;
        }
        // One event broke the batch (say, an actor the CHECK refuses): each on its own, so only that one fails.
        for (const p of batch) {
          try {
            p.resolve((await appendBatch(db, [p.input]))[0]!);
          } catch (own) {
            p.reject(own);
          }
        }
      }
    }
  } finally {
    q.running = false;
  }
}

/** One transaction: the events in order (an idempotency key already recorded, or repeated, gives the one event). */
async function appendBatch(db: Db, inputs: readonly AuditEventInput[]): Promise<AuditEvent[]> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
    const keys = [...new Set(inputs.map((i) => i.idempotencyKey).filter((k): k is string => !!k))];
    const byKey = new Map<string, AuditEvent>();
    if (keys.length > 0) {
      const existing = await client.query<AuditRow>('SELECT * FROM audit_events WHERE idempotency_key = ANY($1)', [
        keys,
      ]);
      for (const row of existing.rows) byKey.set(row.idempotency_key!, fromRow(row));
    }
    // Which inputs are new events: the first of each key not yet recorded, and every input without a key. Each input
    // answers with the event at its slot: its key's, or the new event's index.
    const fresh: AuditEventInput[] = [];
    const claimed = new Set<string>();
    const slots = inputs.map((input): string | number => {
      const key = input.idempotencyKey;
      if (key && (byKey.has(key) || claimed.has(key))) return key;
      if (key) claimed.add(key);
      return fresh.push(input) - 1;
    });
    const created: AuditEvent[] = [];
    if (fresh.length > 0) {
      // The head, one time for the batch, and ids and seqs taken under the lock: every seq is above the head's, and
      // ascending seq is chain order.
      const { rows } = await client.query<{ hash: string | null; occurred_at: Date; ids: string[]; seqs: string[] }>(
        `SELECT (SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1) AS hash,
                date_trunc('milliseconds', clock_timestamp()) AS occurred_at,
                ARRAY(SELECT gen_random_uuid()::text FROM generate_series(1, $1)) AS ids,
                ARRAY(SELECT nextval(pg_get_serial_sequence('audit_events', 'seq'))::text
                        FROM generate_series(1, $1)) AS seqs`,
        [fresh.length],
      );
      const head = rows[0]!;
      const seqs = head.seqs.map(BigInt).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      let prevHash = head.hash ?? GENESIS_HASH;
      const drafts = fresh.map((input, i) => {
        const draft = {
          id: head.ids[i]!,
          occurredAt: head.occurred_at.toISOString(),
          tenantId: input.tenantId,
          actor: input.actor,
          action: input.action,
          subject: input.subject ?? null,
          workflowId: input.workflowId ?? null,
          correlationId: input.correlationId ?? null,
          idempotencyKey: input.idempotencyKey ?? null,
          payload: input.payload ?? {},
          prevHash,
        };
        const hash = auditHash(draft);
        prevHash = hash;
        return { ...draft, seq: seqs[i]!.toString(), hash };
      });
      const column = <K extends keyof (typeof drafts)[number]>(k: K) => drafts.map((d) => d[k]);
      const inserted = await client.query<AuditRow>(
        `INSERT INTO audit_events (seq, id, occurred_at, tenant_id, actor, action, subject, workflow_id,
                                   correlation_id, idempotency_key, payload, prev_hash, hash)
         SELECT u.seq, u.id, $3::timestamptz, u.tenant_id, u.actor, u.action, u.subject, u.workflow_id,
                u.correlation_id, u.idempotency_key, u.payload, u.prev_hash, u.hash
           FROM unnest($1::bigint[], $2::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                       $9::text[], $10::text[], $11::jsonb[], $12::text[], $13::text[])
                AS u(seq, id, tenant_id, actor, action, subject, workflow_id, correlation_id, idempotency_key,
                     payload, prev_hash, hash)
          ORDER BY u.seq
         RETURNING *`,
        [
          column('seq'),
          column('id'),
          head.occurred_at.toISOString(),
          column('tenantId'),
          column('actor'),
          column('action'),
          column('subject'),
          column('workflowId'),
          column('correlationId'),
          column('idempotencyKey'),
          drafts.map((d) => JSON.stringify(d.payload)),
          column('prevHash'),
          column('hash'),
        ],
      );
      const bySeq = new Map(inserted.rows.map((r) => [r.seq, fromRow(r)]));
      for (const d of drafts) created.push(bySeq.get(d.seq)!);
    }
    await client.query('COMMIT');
    for (const e of created) {
      auditEventsTotal.inc({ action: auditActionLabel(e.action) });
      if (e.idempotencyKey) byKey.set(e.idempotencyKey, e);
    }
    return slots.map((slot) => (typeof slot === 'number' ? created[slot]! : byKey.get(slot)!));
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

export interface AuditQuery {
  tenantId: string;
  actor?: string;
  action?: string;
  workflowId?: string;
  /** occurred_at at or after (inclusive). */
  since?: string | Date;
  /** occurred_at before (exclusive). */
  until?: string | Date;
  /** The cursor: events after this seq. */
  afterSeq?: string;
  /** Events up to and including this seq (an export pins the head it started at). */
  throughSeq?: string;
  limit: number;
}

/** One page of a tenant's events in chain order; nextCursor (the last seq returned) is null on the last page. */
export async function queryAuditEvents(
  db: Db | PoolClient,
  q: AuditQuery,
): Promise<{ items: AuditEvent[]; nextCursor: string | null }> {
  const { rows } = await db.query<AuditRow>(
    `SELECT * FROM audit_events
      WHERE tenant_id = $1
        AND ($2::text IS NULL OR actor = $2)
        AND ($3::text IS NULL OR action = $3)
        AND ($4::text IS NULL OR workflow_id = $4)
        AND ($5::timestamptz IS NULL OR occurred_at >= $5)
        AND ($6::timestamptz IS NULL OR occurred_at < $6)
        AND seq > $7::bigint
        AND ($8::bigint IS NULL OR seq <= $8)
      ORDER BY seq
      LIMIT $9`,
    [
      q.tenantId,
      q.actor ?? null,
      q.action ?? null,
      q.workflowId ?? null,
      q.since ?? null,
      q.until ?? null,
      q.afterSeq ?? '0',
      q.throughSeq ?? null,
      q.limit + 1,
    ],
  );
  const items = rows.slice(0, q.limit).map(fromRow);
  return { items, nextCursor: rows.length > q.limit ? (items.at(-1)?.seq ?? null) : null };
}

/** One of a tenant's events by its id. */
export async function getAuditEvent(
  db: Db | PoolClient,
  tenantId: string,
  id: string,
): Promise<AuditEvent | undefined> {
  const { rows } = await db.query<AuditRow>('SELECT * FROM audit_events WHERE tenant_id = $1 AND id = $2', [
    tenantId,
    id,
  ]);
  return rows[0] ? fromRow(rows[0]) : undefined;
}

/** The seq of the newest event (any tenant), '0' when there is none. */
export async function auditHeadSeq(db: Db | PoolClient): Promise<string> {
  const { rows } = await db.query<{ seq: string }>('SELECT COALESCE(max(seq), 0)::text AS seq FROM audit_events');
  return rows[0]?.seq ?? '0';
}

/** Every event after `afterSeq` (through `throughSeq`, if given) in chain order, read a page at a time. */
async function* chainAfter(
  db: Db | PoolClient,
  afterSeq = '0',
  throughSeq?: string,
  pageSize = 1000,
): AsyncGenerator<AuditEvent> {
  let cursor = afterSeq;
  for (;;) {
    const { rows } = await db.query<AuditRow>(
      'SELECT * FROM audit_events WHERE seq > $1::bigint AND ($2::bigint IS NULL OR seq <= $2) ORDER BY seq LIMIT $3',
      [cursor, throughSeq ?? null, pageSize],
    );
    for (const row of rows) yield fromRow(row);
    if (rows.length < pageSize) return;
    cursor = rows.at(-1)!.seq;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Checkpoints

export interface AuditCheckpoint {
  id: string;
  headSeq: string;
  headHash: string;
  /** Events with seq ≤ headSeq when it was signed. */
  count: number;
  signedAt: string;
  signature: JsonSignature;
}

interface CheckpointRow {
  id: string;
  head_seq: string;
  head_hash: string;
  event_count: string;
  signed_at: Date;
  key_id: string;
  signature: string;
  payload_sha256: string;
}

function checkpointFromRow(r: CheckpointRow): AuditCheckpoint {
  return {
    id: r.id,
    headSeq: r.head_seq,
    headHash: r.head_hash,
    count: Number(r.event_count),
    signedAt: r.signed_at.toISOString(),
    signature: { alg: 'Ed25519', keyId: r.key_id, signature: r.signature, payloadSha256: r.payload_sha256 },
  };
}

/** What a checkpoint's signature covers (canonical JSON, so field order does not matter). */
export function checkpointPayload(c: Pick<AuditCheckpoint, 'headSeq' | 'headHash' | 'count' | 'signedAt'>) {
  return { headSeq: c.headSeq, headHash: c.headHash, count: c.count, signedAt: c.signedAt };
}

/** createCheckpoint refuses to sign a chain that does not extend the previous checkpoint. */
export class AuditChainBroken extends Error {
  override name = 'AuditChainBroken';
}

/**
 * Signs the current head of the chain into audit_checkpoints (and registers the key's public half in signing_keys).
 * Before signing, the events since the previous checkpoint are checked (links, hashes, the count) so that a checkpoint
 * only ever extends a chain that matched the last one; a break throws AuditChainBroken and nothing is signed.
 * Returns null while the trail is empty.
 */
export async function createCheckpoint(db: Db, key: SigningKey): Promise<AuditCheckpoint | null> {
  await registerSigningKey(db, key);
  const client = await db.connect();
  try {
    // One snapshot for the previous checkpoint, the head, the count and the events between.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const head = await client.query<{ seq: string; hash: string; count: string; signed_at: Date }>(
      `SELECT h.seq, h.hash, (SELECT count(*) FROM audit_events a WHERE a.seq <= h.seq) AS count,
              date_trunc('milliseconds', clock_timestamp()) AS signed_at
         FROM (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1) h`,
    );
    const h = head.rows[0];
    if (!h) {
      await client.query('ROLLBACK');
      return null;
    }
    // The previous checkpoint is the newest one this key signed and whose signature verifies: a row someone else
    // inserted cannot steer (or stop) checkpointing. None (a new key): the whole chain is checked once.
    const previous = await client.query<CheckpointRow>(
      'SELECT * FROM audit_checkpoints WHERE key_id = $1 AND head_seq <= $2 ORDER BY head_seq DESC, id DESC LIMIT 20',
      [key.keyId, h.seq],
    );
    const prev = previous.rows
      .map(checkpointFromRow)
      .find((c) => verifyJson(checkpointPayload(c), c.signature, key.publicKeyPem));
    let prevHash = GENESIS_HASH;
    let count = 0;
    if (prev) {
      const at = await client.query<{ hash: string }>('SELECT hash FROM audit_events WHERE seq = $1', [prev.headSeq]);
      if (at.rows[0]?.hash !== prev.headHash) {
        throw new AuditChainBroken(`checkpoint ${prev.id}: its head event ${prev.headSeq} is missing or changed`);
      }
      prevHash = prev.headHash;
      count = prev.count;
    }
    for await (const e of chainAfter(client, prev?.headSeq, h.seq)) {
      if (e.prevHash !== prevHash) throw new AuditChainBroken(`event ${e.seq}: previous-hash link does not match`);
      if (auditHash(e) !== e.hash) throw new AuditChainBroken(`event ${e.seq}: content does not match its hash`);
      prevHash = e.hash;
      count += 1;
    }
    if (count !== Number(h.count)) {
      throw new AuditChainBroken(
        `${h.count} events up to ${h.seq}, but checkpoint ${prev?.id ?? '(none)'} and the events since make ${count}`,
      );
    }
    const draft = { headSeq: h.seq, headHash: h.hash, count, signedAt: h.signed_at.toISOString() };
    const signature = signJson(checkpointPayload(draft), key);
    const inserted = await client.query<CheckpointRow>(
      `INSERT INTO audit_checkpoints (head_seq, head_hash, event_count, signed_at, key_id, signature, payload_sha256)
       VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING *`,
      [
        draft.headSeq,
        draft.headHash,
        draft.count,
        draft.signedAt,
        signature.keyId,
        signature.signature,
        signature.payloadSha256,
      ],
    );
    await client.query('COMMIT');
    return checkpointFromRow(inserted.rows[0]!);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Verification

export interface CheckpointProblem {
  checkpointId: string;
  headSeq: string;
  reason: string;
}

export interface CheckpointReport {
  /** How many checkpoints were checked (all of them). */
  checked: number;
  /** The most recently signed checkpoint, if any. */
  latest: (Omit<AuditCheckpoint, 'signature'> & { keyId: string }) | null;
  problems: CheckpointProblem[];
}

export type AuditVerification =
  | { ok: true; count: number; checkpoints: CheckpointReport }
  | { ok: false; count: number; brokenAt: string; reason: string; checkpoints: CheckpointReport };

export interface VerifyOptions {
  /**
   * Key ids whose checkpoints are trusted. By default any key in signing_keys is: someone who can write to the
   * database could add a key of their own there, so pin the deployment's key ids for the stronger check.
   */
  trustedKeyIds?: readonly string[];
  pageSize?: number;
}

/**
 * Walks the whole chain (every tenant) and checks every checkpoint against it. Reports the first broken link: the
 * first event whose link or content does not verify, or a checkpoint whose head event is missing (tail truncated,
 * rows deleted), whose head hash differs (chain rewritten) or whose count differs (rows deleted or inserted before
 * the head), whichever comes first in chain order; and a checkpoint whose signature does not verify against
 * signing_keys. Given a pool, it reads one consistent snapshot; given a client, it reads through that client (and its
 * transaction, if one is open).
 */
export async function verifyAuditChain(db: Db | PoolClient, options: VerifyOptions = {}): Promise<AuditVerification> {
  if (!(db instanceof pg.Pool)) return walkChain(db, options);
  const client = await db.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    return await walkChain(client, options);
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

async function walkChain(db: PoolClient, options: VerifyOptions): Promise<AuditVerification> {
  const checkpoints = (await db.query<CheckpointRow>('SELECT * FROM audit_checkpoints ORDER BY head_seq, id')).rows.map(
    checkpointFromRow,
  );
  const keys = new Map((await listSigningKeys(db)).map((k) => [k.keyId, k.publicKeyPem]));
  const problems: CheckpointProblem[] = [];
  const problem = (c: AuditCheckpoint, reason: string): void =>
    void problems.push({ checkpointId: c.id, headSeq: c.headSeq, reason });

  for (const c of checkpoints) {
    const pem = keys.get(c.signature.keyId);
    if (!pem) {
      problem(c, `signed by key ${c.signature.keyId}, which is not in signing_keys`);
      continue;
    }
    if (options.trustedKeyIds && !options.trustedKeyIds.includes(c.signature.keyId)) {
      problem(c, `signed by key ${c.signature.keyId}, which is not trusted`);
    }
    let valid: boolean;
    try {
      valid = verifyJson(checkpointPayload(c), c.signature, pem);
    } catch {
      valid = false;
    }
    if (!valid) problem(c, 'signature does not verify');
  }

  let prev = GENESIS_HASH;
  let count = 0;
  let broken: { seq: string; reason: string } | undefined;
  let next = 0; // the next checkpoint (by head seq) to meet in the walk
  for await (const e of chainAfter(db, '0', undefined, options.pageSize)) {
    count += 1;
    if (!broken) {
      if (e.prevHash !== prev) broken = { seq: e.seq, reason: 'previous-hash link does not match' };
      else if (auditHash(e) !== e.hash) broken = { seq: e.seq, reason: 'content does not match its hash' };
    }
    prev = e.hash;
    const seq = BigInt(e.seq);
    for (; next < checkpoints.length && BigInt(checkpoints[next]!.headSeq) <= seq; next++) {
      const c = checkpoints[next]!;
      if (c.headSeq !== e.seq) problem(c, `its head event ${c.headSeq} is missing (rows deleted)`);
      else if (c.headHash !== e.hash)
        problem(c, `its head event ${c.headSeq} has another hash (the chain was rewritten)`);
      else if (c.count !== count) {
        problem(c, `${count} events up to its head ${c.headSeq}, it signed ${c.count} (rows deleted or inserted)`);
      }
    }
  }
  for (const c of checkpoints.slice(next)) {
    problem(c, `its head event ${c.headSeq} is missing (the tail was truncated)`);
  }

  const latest = checkpoints.reduce<AuditCheckpoint | undefined>(
    (a, c) => (!a || BigInt(c.id) > BigInt(a.id) ? c : a),
    undefined,
  );
  const report: CheckpointReport = {
    checked: checkpoints.length,
    latest: latest
      ? {
          id: latest.id,
          headSeq: latest.headSeq,
          headHash: latest.headHash,
          count: latest.count,
          signedAt: latest.signedAt,
          keyId: latest.signature.keyId,
        }
      : null,
    problems,
  };
  // The first broken link in chain order; on a tie the event's own break comes before a checkpoint's finding.
  let first = broken;
  for (const p of problems) {
    if (!first || BigInt(p.headSeq) < BigInt(first.seq)) {
      first = { seq: p.headSeq, reason: `checkpoint ${p.checkpointId}: ${p.reason}` };
    }
  }
  return first
    ? { ok: false, count, brokenAt: first.seq, reason: first.reason, checkpoints: report }
    : { ok: true, count, checkpoints: report };
}
