/**
 * Federation's bytes in the blob store: model parameters, updates, ciphertexts and sums travel through Temporal only
 * as BlobRefs (a 7,850-parameter update is 31 KB, one CKKS ciphertext of degree 8192 about 256 KB; payloads fail at
 * 2 MB). Models are referenced (blob_refs) by their campaign so retention keeps them; updates and ciphertexts are not,
 * so retention removes them once BLOB_RETENTION_AGE has passed.
 */
import { addBlobRef, blobStoreOf, type BlobRef } from '../../common/blob-store/index.js';
import type { Db } from '../../common/db.js';

export async function putBytes(db: Db, tenantId: string, bytes: Uint8Array, mediaType: string): Promise<BlobRef> {
  return blobStoreOf(db).put(tenantId, bytes, { mediaType });
}

export async function getBytes(db: Db, ref: Pick<BlobRef, 'tenantId' | 'sha256'>): Promise<Buffer> {
  const stream = await blobStoreOf(db).get(ref.tenantId, ref.sha256);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A float vector as little-endian float32 (parameters and plaintext updates) or float64 (sums, before rounding). */
export async function putFloats(db: Db, tenantId: string, v: Float32Array | Float64Array): Promise<BlobRef> {
  const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  const kind = v instanceof Float64Array ? 'float64' : 'float32';
  return putBytes(db, tenantId, bytes, `application/x-agency-${kind}`);
}

export async function getFloat32(db: Db, ref: Pick<BlobRef, 'tenantId' | 'sha256'>): Promise<Float32Array> {
  const buf = await getBytes(db, ref);
  if (buf.byteLength % 4) throw new Error(`blob ${ref.sha256} is not a float32 vector (${buf.byteLength} bytes)`);
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

export async function getFloat64(db: Db, ref: Pick<BlobRef, 'tenantId' | 'sha256'>): Promise<Float64Array> {
  const buf = await getBytes(db, ref);
  if (buf.byteLength % 8) throw new Error(`blob ${ref.sha256} is not a float64 vector (${buf.byteLength} bytes)`);
  return new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/** Keeps a campaign's model blobs through retention. */
export async function keepForCampaign(db: Db, ref: BlobRef, campaignId: string): Promise<void> {
  await addBlobRef(db, ref.tenantId, ref.sha256, { kind: 'federation-model', id: campaignId });
}
