/**
 * The PostgreSQL backend of the blob store, the embedded default: a blob's bytes are rows of `blob_chunks` (one per
 * BLOB_CHUNK_BYTES, 1 MiB by default), each with its own SHA-256; the blob is a row of the catalog `blobs`
 * (migrations/0005_blob_store.sql).
 *
 * put: the body is cut into chunks as it streams in and each chunk is inserted under a new upload id while the whole
 * digest is computed; at most two chunks are in memory (one being written, one being filled). Then one short
 * transaction publishes the upload as the blob, or, when the content is stored already, only moves its touched_at
 * forward and the new upload is dropped. Until then nothing is visible; a put that dies leaves an unpublished upload,
 * swept by retention once idle for an hour (sweepUploads).
 *
 * get: one chunk per query, by primary key, as the consumer reads; each chunk is checked against its digest before it
 * is handed out, and the last one only after the whole digest and size match. A mismatch fails the stream with
 * BlobIntegrityError, so a consumer never receives a wrong chunk nor the complete bytes of a corrupted blob.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Connection, Submittable } from 'pg';
import type { Db } from '../db.js';
import { inTransaction, lockBlob, SHA256_HEX } from './catalog.js';
import {
  BlobIntegrityError,
  BlobNotFoundError,
  type BlobHead,
  type BlobRef,
  type BlobStore,
  type PutOptions,
} from './types.js';

export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
const DEFAULT_MEDIA_TYPE = 'application/octet-stream';
/** How often a running upload moves its active_at forward (so a slow one is never taken for an orphan). */
const ACTIVE_EVERY_MS = 60_000;

/** An upload that never became a blob (its put failed or its process died), as retention finds it. */
export interface OrphanUpload {
  uploadId: string;
  tenantId: string;
  startedAt: Date;
  activeAt: Date;
  chunks: number;
  bytes: number;
}

/** A backend whose puts can leave incomplete uploads behind (retention.ts sweeps them). */
export interface UploadSweeper {
  /** Unpublished uploads idle since before `idleSince`, oldest first. */
  orphanUploads(idleSince: Date, limit: number): Promise<OrphanUpload[]>;
  /** Removes the upload and its bytes if it is still unpublished and idle since before `idleSince`. */
  removeUpload(uploadId: string, idleSince: Date): Promise<boolean>;
}

export interface PostgresBlobStoreOptions {
  /** Bytes per chunk row (default 1 MiB, BLOB_CHUNK_BYTES). Reads follow whatever size a blob was written with. */
  chunkBytes?: number;
}

interface BlobRow {
  size_bytes: string;
  media_type: string;
  upload_id: string;
  chunk_count: number;
  created_at: Date;
}

export class PostgresBlobStore implements BlobStore, UploadSweeper {
  readonly backend = 'postgres' as const;
  readonly chunkBytes: number;

  constructor(
    private readonly db: Db,
    { chunkBytes = DEFAULT_CHUNK_BYTES }: PostgresBlobStoreOptions = {},
  ) {
    if (!Number.isInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`chunkBytes must be a positive integer`);
    this.chunkBytes = chunkBytes;
  }

  async put(tenantId: string, body: Readable | Uint8Array, opts: PutOptions = {}): Promise<BlobRef> {
    if (opts.expectedSha256 !== undefined && !SHA256_HEX.test(opts.expectedSha256)) {
      throw new TypeError('expectedSha256 must be 64 lower-case hex digits');
    }
    const uploadId = randomUUID();
    await this.db.query('INSERT INTO blob_uploads (id, tenant_id) VALUES ($1, $2)', [uploadId, tenantId]);
    let published = false;
    try {
      const { sha256, sizeBytes, chunkCount } = await this.writeChunks(uploadId, body);
      if (opts.expectedSha256 !== undefined && opts.expectedSha256 !== sha256) {
        throw new BlobIntegrityError(`the bytes have SHA-256 ${sha256}, not the expected ${opts.expectedSha256}`);
      }
      const mediaType = opts.mediaType ?? DEFAULT_MEDIA_TYPE;
      published = await inTransaction(this.db, async (client) => {
        await lockBlob(client, tenantId, sha256);
        const { rows } = await client.query<{ upload_id: string }>(
          `INSERT INTO blobs (backend, tenant_id, sha256, size_bytes, media_type, upload_id, chunk_count)
           VALUES ('postgres', $1, $2, $3, $4, $5, $6)
           ON CONFLICT (backend, tenant_id, sha256) DO UPDATE SET touched_at = now()
           RETURNING upload_id`,
          [tenantId, sha256, sizeBytes, mediaType, uploadId, chunkCount],
        );
        if (rows[0]?.upload_id !== uploadId) return false;
        // Swept meanwhile (idle for an hour mid-put): its chunks are gone, so it must not become the blob.
        const upload = await client.query(
          'UPDATE blob_uploads SET published_at = now() WHERE id = $1 AND published_at IS NULL',
          [uploadId],
        );
        if (upload.rowCount !== 1) throw new Error(`upload ${uploadId} expired before it was published`);
        return true;
      });
      return { tenantId, sha256, sizeBytes };
    } finally {
      // The same content was stored already (or the put failed): this upload's chunks are not needed.
      if (!published) await this.db.query('DELETE FROM blob_uploads WHERE id = $1', [uploadId]).catch(() => undefined);
    }
  }

  /** Streams the body into chunk rows under the upload; one insert in flight while the next chunk fills. */
  private async writeChunks(
    uploadId: string,
    body: Readable | Uint8Array,
  ): Promise<{ sha256: string; sizeBytes: number; chunkCount: number }> {
    const whole = createHash('sha256');
    let sizeBytes = 0;
    let seq = 0;
    let inFlight: Promise<unknown> = Promise.resolve();
    let activeAt = Date.now();
    const write = async (chunk: Buffer): Promise<void> => {
      whole.update(chunk);
      sizeBytes += chunk.length;
      const n = seq++;
      const digest = createHash('sha256').update(chunk).digest('hex');
      await inFlight; // the previous insert first: its failure stops this put
      inFlight = this.db.query('INSERT INTO blob_chunks (upload_id, seq, sha256, data) VALUES ($1, $2, $3, $4)', [
        uploadId,
        n,
        digest,
        chunk,
      ]);
      // A rejected insert is awaited (and thrown) by the next write or at the end; never left unhandled meanwhile.
      void inFlight.catch(() => undefined);
      if (Date.now() - activeAt > ACTIVE_EVERY_MS) {
        activeAt = Date.now();
        await this.db.query('UPDATE blob_uploads SET active_at = now() WHERE id = $1', [uploadId]);
      }
    };
    for await (const chunk of chunksOf(body, this.chunkBytes)) await write(chunk);
    await inFlight;
    return { sha256: whole.digest('hex'), sizeBytes, chunkCount: seq };
  }

  async get(tenantId: string, sha256: string): Promise<Readable> {
    const blob = await this.row(tenantId, sha256);
    if (!blob) throw new BlobNotFoundError(`no blob ${sha256}`);
    return Readable.from(this.readChunks(tenantId, sha256, blob), { objectMode: false, highWaterMark: 1 });
  }

  private async *readChunks(tenantId: string, sha256: string, blob: BlobRow): AsyncGenerator<Buffer> {
    const whole = createHash('sha256');
    const expectedSize = Number(blob.size_bytes);
    let size = 0;
    const fail = (what: string): BlobIntegrityError => new BlobIntegrityError(`blob ${sha256}: ${what}`);
    for (let seq = 0; seq < blob.chunk_count; seq++) {
      const chunk = await readChunk(this.db, blob.upload_id, seq);
      if (!chunk) {
        const now = await this.row(tenantId, sha256);
        if (now?.upload_id !== blob.upload_id) throw new BlobNotFoundError(`blob ${sha256} was removed while read`);
        throw fail(`chunk ${seq} of ${blob.chunk_count} is missing`);
      }
      if (createHash('sha256').update(chunk.data).digest('hex') !== chunk.sha256) {
        throw fail(`chunk ${seq} does not match its digest`);
      }
      whole.update(chunk.data);
      size += chunk.data.length;
      if (seq === blob.chunk_count - 1) verifyWhole();
      yield chunk.data;
    }
    if (blob.chunk_count === 0) verifyWhole();

    function verifyWhole(): void {
      if (size !== expectedSize) throw fail(`${size} bytes stored, ${expectedSize} expected`);
      const digest = whole.digest('hex');
      if (digest !== sha256) throw fail(`the stored bytes have SHA-256 ${digest}`);
    }
  }

  async head(tenantId: string, sha256: string): Promise<BlobHead | undefined> {
    const blob = await this.row(tenantId, sha256);
    return (
      blob && {
        tenantId,
        sha256,
        sizeBytes: Number(blob.size_bytes),
        mediaType: blob.media_type,
        backend: this.backend,
        createdAt: blob.created_at,
      }
    );
  }

  async delete(tenantId: string, sha256: string): Promise<boolean> {
    if (!SHA256_HEX.test(sha256)) return false;
    return inTransaction(this.db, async (client) => {
      const { rows } = await client.query<{ upload_id: string }>(
        `DELETE FROM blobs WHERE backend = 'postgres' AND tenant_id = $1 AND sha256 = $2 RETURNING upload_id`,
        [tenantId, sha256],
      );
      if (!rows[0]) return false;
      await client.query('DELETE FROM blob_uploads WHERE id = $1', [rows[0].upload_id]); // its chunks cascade
      return true;
    });
  }

  async orphanUploads(idleSince: Date, limit: number): Promise<OrphanUpload[]> {
    const { rows } = await this.db.query<{
      id: string;
      tenant_id: string;
      started_at: Date;
      active_at: Date;
      chunks: number;
      bytes: string;
    }>(
      `SELECT u.id, u.tenant_id, u.started_at, u.active_at,
              (SELECT count(*)::int FROM blob_chunks c WHERE c.upload_id = u.id) AS chunks,
              (SELECT COALESCE(sum(octet_length(c.data)), 0)::text FROM blob_chunks c WHERE c.upload_id = u.id) AS bytes
         FROM blob_uploads u
        WHERE u.published_at IS NULL AND u.active_at < $1
        ORDER BY u.active_at
        LIMIT $2`,
      [idleSince, limit],
    );
    return rows.map((r) => ({
      uploadId: r.id,
      tenantId: r.tenant_id,
      startedAt: r.started_at,
      activeAt: r.active_at,
      chunks: r.chunks,
      bytes: Number(r.bytes),
    }));
  }

  async removeUpload(uploadId: string, idleSince: Date): Promise<boolean> {
    const { rowCount } = await this.db.query(
      'DELETE FROM blob_uploads WHERE id = $1 AND published_at IS NULL AND active_at < $2',
      [uploadId, idleSince],
    );
    return rowCount === 1;
  }

  private async row(tenantId: string, sha256: string): Promise<BlobRow | undefined> {
    if (!SHA256_HEX.test(sha256)) return undefined;
    const { rows } = await this.db.query<BlobRow>(
      `SELECT size_bytes, media_type, upload_id, chunk_count, created_at
         FROM blobs WHERE backend = 'postgres' AND tenant_id = $1 AND sha256 = $2`,
      [tenantId, sha256],
    );
    return rows[0];
  }
}

/** Bytes per COPY row when a chunk is read: one network message each, so no read buffer grows to a chunk's size. */
const READ_SLICE = 64 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * One chunk, by COPY … TO STDOUT (FORMAT binary) in slices of READ_SLICE bytes (substring of an uncompressed,
 * out-of-line value reads only the slice's TOAST rows), copied straight into one buffer of the chunk's size. A plain
 * SELECT would bring the chunk as hex text in one message (pg reads every result field as a string): some seven times
 * its size in short-lived buffers and strings, which is what the process's memory shows while a 200 MB blob streams.
 */
async function readChunk(db: Db, uploadId: string, seq: number): Promise<{ sha256: string; data: Buffer } | undefined> {
  if (!UUID.test(uploadId) || !Number.isInteger(seq)) throw new TypeError('not a chunk key');
  const client = await db.connect();
  let broken: Error | undefined;
  try {
    return await new Promise<{ sha256: string; data: Buffer } | undefined>((resolve, reject) => {
      client.query(
        new ChunkCopy(
          `COPY (SELECT c.sha256, octet_length(c.data), substring(c.data FROM s.n * ${READ_SLICE} + 1 FOR ${READ_SLICE})
                   FROM blob_chunks c
                  CROSS JOIN LATERAL generate_series(0, (octet_length(c.data) - 1) / ${READ_SLICE}) AS s(n)
                  WHERE c.upload_id = '${uploadId}' AND c.seq = ${seq}
                  ORDER BY s.n) TO STDOUT (FORMAT binary)`,
          (err, chunk) => {
            if (err && !('severity' in err)) broken = err; // not the server's error: a protocol surprise
            if (err) reject(err);
            else resolve(chunk);
          },
        ),
      );
    });
  } finally {
    client.release(broken); // a connection that surprised us is not reused
  }
}

const COPY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * The COPY of one chunk's slices as a pg Submittable (the interface pg-cursor and pg-copy-streams use). Each CopyData
 * message is one row (sha256, chunk length, slice) of the binary COPY format; the first also carries the header.
 */
class ChunkCopy implements Submittable {
  private data: Buffer | undefined;
  private sha256 = '';
  private filled = 0;
  private header = false;
  private failure: Error | undefined;
  private settled = false;

  constructor(
    private readonly text: string,
    private readonly done: (err: Error | undefined, chunk?: { sha256: string; data: Buffer }) => void,
  ) {}

  submit(connection: Connection): void {
    connection.query(this.text);
  }
  handleCopyData(msg: { chunk: Buffer }): void {
    // msg.chunk is a view of the connection's read buffer, reused for later messages: its bytes are copied now.
    try {
      if (!this.failure) this.take(msg.chunk);
    } catch (err) {
      this.failure = new Error(`unexpected binary COPY data: ${(err as Error).message}`);
    }
  }
  handleReadyForQuery(): void {
    if (this.failure) return this.settle(this.failure);
    if (!this.data) return this.settle(undefined); // no such chunk
    if (this.filled !== this.data.length) {
      return this.settle(new Error(`chunk read short: ${this.filled} of ${this.data.length} bytes`));
    }
    this.settle(undefined, { sha256: this.sha256, data: this.data });
  }
  handleError(err: Error): void {
    this.settle(err);
  }
  handleCopyInResponse(connection: Connection & { sendCopyFail(message: string): void }): void {
    connection.sendCopyFail('not a COPY FROM');
  }
  handleCommandComplete(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handlePortalSuspended(): void {}
  handleEmptyQuery(): void {}

  private take(buf: Buffer): void {
    let at = 0;
    if (!this.header) {
      if (!buf.subarray(0, 11).equals(COPY_SIGNATURE)) throw new Error('no binary COPY signature');
      at = 19 + buf.readUInt32BE(15); // flags, then the header extension's length and bytes
      this.header = true;
    }
    while (at < buf.length) {
      const fields = buf.readInt16BE(at);
      at += 2;
      if (fields === -1) return; // the trailer
      if (fields !== 3) throw new Error(`a row of ${fields} fields`);
      const field = (): [number, number] => {
        const length = buf.readInt32BE(at);
        if (length < 0 || at + 4 + length > buf.length) throw new Error('a field beyond its message');
        at += 4 + length;
        return [at - length, length];
      };
      const [shaAt, shaLength] = field();
      const [, four] = field();
      const total = four === 4 ? buf.readInt32BE(at - 4) : -1;
      const [sliceAt, sliceLength] = field();
      if (!this.data) {
        if (total < 0) throw new Error('no chunk length');
        this.data = Buffer.allocUnsafe(total);
        this.sha256 = buf.toString('utf8', shaAt, shaAt + shaLength);
      }
      if (this.filled + sliceLength > this.data.length) throw new Error('more bytes than the chunk has');
      buf.copy(this.data, this.filled, sliceAt, sliceAt + sliceLength);
      this.filled += sliceLength;
    }
  }

  private settle(err: Error | undefined, chunk?: { sha256: string; data: Buffer }): void {
    if (this.settled) return;
    this.settled = true;
    this.done(err, chunk);
  }
}

export function createPostgresBlobStore(db: Db, options?: PostgresBlobStoreOptions): PostgresBlobStore {
  return new PostgresBlobStore(db, options);
}

/**
 * The body in pieces of exactly `size` bytes (the last one shorter; none for an empty body). A Uint8Array is sliced
 * without copying; a stream's pieces are gathered, so at most one chunk of it is held here.
 */
export async function* chunksOf(body: Readable | Uint8Array, size: number): AsyncGenerator<Buffer> {
  if (body instanceof Uint8Array) {
    const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
    return;
  }
  let parts: Buffer[] = [];
  let held = 0;
  for await (const piece of body as AsyncIterable<Buffer | string>) {
    let buf = typeof piece === 'string' ? Buffer.from(piece) : piece;
    while (held + buf.length >= size) {
      const take = size - held;
      parts.push(buf.subarray(0, take));
      yield Buffer.concat(parts, size);
      parts = [];
      held = 0;
      buf = buf.subarray(take);
    }
    if (buf.length) {
      parts.push(buf);
      held += buf.length;
    }
  }
  if (held) yield Buffer.concat(parts, held);
}
