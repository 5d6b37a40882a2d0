/**
 * The blob catalog in PostgreSQL (migrations/0005_blob_store.sql), shared by both backends: which blobs exist
 * (`blobs`: backend, tenant, sha256, size, media type, touched_at), and what still needs them (`blob_refs`).
 * Retention (retention.ts) and the stored-bytes metric read it; the PostgreSQL backend publishes into it, and the
 * factory (index.ts) records the S3 backend's puts and deletes in it.
 *
 * One lock per blob (a transaction-level advisory lock on its tenant and digest) orders the three writers that could
 * otherwise race: a put that finds the content already stored (it moves touched_at forward), a new reference, and
 * retention, which holds the lock from its last check ("old enough, unreferenced") until the blob is gone. A put or
 * reference that comes second sees either a fresh touched_at (retention skips the blob) or no blob (the put stores
 * it again; the reference fails with BlobNotFoundError). A backend's delete() itself takes no lock.
 */
import type { PoolClient } from 'pg';
import type { Db } from '../db.js';
import { BlobNotFoundError, type BlobBackend } from './types.js';

export const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Takes the blob's lock until the end of the client's transaction. */
export async function lockBlob(client: PoolClient, tenantId: string, sha256: string): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`blob:${tenantId}/${sha256}`]);
}

/** Runs fn in a transaction on one pooled connection. */
export async function inTransaction<T>(db: Db, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Records a blob of a backend that keeps its bytes elsewhere (S3) in the catalog, or moves touched_at forward when it
 * is there already. Under the blob's lock, so a retention run deciding about the same blob goes first or after;
 * `stillStored` (asked under the lock) fails the record when that run removed the bytes meanwhile.
 */
export async function recordBlob(
  db: Db,
  blob: { backend: BlobBackend; tenantId: string; sha256: string; sizeBytes: number; mediaType: string },
  stillStored?: () => Promise<boolean>,
): Promise<void> {
  await inTransaction(db, async (client) => {
    await lockBlob(client, blob.tenantId, blob.sha256);
    if (stillStored && !(await stillStored())) {
      throw new Error(`blob ${blob.sha256} was removed by retention while it was put again; put it once more`);
    }
    await client.query(
      `INSERT INTO blobs (backend, tenant_id, sha256, size_bytes, media_type) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (backend, tenant_id, sha256) DO UPDATE SET touched_at = now()`,
      [blob.backend, blob.tenantId, blob.sha256, blob.sizeBytes, blob.mediaType],
    );
  });
}

/** Moves a catalogued blob's touched_at forward (under its lock) before a put of content that may be stored. */
export async function touchBlob(db: Db, backend: BlobBackend, tenantId: string, sha256: string): Promise<void> {
  await inTransaction(db, async (client) => {
    await lockBlob(client, tenantId, sha256);
    await client.query('UPDATE blobs SET touched_at = now() WHERE backend = $1 AND tenant_id = $2 AND sha256 = $3', [
      backend,
      tenantId,
      sha256,
    ]);
  });
}

/** Removes a blob's catalog row (a backend without its own catalog, after its delete). */
export async function forgetBlob(db: Db, backend: BlobBackend, tenantId: string, sha256: string): Promise<void> {
  await db.query('DELETE FROM blobs WHERE backend = $1 AND tenant_id = $2 AND sha256 = $3', [
    backend,
    tenantId,
    sha256,
  ]);
}

// ---- references ----------------------------------------------------------------------------------------------------

export interface BlobOwner {
  /** What holds the blob: artifact, checkpoint, ciphertext, model … (lower-case, at most 64 characters). */
  kind: string;
  /** Which one: a task's workflow id, a federation round's id, an artifact's sha256 (at most 256 characters). */
  id: string;
}

/**
 * Marks the blob as needed by `owner`, so retention keeps it (idempotent). The blob must be in the catalog (any
 * backend): a reference to content that is not stored fails with BlobNotFoundError. Put first, then reference.
 * With a client, runs inside the caller's transaction.
 */
export async function addBlobRef(
  db: Db | PoolClient,
  tenantId: string,
  sha256: string,
  owner: BlobOwner,
): Promise<void> {
  const run = async (client: PoolClient): Promise<void> => {
    await lockBlob(client, tenantId, sha256);
    const stored = await client.query('SELECT 1 FROM blobs WHERE tenant_id = $1 AND sha256 = $2 LIMIT 1', [
      tenantId,
      sha256,
    ]);
    if (!stored.rowCount) throw new BlobNotFoundError(`no blob ${sha256} of tenant ${tenantId} to refer to`);
    await client.query(
      `INSERT INTO blob_refs (tenant_id, sha256, owner_kind, owner_id) VALUES ($1, $2, $3, $4)
       ON CONFLICT DO NOTHING`,
      [tenantId, sha256, owner.kind, owner.id],
    );
  };
  return isPool(db) ? inTransaction(db, run) : run(db);
}

/**
 * Drops every reference `owner` holds (a finished task's checkpoints, a closed round's ciphertexts), and moves the
 * released blobs' touched_at forward: BLOB_RETENTION_AGE counts from now. Returns the digests released.
 */
export async function releaseBlobRefs(db: Db, tenantId: string, owner: BlobOwner): Promise<string[]> {
  return inTransaction(db, async (client) => {
    const { rows } = await client.query<{ sha256: string }>(
      'DELETE FROM blob_refs WHERE tenant_id = $1 AND owner_kind = $2 AND owner_id = $3 RETURNING sha256',
      [tenantId, owner.kind, owner.id],
    );
    const released = rows.map((r) => r.sha256);
    if (released.length) {
      await client.query('UPDATE blobs SET touched_at = now() WHERE tenant_id = $1 AND sha256 = ANY($2::text[])', [
        tenantId,
        released,
      ]);
    }
    return released;
  });
}

// ---- metrics ---------------------------------------------------------------------------------------------------------

/** Bytes of published blobs per tenant and backend (the agent_agency_blob_stored_bytes gauge, read on scrape). */
export async function storedBytes(db: Db): Promise<{ tenant: string; backend: string; bytes: number }[]> {
  const { rows } = await db.query<{ tenant_id: string; backend: string; bytes: string }>(
    'SELECT tenant_id, backend, sum(size_bytes)::text AS bytes FROM blobs GROUP BY tenant_id, backend',
  );
  return rows.map((r) => ({ tenant: r.tenant_id, backend: r.backend, bytes: Number(r.bytes) }));
}

function isPool(db: Db | PoolClient): db is Db {
  return typeof (db as Partial<Db>).connect === 'function' && 'totalCount' in db;
}
