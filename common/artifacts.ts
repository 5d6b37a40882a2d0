/**
 * Artifacts: what a task produces and records (specs, diffs, gate logs, verdicts, provenance), content-addressed: the
 * id of one is the SHA-256 of its bytes, per tenant. The bytes live in the blob store (common/blob-store: the
 * process's configured backend); the `artifacts` table keeps each one's media type and size, and a blob reference
 * (owner kind `artifact`) keeps its blob from retention, since the audit trail refers to artifacts for good.
 * Artifacts written before migration 0005 were moved into the PostgreSQL backend; they are read from there whatever
 * backend is configured now.
 */
import type { Readable } from 'node:stream';
import type { Db } from './db.js';
import { addBlobRef, inTransaction } from './blob-store/catalog.js';
import { blobStoreOf, postgresBlobStoreOf } from './blob-store/index.js';
import { BlobNotFoundError } from './blob-store/types.js';

export interface ArtifactRef {
  sha256: string;
  mediaType: string;
  sizeBytes: number;
}

export async function putArtifact(
  db: Db,
  tenantId: string,
  content: string | Buffer,
  mediaType: string,
): Promise<ArtifactRef> {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const { sha256, sizeBytes } = await blobStoreOf(db).put(tenantId, bytes, { mediaType });
  await inTransaction(db, async (client) => {
    await addBlobRef(client, tenantId, sha256, { kind: 'artifact', id: sha256 });
    await client.query(
      `INSERT INTO artifacts (tenant_id, sha256, media_type, size_bytes) VALUES ($1, $2, $3, $4)
       ON CONFLICT (tenant_id, sha256) DO NOTHING`,
      [tenantId, sha256, mediaType, sizeBytes],
    );
  });
  return { sha256, mediaType, sizeBytes };
}

/**
 * The artifact's bytes as a stream, verified as they flow (a corrupted blob fails the stream with BlobIntegrityError),
 * with its media type and size; undefined when the tenant has no such artifact.
 */
export async function openArtifact(
  db: Db,
  tenantId: string,
  sha256: string,
): Promise<(ArtifactRef & { stream: Readable }) | undefined> {
  const { rows } = await db.query<{ sha256: string; media_type: string; size_bytes: number }>(
    'SELECT sha256, media_type, size_bytes FROM artifacts WHERE tenant_id = $1 AND sha256 = $2',
    [tenantId, sha256],
  );
  const r = rows[0];
  if (!r) return undefined;
  const store = blobStoreOf(db);
  let stream: Readable;
  try {
    stream = await store.get(tenantId, r.sha256);
  } catch (err) {
    if (!(err instanceof BlobNotFoundError) || store.backend === 'postgres') throw err;
    stream = await postgresBlobStoreOf(db).get(tenantId, r.sha256);
  }
  return { sha256: r.sha256, mediaType: r.media_type, sizeBytes: r.size_bytes, stream };
}

/**
 * The artifact with its bytes in memory (artifacts are small: specs, diffs, logs); `maxBytes` stops reading after that
 * many (the content is then cut, and sizeBytes still says the whole size). Undefined when there is none.
 */
export async function getArtifact(
  db: Db,
  tenantId: string,
  sha256: string,
  { maxBytes = Infinity }: { maxBytes?: number } = {},
): Promise<(ArtifactRef & { content: Buffer }) | undefined> {
  const artifact = await openArtifact(db, tenantId, sha256);
  if (!artifact) return undefined;
  const { stream, ...ref } = artifact;
  const parts: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      parts.push(chunk);
      length += chunk.length;
      if (length >= maxBytes) break; // leaving the loop destroys the stream
    }
  } finally {
    stream.destroy();
  }
  const content = Buffer.concat(parts, length);
  return { ...ref, content: length > maxBytes ? content.subarray(0, maxBytes) : content };
}
