/**
 * Blob retention: removes the blobs nothing references (no row in blob_refs) once they have been untouched for
 * BLOB_RETENTION_AGE (touched_at: the last put of the content or release of a reference to it), and uploads that never
 * became a blob once idle for an hour (a put that failed or whose process died). Run by blobRetentionWorkflow on the
 * Temporal Schedule `blob-retention` (temporal/schedules.ts), for the configured backend and, when that is not
 * PostgreSQL, for the PostgreSQL backend too (artifacts migrated there, blobs stored before a switch).
 *
 * It finds candidates in the catalog (catalog.ts) and removes them through the BlobStore interface, so it covers both
 * backends. Each blob is decided under its lock: checked again (still old, still unreferenced), recorded in the audit
 * trail as `blob.removed` with an idempotency key of that blob's incarnation, then deleted. A run that dies half-way
 * is repeated by the next one without a second event; a second run over the same state removes nothing.
 */
import type { Db } from '../db.js';
import { appendAuditEvent } from '../audit.js';
import { lockBlob } from './catalog.js';
import type { OrphanUpload, UploadSweeper } from './postgres.js';
import type { BlobBackend, BlobStore } from './types.js';

/** Uploads idle this long are abandoned: no running put waits an hour between chunks. */
export const ORPHAN_UPLOAD_AGE_MS = 60 * 60 * 1000;

export interface SweepOptions {
  /** Remove unreferenced blobs untouched for this long (BLOB_RETENTION_AGE). */
  ageMs: number;
  /** Remove unpublished uploads idle for this long (default one hour). */
  uploadAgeMs?: number;
  /** Only this tenant's blobs and uploads (default: every tenant). */
  tenantId?: string;
  /** Blobs decided per catalog query (default 500); a run continues until none is left. */
  batch?: number;
  /** The audit actor (default `system`). */
  actor?: string;
  /** Called between removals (an activity heartbeats here). */
  progress?: (summary: SweepSummary) => void;
  /** "Now" (tests). */
  now?: Date;
}

export interface SweepSummary {
  backend: BlobBackend;
  blobsRemoved: number;
  bytesRemoved: number;
  uploadsRemoved: number;
  uploadBytesRemoved: number;
  /** Blobs whose removal failed (the run then throws after doing the rest). */
  failed: number;
}

interface Candidate {
  tenant_id: string;
  sha256: string;
  size_bytes: string;
  media_type: string;
  created_at: Date;
  touched_at: Date;
  /** touched_at as PostgreSQL prints it (microseconds; a Date keeps milliseconds), for the keyset. */
  touched_key: string;
}

const CANDIDATES = `
  SELECT b.tenant_id, b.sha256, b.size_bytes, b.media_type, b.created_at, b.touched_at, b.touched_at::text AS touched_key
    FROM blobs b
   WHERE b.backend = $1 AND b.touched_at < $2 AND ($3::text IS NULL OR b.tenant_id = $3)
     AND NOT EXISTS (SELECT 1 FROM blob_refs r WHERE r.tenant_id = b.tenant_id AND r.sha256 = b.sha256)`;

/** One retention pass over one backend's blobs and uploads. Idempotent; every removal is audited. */
export async function sweepBlobs(
  db: Db,
  store: BlobStore & Partial<UploadSweeper>,
  options: SweepOptions,
): Promise<SweepSummary> {
  const { ageMs, uploadAgeMs = ORPHAN_UPLOAD_AGE_MS, tenantId, batch = 500, actor = 'system', progress } = options;
  const now = options.now ?? new Date();
  const cutoff = new Date(now.getTime() - ageMs);
  const summary: SweepSummary = {
    backend: store.backend,
    blobsRemoved: 0,
    bytesRemoved: 0,
    uploadsRemoved: 0,
    uploadBytesRemoved: 0,
    failed: 0,
  };

  // Keyset order (touched_at, tenant, sha256): each blob is decided at most once per run, whatever its outcome.
  let after: [string, string, string] | null = null;
  let lastError: unknown;
  for (;;) {
    const { rows }: { rows: Candidate[] } = await db.query<Candidate>(
      `${CANDIDATES}
         AND ($4::timestamptz IS NULL OR (b.touched_at, b.tenant_id, b.sha256) > ($4::timestamptz, $5, $6))
       ORDER BY b.touched_at, b.tenant_id, b.sha256
       LIMIT $7`,
      [store.backend, cutoff, tenantId ?? null, ...(after ?? [null, null, null]), batch],
    );
    for (const candidate of rows) {
      try {
        if (await removeBlob(db, store, candidate, cutoff, actor)) {
          summary.blobsRemoved += 1;
          summary.bytesRemoved += Number(candidate.size_bytes);
        }
      } catch (err) {
        summary.failed += 1;
        lastError = err;
      }
      progress?.(summary);
    }
    const last = rows.at(-1);
    if (!last || rows.length < batch) break;
    after = [last.touched_key, last.tenant_id, last.sha256];
  }
  if (store.orphanUploads && store.removeUpload) {
    const idleSince = new Date(now.getTime() - uploadAgeMs);
    for (;;) {
      const orphans = (await store.orphanUploads(idleSince, batch)).filter(
        (o) => tenantId === undefined || o.tenantId === tenantId,
      );
      let removed = 0;
      for (const orphan of orphans) {
        if (!(await store.removeUpload(orphan.uploadId, idleSince))) continue;
        removed += 1;
        summary.uploadsRemoved += 1;
        summary.uploadBytesRemoved += orphan.bytes;
        await auditUpload(db, store.backend, orphan, actor);
        progress?.(summary);
      }
      if (removed === 0) break;
    }
  }
  if (lastError !== undefined) {
    // The others are removed; this run fails so that the schedule's next run (or the activity's retry) tries again.
    throw new Error(
      `blob retention (${store.backend}): ${summary.failed} blob(s) could not be removed (${summary.blobsRemoved} were): ${(lastError as Error).message}`,
      { cause: lastError },
    );
  }
  return summary;
}

/**
 * Decides one blob under its lock (a concurrent put of the same content or a new reference waits for the decision):
 * still old enough and unreferenced? Then audit, then delete. False when it no longer qualifies.
 */
async function removeBlob(
  db: Db,
  store: BlobStore,
  candidate: Candidate,
  cutoff: Date,
  actor: string,
): Promise<boolean> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    await lockBlob(client, candidate.tenant_id, candidate.sha256);
    const again = await client.query<Candidate>(`${CANDIDATES} AND b.sha256 = $4`, [
      store.backend,
      cutoff,
      candidate.tenant_id,
      candidate.sha256,
    ]);
    const blob = again.rows[0];
    if (!blob) {
      await client.query('COMMIT');
      return false;
    }
    await appendAuditEvent(db, {
      tenantId: blob.tenant_id,
      actor,
      action: 'blob.removed',
      subject: blob.sha256,
      // The same blob (this content, stored at this time) is recorded once, however often a run is repeated.
      idempotencyKey: `blob.removed:${store.backend}:${blob.tenant_id}:${blob.sha256}:${blob.created_at.toISOString()}`,
      payload: {
        sha256: blob.sha256,
        sizeBytes: Number(blob.size_bytes),
        mediaType: blob.media_type,
        backend: store.backend,
        createdAt: blob.created_at.toISOString(),
        untouchedSince: blob.touched_at.toISOString(),
        reason: 'unreferenced',
      },
    });
    // The backend's delete takes no blob lock (catalog.ts), so holding it here cannot deadlock.
    await store.delete(blob.tenant_id, blob.sha256);
    await client.query('COMMIT');
    return true;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

async function auditUpload(db: Db, backend: BlobBackend, orphan: OrphanUpload, actor: string): Promise<void> {
  await appendAuditEvent(db, {
    tenantId: orphan.tenantId,
    actor,
    action: 'blob.upload_removed',
    subject: orphan.uploadId,
    idempotencyKey: `blob.upload_removed:${backend}:${orphan.uploadId}`,
    payload: {
      uploadId: orphan.uploadId,
      backend,
      chunks: orphan.chunks,
      bytes: orphan.bytes,
      startedAt: orphan.startedAt.toISOString(),
      idleSince: orphan.activeAt.toISOString(),
      reason: 'abandoned',
    },
  });
}
