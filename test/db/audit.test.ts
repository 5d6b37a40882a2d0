import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  appendAuditEvent,
  GENESIS_HASH,
  listAuditEvents,
  verifyAuditChain,
  type AuditEvent,
} from '../../common/audit.js';
import { getArtifact, putArtifact } from '../../common/artifacts.js';
import { createDb, migrate, type Db } from '../../common/db.js';
import { sha256Hex } from '../../common/hash.js';
import { testConfig } from '../helpers/stack.js';

describe('PostgreSQL: migrations, audit trail, artifacts', () => {
  let db: Db;
  /** The owner (the login role, without SET ROLE agency_app): the only one that can get past the privileges. */
  let owner: Db;
  beforeAll(() => {
    db = createDb(testConfig().DATABASE_URL);
    owner = createDb(testConfig().DATABASE_URL, 2, { role: null });
  });
  afterAll(async () => {
    await db.end();
    await owner.end();
  });

  it('when migrations run again, then nothing is applied twice', async () => {
    expect(await migrate(testConfig().DATABASE_URL)).toEqual([]);
    const { rows } = await db.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY run_on');
    expect(rows.map((r) => r.name)).toContain('0001_foundation');
  });

  it('when events are appended, then each links to the previous one and the chain verifies', async () => {
    const workflowId = `wf-chain-${Date.now()}`;
    const a = await appendAuditEvent(db, { tenantId: 'default', actor: 'system', action: 'test.a', workflowId });
    const b = await appendAuditEvent(db, { tenantId: 'default', actor: 'user:alice', action: 'test.b', workflowId });
    // The chain is one for every tenant, and other test files append to it at the same time: b links to the event
    // just before it, which is a unless another append fell in between.
    const { rows: before } = await owner.query<{ hash: string }>(
      'SELECT hash FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 1',
      [b.seq],
    );
    expect(BigInt(a.seq)).toBeLessThan(BigInt(b.seq));
    expect(b.prevHash).toBe(before[0]?.hash);
    expect(a.prevHash === GENESIS_HASH || /^[0-9a-f]{64}$/.test(a.prevHash)).toBe(true);
    expect(await verifyAuditChain(db)).toMatchObject({ ok: true });
    expect((await listAuditEvents(db, { tenantId: 'default', workflowId })).map((e) => e.action)).toEqual([
      'test.a',
      'test.b',
    ]);
  });

  it('when the same idempotency key is appended twice (concurrently), then one event exists', async () => {
    const key = `idem-${Date.now()}`;
    const [x, y] = await Promise.all([
      appendAuditEvent(db, { tenantId: 'default', actor: 'system', action: 'test.once', idempotencyKey: key }),
      appendAuditEvent(db, { tenantId: 'default', actor: 'system', action: 'test.once', idempotencyKey: key }),
    ]);
    expect(x.id).toBe(y.id);
    const { rows } = await db.query('SELECT 1 FROM audit_events WHERE idempotency_key = $1', [key]);
    expect(rows).toHaveLength(1);
  });

  it('when many appends arrive at once, then they commit together, chained in call order, each key once', async () => {
    const workflowId = `wf-batch-${Date.now()}`;
    const key = `idem-batch-${Date.now()}`;
    const settled = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        appendAuditEvent(db, {
          tenantId: 'default',
          // One event the database refuses (the actor CHECK): it fails alone, the batch's others are appended.
          actor: i === 17 ? 'nobody' : 'system',
          action: 'test.batch',
          workflowId,
          idempotencyKey: i % 10 === 3 ? key : undefined,
          payload: { i },
        }),
      ),
    );
    expect(settled.filter((s) => s.status === 'rejected')).toHaveLength(1);
    expect((settled[17] as PromiseRejectedResult).reason).toMatchObject({ code: '23514' });
    const events = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    // Inputs 3, 13, 23 and 33 share a key: one event, the first's.
    const keyed = [3, 13, 23, 33].map((i) => (settled[i] as PromiseFulfilledResult<AuditEvent>).value);
    expect(new Set(keyed.map((e) => e.id)).size).toBe(1);
    expect(keyed[0]!.payload).toEqual({ i: 3 });
    const stored = await listAuditEvents(db, { tenantId: 'default', workflowId });
    expect(stored.map((e) => (e.payload as { i: number }).i)).toEqual(
      Array.from({ length: 40 }, (_, i) => i).filter((i) => i !== 17 && ![13, 23, 33].includes(i)),
    );
    expect(new Set(events.map((e) => e.id)).size).toBe(stored.length);
    expect(await verifyAuditChain(db)).toMatchObject({ ok: true });
  });

  it('when someone tries to update, delete or truncate audit events, then the database refuses', async () => {
    await appendAuditEvent(db, { tenantId: 'default', actor: 'system', action: 'test.guarded' });
    // The application's role lacks the privileges; the owner is stopped by the triggers.
    await expect(db.query("UPDATE audit_events SET action = 'x'")).rejects.toThrow(/permission denied/);
    await expect(db.query('DELETE FROM audit_events')).rejects.toThrow(/permission denied/);
    await expect(db.query('TRUNCATE audit_events')).rejects.toThrow(/permission denied/);
    await expect(owner.query("UPDATE audit_events SET action = 'x'")).rejects.toThrow(/append-only/);
    await expect(owner.query('DELETE FROM audit_events')).rejects.toThrow(/append-only/);
    await expect(owner.query('TRUNCATE audit_events')).rejects.toThrow(/append-only/);
  });

  it('when a row is edited behind the trigger, then verification names the broken event', async () => {
    const client = await owner.connect();
    try {
      await client.query('BEGIN');
      const e = await appendAuditEvent(db, { tenantId: 'default', actor: 'system', action: 'test.victim' });
      await client.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
      await client.query('UPDATE audit_events SET payload = \'{"forged":true}\' WHERE seq = $1', [e.seq]);
      const { rows } = await client.query<{ payload: unknown }>('SELECT payload FROM audit_events WHERE seq = $1', [
        e.seq,
      ]);
      expect(rows[0]?.payload).toEqual({ forged: true });
      expect(await verifyAuditChain(client)).toMatchObject({
        ok: false,
        brokenAt: e.seq,
        reason: 'content does not match its hash',
      });
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
    expect(await verifyAuditChain(db)).toMatchObject({ ok: true });
  });

  it('when an artifact is stored twice, then it is kept once under the sha256 of its bytes', async () => {
    const content = `diff ${Date.now()}`;
    const ref = await putArtifact(db, 'default', content, 'text/x-diff');
    const again = await putArtifact(db, 'default', content, 'text/x-diff');
    expect(ref).toEqual(again);
    expect(ref.sha256).toBe(sha256Hex(content));
    expect((await getArtifact(db, 'default', ref.sha256))?.content.toString()).toBe(content);
    expect(await getArtifact(db, 'other-tenant', ref.sha256)).toBeUndefined();
  });
});
