/**
 * Blob retention on the run's database (common/blob-store/retention.ts): unreferenced blobs older than the age are
 * removed and audited, referenced and recent ones stay, a second run removes nothing more, a released reference
 * restarts the clock; and the Temporal side: blobRetentionWorkflow on the planning pool and its schedule.
 *
 * The database is shared with other test files: each test works in a tenant of its own, and ages are made by moving
 * this file's own rows back in time.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ensureTenant } from '../../common/api-keys.js';
import { appendAuditEvent, listAuditEvents } from '../../common/audit.js';
import { addBlobRef, releaseBlobRefs } from '../../common/blob-store/catalog.js';
import { createPostgresBlobStore, type PostgresBlobStore } from '../../common/blob-store/postgres.js';
import { sweepBlobs } from '../../common/blob-store/retention.js';
import { BlobNotFoundError } from '../../common/blob-store/types.js';
import type { Db } from '../../common/db.js';
import { ensureBlobRetentionSchedule } from '../../temporal/schedules.js';
import { queueFor } from '../../temporal/task-queues.js';
import { blobRetentionWorkflow } from '../../workflows/index.js';
import { startWorkers, temporalClient, testConfig, useDb } from '../helpers/stack.js';

const DAY = 24 * 3_600_000;
const run = randomUUID().slice(0, 8);

describe('blob retention', () => {
  let db: Db;
  let store: PostgresBlobStore;
  let tenant: string;
  let n = 0;

  useDb((pool) => {
    db = pool;
    store = createPostgresBlobStore(db);
  });

  /** A tenant of the test's own. */
  async function freshTenant(): Promise<string> {
    tenant = `retain-${run}-${++n}`;
    await ensureTenant(db, tenant, 'blob retention');
    return tenant;
  }
  const put = async (text: string): Promise<string> => (await store.put(tenant, Buffer.from(text))).sha256;
  /** Moves the blob's touched_at (and created_at) back by `ms`. */
  const age = async (sha256: string, ms: number): Promise<void> => {
    await db.query(
      `UPDATE blobs SET touched_at = touched_at - $3 * interval '1 millisecond',
                        created_at = created_at - $3 * interval '1 millisecond'
        WHERE tenant_id = $1 AND sha256 = $2`,
      [tenant, sha256, ms],
    );
  };
  const removedEvents = async () =>
    (await listAuditEvents(db, { tenantId: tenant })).filter((e) => e.action === 'blob.removed');
  const sweep = () => sweepBlobs(db, store, { ageMs: 7 * DAY, tenantId: tenant });

  it('when an unreferenced blob is older than the age, then it is removed and audited; referenced and recent ones stay', async () => {
    await freshTenant();
    const old = await put('old and unreferenced');
    const kept = await put('old but referenced');
    const recent = await put('recent and unreferenced');
    await addBlobRef(db, tenant, kept, { kind: 'checkpoint', id: 'task-1' });
    await age(old, 8 * DAY);
    await age(kept, 8 * DAY);

    const first = await sweep();
    expect(first).toMatchObject({ backend: 'postgres', blobsRemoved: 1, bytesRemoved: 20, failed: 0 });
    expect(await store.head(tenant, old)).toBeUndefined();
    expect(await store.head(tenant, kept)).toBeDefined();
    expect(await store.head(tenant, recent)).toBeDefined();
    const chunks = await db.query(
      `SELECT 1 FROM blob_chunks c JOIN blob_uploads u ON u.id = c.upload_id WHERE u.tenant_id = $1`,
      [tenant],
    );
    expect(chunks.rowCount).toBe(2); // the two blobs left, one chunk each

    const [event, ...more] = await removedEvents();
    expect(more).toEqual([]);
    expect(event).toMatchObject({
      actor: 'system',
      subject: old,
      payload: { sha256: old, sizeBytes: 20, backend: 'postgres', reason: 'unreferenced' },
    });

    // Idempotent: a second run finds nothing and records nothing.
    expect(await sweep()).toMatchObject({ blobsRemoved: 0, uploadsRemoved: 0 });
    expect(await removedEvents()).toHaveLength(1);
  });

  it('when a reference is released, then the age counts from the release', async () => {
    await freshTenant();
    const sha = await put('a finished task’s checkpoint');
    await addBlobRef(db, tenant, sha, { kind: 'checkpoint', id: 'task-2' });
    await addBlobRef(db, tenant, sha, { kind: 'checkpoint', id: 'task-2' }); // idempotent
    await age(sha, 30 * DAY);
    expect(await releaseBlobRefs(db, tenant, { kind: 'checkpoint', id: 'task-2' })).toEqual([sha]);
    expect(await sweep()).toMatchObject({ blobsRemoved: 0 }); // released just now
    await age(sha, 8 * DAY);
    expect(await sweep()).toMatchObject({ blobsRemoved: 1 });
    // A reference to content that is no longer stored is refused.
    await expect(addBlobRef(db, tenant, sha, { kind: 'checkpoint', id: 'task-3' })).rejects.toThrow(BlobNotFoundError);
  });

  it('when old content is put again, then it counts as new and stays', async () => {
    await freshTenant();
    const sha = await put('put again');
    await age(sha, 8 * DAY);
    expect(await put('put again')).toBe(sha);
    expect(await sweep()).toMatchObject({ blobsRemoved: 0 });
    expect(await store.head(tenant, sha)).toBeDefined();
  });

  it('when a run recorded a removal but died before the delete, then the next run deletes it without a second event', async () => {
    await freshTenant();
    const sha = await put('half removed');
    await age(sha, 8 * DAY);
    const { rows } = await db.query<{ created_at: Date }>(
      'SELECT created_at FROM blobs WHERE tenant_id = $1 AND sha256 = $2',
      [tenant, sha],
    );
    // What the interrupted run had written: the event, under the blob's idempotency key.
    await appendAuditEvent(db, {
      tenantId: tenant,
      actor: 'system',
      action: 'blob.removed',
      subject: sha,
      idempotencyKey: `blob.removed:postgres:${tenant}:${sha}:${rows[0]!.created_at.toISOString()}`,
      payload: { sha256: sha },
    });
    expect(await sweep()).toMatchObject({ blobsRemoved: 1 });
    expect(await store.head(tenant, sha)).toBeUndefined();
    expect(await removedEvents()).toHaveLength(1);
  });

  it('when the retention workflow runs on the planning pool and its schedule is ensured, then old blobs go and the schedule exists', async () => {
    await freshTenant();
    const config = testConfig({ BLOB_RETENTION_AGE: '1h', BLOB_RETENTION_INTERVAL: '30m' });
    const workers = await startWorkers(config, ['orchestration', 'planning']);
    const client = await temporalClient(config);
    try {
      const old = await put('removed by the workflow');
      const referenced = await put('kept by the workflow');
      await addBlobRef(db, tenant, referenced, { kind: 'ciphertext', id: 'round-1' });
      await age(old, 2 * 3_600_000);
      await age(referenced, 2 * 3_600_000);
      const summary = await client.workflow.execute(blobRetentionWorkflow, {
        workflowId: `blob-retention-${run}`,
        taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
      });
      expect(summary.backends.map((b) => b.backend)).toEqual(['postgres']);
      expect(summary.backends[0]!.blobsRemoved).toBeGreaterThanOrEqual(1);
      expect(await store.head(tenant, old)).toBeUndefined();
      expect(await store.head(tenant, referenced)).toBeDefined();
      expect((await removedEvents()).map((e) => [e.subject, e.actor])).toEqual([[old, 'worker:planning']]);

      const first = await ensureBlobRetentionSchedule(client, config);
      expect(first).toEqual({ scheduleId: `${config.TASK_QUEUE_PREFIX}blob-retention`, created: true });
      const again = await ensureBlobRetentionSchedule(client, { ...config, BLOB_RETENTION_INTERVAL: 3_600_000 });
      expect(again.created).toBe(false);
      const described = await client.schedule.getHandle(first.scheduleId).describe();
      expect(described.spec.intervals?.[0]?.every).toBe(3_600_000);
      expect(described.action).toMatchObject({
        workflowType: 'blobRetentionWorkflow',
        taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
      });
      await client.schedule.getHandle(first.scheduleId).delete();
    } finally {
      await client.connection.close();
      await workers.stop();
    }
  });
});
