/** Content-addressed artifact store in PostgreSQL: the id of a blob is the SHA-256 of its bytes. */
import type { Db } from './db.js';
import { sha256Hex } from './hash.js';

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
  const sha256 = sha256Hex(bytes);
  await db.query(
    `INSERT INTO artifacts (tenant_id, sha256, media_type, size_bytes, content) VALUES ($1,$2,$3,$4,$5)
     ON CONFLICT (tenant_id, sha256) DO NOTHING`,
    [tenantId, sha256, mediaType, bytes.length, bytes],
  );
  return { sha256, mediaType, sizeBytes: bytes.length };
}

export async function getArtifact(
  db: Db,
  tenantId: string,
  sha256: string,
): Promise<(ArtifactRef & { content: Buffer }) | undefined> {
  const { rows } = await db.query<{ sha256: string; media_type: string; size_bytes: number; content: Buffer }>(
    'SELECT sha256, media_type, size_bytes, content FROM artifacts WHERE tenant_id = $1 AND sha256 = $2',
    [tenantId, sha256],
  );
  const r = rows[0];
  return r && { sha256: r.sha256, mediaType: r.media_type, sizeBytes: r.size_bytes, content: r.content };
}
