/**
 * The audit trail against tampering, on the run's real database: an edited row, a deleted row, a reordered pair, a
 * truncated tail, a rewritten chain and a doctored checkpoint are each detected; the application's role cannot change
 * history; the checkpoint workflow and its schedule; the audit API.
 *
 * The database is shared with test files running in parallel: every tampering happens as the owner inside a
 * transaction that is rolled back (verification reads through that same transaction), and assertions look only at
 * this file's own events (unique workflow ids and actions).
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg, { type PoolClient } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, ensureTenant } from '../../common/api-keys.js';
import {
  appendAuditEvent,
  AuditChainBroken,
  auditHash,
  createCheckpoint,
  queryAuditEvents,
  verifyAuditChain,
  type AuditEvent,
  type AuditVerification,
} from '../../common/audit.js';
import { createDb, ensureDatabase, migrate, type Db } from '../../common/db.js';
import { loadOrCreateSigningKey, type SigningKey } from '../../common/signing.js';
import { ensureAuditCheckpointSchedule } from '../../temporal/schedules.js';
import { queueFor } from '../../temporal/task-queues.js';
import { auditCheckpointWorkflow } from '../../workflows/index.js';
import { json, startApi, startWorkers, temporalClient, testConfig, type RunningApi } from '../helpers/stack.js';

const run = `tamper-${randomUUID().slice(0, 8)}`;

describe('audit trail: tampering is detected', () => {
  let db: Db;
  let owner: Db;
  let keyDir: string;
  let key: SigningKey;

  beforeAll(async () => {
    db = createDb(testConfig().DATABASE_URL);
    owner = createDb(testConfig().DATABASE_URL, 2, { role: null });
    keyDir = await mkdtemp(path.join(os.tmpdir(), 'agency-audit-key-'));
    key = await loadOrCreateSigningKey(keyDir);
  });
  afterAll(async () => {
    await db?.end();
    await owner?.end();
    if (keyDir) await rm(keyDir, { recursive: true, force: true });
  });

  /** Appends n events of this file under a label (its own workflow id and action). */
  async function append(label: string, n: number): Promise<AuditEvent[]> {
    const events: AuditEvent[] = [];
    for (let i = 0; i < n; i++) {
      events.push(
        await appendAuditEvent(db, {
          tenantId: 'default',
          actor: 'system',
          action: `test.tamper.${label}`,
          workflowId: `${run}-${label}`,
          payload: { i },
        }),
      );
    }
    return events;
  }

  /**
   * Tampers as the owner with the append-only triggers disabled, verifies through the same transaction, and rolls it
   * all back, so nothing outside this transaction ever sees the tampering.
   */
  async function tampered(tamper: (c: PoolClient) => Promise<void>): Promise<AuditVerification> {
    const client = await owner.connect();
    try {
      await client.query('BEGIN');
      await client.query('ALTER TABLE audit_events DISABLE TRIGGER USER');
      await client.query('ALTER TABLE audit_checkpoints DISABLE TRIGGER USER');
      await tamper(client);
      return await verifyAuditChain(client);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  }

  /** Overwrites the row at `seq` with the content of `e` (everything but the seq). */
  async function overwrite(c: PoolClient, seq: string, e: Omit<AuditEvent, 'seq'>): Promise<void> {
    await c.query(
      `UPDATE audit_events SET id = $2, occurred_at = $3, tenant_id = $4, actor = $5, action = $6, subject = $7,
              workflow_id = $8, correlation_id = $9, idempotency_key = $10, payload = $11, prev_hash = $12, hash = $13
        WHERE seq = $1`,
      [
        seq,
        e.id,
        e.occurredAt,
        e.tenantId,
        e.actor,
        e.action,
        e.subject,
        e.workflowId,
        e.correlationId,
        e.idempotencyKey,
        JSON.stringify(e.payload),
        e.prevHash,
        e.hash,
      ],
    );
  }

  it('when the application role tries to update, delete or truncate, then PostgreSQL refuses; inserting works', async () => {
    expect((await db.query<{ r: string }>('SELECT current_user AS r')).rows[0]?.r).toBe('agency_app');
    const [e] = await append('privileges', 1);
    expect(e).toBeDefined();
    await expect(db.query("UPDATE audit_events SET action = 'x' WHERE seq = $1", [e!.seq])).rejects.toThrow(
      /permission denied for table audit_events/,
    );
    await expect(db.query('DELETE FROM audit_events WHERE seq = $1', [e!.seq])).rejects.toThrow(/permission denied/);
    await expect(db.query('TRUNCATE audit_events')).rejects.toThrow(/permission denied/);
    await expect(db.query('ALTER TABLE audit_events DISABLE TRIGGER USER')).rejects.toThrow(/must be owner/);
    const checkpoint = await createCheckpoint(db, key);
    expect(checkpoint).not.toBeNull();
    await expect(db.query('UPDATE audit_checkpoints SET event_count = 1')).rejects.toThrow(/permission denied/);
    await expect(db.query('DELETE FROM audit_checkpoints')).rejects.toThrow(/permission denied/);
    await expect(db.query("UPDATE signing_keys SET public_key_pem = 'x'")).rejects.toThrow(/permission denied/);
    // The owner is still stopped by the append-only triggers on the checkpoints.
    await expect(owner.query('DELETE FROM audit_checkpoints')).rejects.toThrow(/append-only/);
  });

  it('when a row is edited, then verification names that row', async () => {
    const [, b] = await append('edited', 3);
    const result = await tampered(async (c) => {
      await c.query(`UPDATE audit_events SET payload = '{"i":42}' WHERE seq = $1`, [b!.seq]);
    });
    expect(result).toMatchObject({ ok: false, brokenAt: b!.seq, reason: 'content does not match its hash' });
    expect(await verifyAuditChain(db)).toMatchObject({ ok: true });
  });

  it('when a row is deleted, then verification names the event after it', async () => {
    const [, b] = await append('deleted', 3);
    let next: string | undefined;
    const result = await tampered(async (c) => {
      await c.query('DELETE FROM audit_events WHERE seq = $1', [b!.seq]);
      next = (await c.query<{ seq: string }>('SELECT min(seq)::text AS seq FROM audit_events WHERE seq > $1', [b!.seq]))
        .rows[0]?.seq;
    });
    expect(next).toBeDefined();
    expect(result).toMatchObject({ ok: false, brokenAt: next, reason: 'previous-hash link does not match' });
  });

  it('when two rows swap places, then verification names the first of the pair', async () => {
    const [a, b] = await append('reordered', 2);
    const result = await tampered(async (c) => {
      // Through a placeholder: id, hash and idempotency key are unique.
      await c.query(`UPDATE audit_events SET id = gen_random_uuid(), hash = 'placeholder' WHERE seq = $1`, [a!.seq]);
      await overwrite(c, b!.seq, a!);
      await overwrite(c, a!.seq, b!);
      const swapped = await c.query<{ action: string; payload: unknown }>(
        'SELECT action, payload FROM audit_events WHERE seq IN ($1, $2) ORDER BY seq',
        [a!.seq, b!.seq],
      );
      expect(swapped.rows.map((r) => r.payload)).toEqual([{ i: 1 }, { i: 0 }]);
    });
    expect(result).toMatchObject({ ok: false, brokenAt: a!.seq, reason: 'previous-hash link does not match' });
  });

  it('when the tail is truncated, then the chain still links but the checkpoint over it is reported', async () => {
    const events = await append('truncated', 3);
    const checkpoint = (await createCheckpoint(db, key))!;
    expect(BigInt(checkpoint.headSeq) >= BigInt(events[2]!.seq)).toBe(true);
    const result = await tampered(async (c) => {
      // The last N rows: this file's three events and anything appended after them.
      await c.query('DELETE FROM audit_events WHERE seq >= $1', [events[0]!.seq]);
    });
    expect(result.ok).toBe(false);
    expect(result.checkpoints.problems).toContainEqual({
      checkpointId: checkpoint.id,
      headSeq: checkpoint.headSeq,
      reason: `its head event ${checkpoint.headSeq} is missing (the tail was truncated)`,
    });
    // The links that remain are intact: what is reported is a checkpoint's finding, at its head.
    expect((result as { reason: string }).reason).toMatch(/^checkpoint \d+: its head event \d+ is missing/);
    expect(BigInt((result as { brokenAt: string }).brokenAt) >= BigInt(events[0]!.seq)).toBe(true);
  });

  it('when the chain is rewritten with every hash recomputed, then the checkpoint over it is reported', async () => {
    const [, b] = await append('rewritten', 3);
    const checkpoint = (await createCheckpoint(db, key))!;
    const result = await tampered(async (c) => {
      const { rows } = await c.query<{ seq: string }>('SELECT seq FROM audit_events WHERE seq >= $1 ORDER BY seq', [
        b!.seq,
      ]);
      const before = await c.query<{ hash: string }>(
        'SELECT hash FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 1',
        [b!.seq],
      );
      let prevHash = before.rows[0]!.hash;
      for (const { seq } of rows) {
        const row = await readEvent(c, seq);
        const forged = { ...row, prevHash, payload: seq === b!.seq ? { i: 42 } : row.payload };
        const hash = auditHash(forged);
        await c.query('UPDATE audit_events SET payload = $2, prev_hash = $3, hash = $4 WHERE seq = $1', [
          seq,
          JSON.stringify(forged.payload),
          prevHash,
          hash,
        ]);
        prevHash = hash;
      }
    });
    expect(result.ok).toBe(false);
    expect(result.checkpoints.problems).toContainEqual({
      checkpointId: checkpoint.id,
      headSeq: checkpoint.headSeq,
      reason: `its head event ${checkpoint.headSeq} has another hash (the chain was rewritten)`,
    });
    expect((result as { reason: string }).reason).toMatch(/^checkpoint \d+: .*another hash/);
  });

  it('when a checkpoint is doctored or signed by an unknown key, then its signature is reported', async () => {
    await append('checkpoint', 1);
    const checkpoint = (await createCheckpoint(db, key))!;
    const result = await tampered(async (c) => {
      await c.query('UPDATE audit_checkpoints SET event_count = event_count + 1 WHERE id = $1', [checkpoint.id]);
      await c.query(
        `INSERT INTO audit_checkpoints (head_seq, head_hash, event_count, signed_at, key_id, signature, payload_sha256)
         VALUES ($1, $2, $3, now(), '0123456789abcdef', 'AAAA', $4)`,
        [checkpoint.headSeq, checkpoint.headHash, checkpoint.count, '0'.repeat(64)],
      );
    });
    expect(result.ok).toBe(false);
    const mine = result.checkpoints.problems.filter((p) => p.headSeq === checkpoint.headSeq);
    expect(mine).toContainEqual({
      checkpointId: checkpoint.id,
      headSeq: checkpoint.headSeq,
      reason: 'signature does not verify',
    });
    expect(mine).toContainEqual(
      expect.objectContaining({
        checkpointId: checkpoint.id,
        reason: `${checkpoint.count} events up to its head ${checkpoint.headSeq}, it signed ${checkpoint.count + 1} (rows deleted or inserted)`,
      }),
    );
    expect(mine).toContainEqual(
      expect.objectContaining({ reason: 'signed by key 0123456789abcdef, which is not in signing_keys' }),
    );
    // Untouched, the same checkpoints verify; with pinned keys, a key outside the list is reported.
    const clean = await verifyAuditChain(db);
    expect(clean).toMatchObject({ ok: true, checkpoints: { problems: [] } });
    expect(clean.checkpoints.checked).toBeGreaterThan(0);
    const pinned = await verifyAuditChain(db, { trustedKeyIds: ['fedcba9876543210'] });
    expect(pinned.checkpoints.problems).toContainEqual(
      expect.objectContaining({
        checkpointId: checkpoint.id,
        reason: `signed by key ${key.keyId}, which is not trusted`,
      }),
    );
  });

  it('when history changed since the last checkpoint, then no new one is signed (in a private database)', async () => {
    // Committed tampering needs a database of its own.
    const url = new URL(testConfig().DATABASE_URL);
    url.pathname = `${url.pathname}_${run.replace(/-/g, '_')}`;
    const admin = new URL(url);
    admin.pathname = '/postgres';
    await ensureDatabase(url.toString());
    try {
      // Before migrate the role may exist (other databases) but holds no grants here: the pool keeps the login role.
      const early = createDb(url.toString(), 1);
      const before = await early.query<{ r: string; s: string }>('SELECT current_user AS r, session_user AS s');
      await early.end();
      expect(before.rows[0]?.r).toBe(before.rows[0]?.s);
      await migrate(url.toString());
      const app = createDb(url.toString(), 2);
      const own = createDb(url.toString(), 1, { role: null });
      try {
        expect((await app.query<{ r: string }>('SELECT current_user AS r')).rows[0]?.r).toBe('agency_app');
        const append = (i: number): Promise<AuditEvent> =>
          appendAuditEvent(app, { tenantId: 'default', actor: 'system', action: 'test.private', payload: { i } });
        await append(0);
        await append(1);
        expect(await createCheckpoint(app, key)).toMatchObject({ count: 2 });
        const changed = await append(2);
        await append(3);
        await own.query('ALTER TABLE audit_events DISABLE TRIGGER USER');
        await own.query(`UPDATE audit_events SET payload = '{"i":42}' WHERE seq = $1`, [changed.seq]);
        await expect(createCheckpoint(app, key)).rejects.toThrow(
          new AuditChainBroken(`event ${changed.seq}: content does not match its hash`),
        );
        expect(await verifyAuditChain(app)).toMatchObject({ ok: false, brokenAt: changed.seq });
        expect((await own.query('SELECT 1 FROM audit_checkpoints')).rowCount).toBe(1);
      } finally {
        await app.end();
        await own.end();
      }
    } finally {
      const client = new pg.Client({ connectionString: admin.toString() });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS "${url.pathname.slice(1)}" WITH (FORCE)`);
      await client.end();
    }
  });

  it('when the checkpoint workflow runs and its schedule is ensured, then a checkpoint is signed and the schedule exists', async () => {
    const config = testConfig({ SIGNING_KEY_DIR: keyDir, AUDIT_CHECKPOINT_INTERVAL: '1h' });
    const workers = await startWorkers(config, ['orchestration', 'planning']);
    const client = await temporalClient(config);
    try {
      await append('workflow', 1);
      const summary = await client.workflow.execute(auditCheckpointWorkflow, {
        workflowId: `${run}-checkpoint`,
        taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
      });
      expect(summary?.keyId).toBe(key.keyId);
      expect(summary?.headHash).toMatch(/^[0-9a-f]{64}$/);
      const { rows } = await db.query<{ signature: string }>('SELECT signature FROM audit_checkpoints WHERE id = $1', [
        summary!.id,
      ]);
      expect(rows[0]?.signature).toBe(summary!.signature);

      const first = await ensureAuditCheckpointSchedule(client, config);
      expect(first).toEqual({ scheduleId: `${config.TASK_QUEUE_PREFIX}audit-checkpoint`, created: true });
      const again = await ensureAuditCheckpointSchedule(client, { ...config, AUDIT_CHECKPOINT_INTERVAL: 1_800_000 });
      expect(again.created).toBe(false);
      const described = await client.schedule.getHandle(first.scheduleId).describe();
      expect(described.spec.intervals?.[0]?.every).toBe(1_800_000);
      expect(described.action).toMatchObject({
        workflowType: 'auditCheckpointWorkflow',
        taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
      });
      await client.schedule.getHandle(first.scheduleId).delete();
    } finally {
      await client.connection.close();
      await workers.stop();
    }
  });
});

/** One event by seq, read through the given client (inside its transaction). */
async function readEvent(c: PoolClient, seq: string): Promise<AuditEvent> {
  const { rows } = await c.query<{ tenant_id: string }>('SELECT tenant_id FROM audit_events WHERE seq = $1', [seq]);
  const tenantId = rows[0]!.tenant_id;
  const page = await queryAuditEvents(c, { tenantId, afterSeq: String(BigInt(seq) - 1n), throughSeq: seq, limit: 1 });
  return page.items[0]!;
}

describe('audit API', () => {
  let api: RunningApi;
  let events: AuditEvent[];
  const action = `test.api.${run}`;
  const workflowId = `${run}-api`;

  beforeAll(async () => {
    api = await startApi(testConfig());
    events = [];
    for (let i = 0; i < 7; i++) {
      events.push(
        await appendAuditEvent(api.db, {
          tenantId: 'default',
          actor: i % 2 === 0 ? 'user:alice' : 'system',
          action,
          workflowId,
          payload: { i },
        }),
      );
    }
  });
  afterAll(async () => {
    await api?.stop();
  });

  type Page = { items: AuditEvent[]; nextCursor: string | null };
  const get = (url: string, key?: string): Promise<Response> =>
    key ? fetch(`${api.url}${url}`, { headers: { 'x-api-key': key } }) : api.fetch(url);

  it('when events are listed with a small limit, then the cursor walks every page in order', async () => {
    const seen: AuditEvent[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await get(`/api/v1/audit/events?action=${action}&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      const page = await json<Page>(res);
      seen.push(...page.items);
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(events);
  });

  it('when filters are given, then only matching events of the tenant come back', async () => {
    const byActor = await json<Page>(await get(`/api/v1/audit/events?workflow_id=${workflowId}&actor=user:alice`));
    expect(byActor.items.map((e) => e.payload)).toEqual([{ i: 0 }, { i: 2 }, { i: 4 }, { i: 6 }]);
    expect(byActor.nextCursor).toBeNull();

    const since = events[2]!.occurredAt;
    const until = events[5]!.occurredAt;
    const byTime = await json<Page>(
      await get(`/api/v1/audit/events?action=${action}&since=${since}&until=${encodeURIComponent(until)}`),
    );
    expect(byTime.items).toEqual(events.filter((e) => e.occurredAt >= since && e.occurredAt < until));

    const one = await get(`/api/v1/audit/events/${events[3]!.id}`);
    expect(await json(one)).toEqual(events[3]);
    expect((await get(`/api/v1/audit/events/${randomUUID()}`)).status).toBe(404);
    expect((await get('/api/v1/audit/events/not-a-uuid')).status).toBe(400);

    // Another tenant sees none of them.
    const tenant = `t-${run}`;
    await ensureTenant(api.db, tenant, tenant);
    const other = await createApiKey(api.db, { tenantId: tenant, name: `${run}-other`, roles: ['admin'] });
    const foreign = await json<Page>(await get(`/api/v1/audit/events?action=${action}`, other.key));
    expect(foreign.items).toEqual([]);
    expect((await get(`/api/v1/audit/events/${events[3]!.id}`, other.key)).status).toBe(404);
  });

  it('when the events are exported, then the NDJSON has one line per queried event, each verifiable', async () => {
    const res = await get(`/api/v1/audit/export?action=${action}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    const lines = (await res.text()).split('\n').filter(Boolean);
    const queried = await queryAuditEvents(api.db, { tenantId: 'default', action, limit: 500 });
    expect(lines).toHaveLength(queried.items.length);
    expect(lines).toHaveLength(7);
    const exported = lines.map((l) => JSON.parse(l) as AuditEvent);
    expect(exported).toEqual(events);
    for (const e of exported) expect(auditHash(e)).toBe(e.hash);
  });

  it('when the chain is untouched, then verify reports ok with the count and the checkpoints', async () => {
    const res = await get('/api/v1/audit/verify');
    expect(res.status).toBe(200);
    const body = await json<{ ok: boolean; count: number; checkpoints: { problems: unknown[]; stale: boolean } }>(res);
    expect(body).toMatchObject({ ok: true, checkpoints: { problems: [] } });
    expect(body.count).toBeGreaterThanOrEqual(7);
    expect(typeof body.checkpoints.stale).toBe('boolean');
  });

  it('when a filter is unknown or malformed, then 400; without the role, then 403', async () => {
    for (const query of [
      'bogus=1',
      'limit=501',
      'limit=0',
      'cursor=abc',
      'since=yesterday',
      `since=${events[5]!.occurredAt}&until=${events[0]!.occurredAt}`,
      'action=a&action=b',
    ]) {
      const res = await get(`/api/v1/audit/events?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/problem\+json/);
    }
    expect((await get('/api/v1/audit/export?limit=5')).status).toBe(400);
    expect((await get('/api/v1/audit/verify?deep=1')).status).toBe(400);

    const viewer = await createApiKey(api.db, { tenantId: 'default', name: `${run}-viewer`, roles: ['viewer'] });
    expect((await get(`/api/v1/audit/events?action=${action}`, viewer.key)).status).toBe(200);
    expect((await get(`/api/v1/audit/export?action=${action}`, viewer.key)).status).toBe(403);
    expect((await get('/api/v1/audit/verify', viewer.key)).status).toBe(403);
  });
});
