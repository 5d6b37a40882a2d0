/**
 * The blob store: large binary objects (workspace bundles and checkpoints, CKKS ciphertexts, ONNX models) that travel
 * through Temporal only by reference. Content-addressed by SHA-256 and scoped to a tenant; streamed in and out, so a
 * blob never sits whole in a process's memory. Two backends: PostgreSQL (chunked rows, the embedded default) and
 * S3-compatible object storage (multipart), chosen by configuration (BLOB_BACKEND).
 */
import type { Readable } from 'node:stream';

export type BlobBackend = 'postgres' | 's3';

/** What travels through Temporal and the API in place of the bytes. */
export interface BlobRef {
  tenantId: string;
  sha256: string;
  sizeBytes: number;
}

export interface BlobHead extends BlobRef {
  mediaType: string;
  backend: BlobBackend;
  createdAt: Date;
}

export interface PutOptions {
  /** Stored with the blob (default application/octet-stream). */
  mediaType?: string;
  /** When the caller knows the digest: the put fails (BlobIntegrityError) if the bytes do not match it. */
  expectedSha256?: string;
}

export interface BlobStore {
  readonly backend: BlobBackend;
  /**
   * Stores the bytes and returns their reference. Idempotent: the same content twice is one blob. A put that fails
   * or is killed half-way leaves nothing visible: head/get see a blob only once all its bytes are stored.
   */
  put(tenantId: string, body: Readable | Uint8Array, opts?: PutOptions): Promise<BlobRef>;
  /**
   * The bytes as a stream, verified against the digest as they flow: a corrupted chunk or object makes the stream
   * fail with BlobIntegrityError (never wrong bytes at the end). Another tenant's blob, or none: BlobNotFoundError.
   */
  get(tenantId: string, sha256: string): Promise<Readable>;
  head(tenantId: string, sha256: string): Promise<BlobHead | undefined>;
  /** Removes the blob; true if it existed. Idempotent. */
  delete(tenantId: string, sha256: string): Promise<boolean>;
}

export class BlobNotFoundError extends Error {
  override name = 'BlobNotFoundError';
}

export class BlobIntegrityError extends Error {
  override name = 'BlobIntegrityError';
}
