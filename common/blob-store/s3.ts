/**
 * The S3-compatible backend of the blob store (BLOB_BACKEND=s3): one object per blob under
 * `tenants/<tenant>/sha256/<hash>`, uploaded with @aws-sdk/lib-storage (multipart above one part).
 *
 * put: the digest is not known before the last byte, and S3 has no rename, so a streamed body goes to a temporary key
 *   (`tmp/<tenant>/<uuid>`) while it is hashed, is then published under its content key by a server-side CopyObject
 *   (skipped when a HEAD finds the key; conditional, If-None-Match: *, so AWS never rewrites an existing content key;
 *   versitygw ignores that header on copies, so two racing puts there may both copy, atomically, the same bytes) and
 *   the temporary key is deleted. The copy costs the server a second write, but no second upload from this process
 *   and no local spool file. When the digest is known before the upload (a buffer, or `expectedSha256`), the bytes
 *   go straight to the content key instead (no copy): a multipart upload is invisible until CompleteMultipartUpload,
 *   and the hashing stream fails before the last part is handed to the uploader if the digest does not match, so
 *   nothing is completed. Either way a put killed half-way leaves nothing under a content key; what it leaves (a
 *   temporary object or an incomplete multipart upload) is listed by orphanUploads() and removed by removeUpload(),
 *   which retention (retention.ts) calls.
 * get: one GetObject, hashed while it streams; the newest chunk is held back until the digest is checked, so a
 *   corrupted object fails the stream with BlobIntegrityError before its last bytes reach the consumer.
 * Tenants are a key prefix: another tenant's digest is a different key, so it is BlobNotFoundError.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  S3Client,
  UploadPartCopyCommand,
  type BucketLocationConstraint,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { s3Credentials, type Config } from '../config.js';
import type { Db } from '../db.js';
import type { OrphanUpload, UploadSweeper } from './postgres.js';
import {
  BlobIntegrityError,
  BlobNotFoundError,
  type BlobHead,
  type BlobRef,
  type BlobStore,
  type PutOptions,
} from './types.js';

const TENANT = /^[a-z0-9][a-z0-9-]{0,62}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const DEFAULT_MEDIA_TYPE = 'application/octet-stream';
const MiB = 1024 * 1024;
/** CopyObject's limit on AWS (5 GiB); above it the copy is a multipart UploadPartCopy. */
const MAX_SINGLE_COPY = 5 * 1024 * MiB;

export interface S3BlobStoreOptions {
  /** e.g. http://127.0.0.1:7070; unset: AWS S3 itself. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Path-style URLs (http://host/bucket/key): what most S3-compatible servers need. */
  forcePathStyle?: boolean;
  /** Unset: the SDK's default chain (AWS_ACCESS_KEY_ID…, a profile, an instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Bytes per multipart part (default 5 MiB, S3's minimum: the least memory per put). */
  partSizeBytes?: number;
  /**
   * Parts uploaded at once (default 2). A put holds about (queueSize + 1) × partSizeBytes, plus what the GC has not
   * collected yet. Measured on a 200 MiB put (compiled, local versitygw): peak RSS grew by about 84 MiB with 8 MiB
   * parts and 2 in flight, 110-125 MiB with 4 in flight (and no faster), 57 MiB with 5 MiB parts.
   */
  queueSize?: number;
  /** Create the bucket on first use when it does not exist (default true). */
  createBucket?: boolean;
  /** Above this size the publishing copy is a multipart UploadPartCopy (default 5 GiB, CopyObject's limit). */
  multipartCopyThresholdBytes?: number;
  /** Bytes per UploadPartCopy part (default 512 MiB). */
  copyPartSizeBytes?: number;
}

export interface S3BlobStore extends BlobStore, UploadSweeper {
  readonly backend: 's3';
  readonly bucket: string;
  /** The S3 key of a blob (tests and operators; tenants and digests are validated). */
  keyOf(tenantId: string, sha256: string): string;
  /**
   * Removes what interrupted puts left behind, idle for longer than `olderThanMs`: temporary objects and incomplete
   * multipart uploads (orphanUploads + removeUpload, which retention.ts calls). Never touches a published blob.
   */
  sweepIncomplete(olderThanMs: number): Promise<number>;
  close(): void;
}

/** The configuration keys (common/config.ts) that reach the S3 backend. */
export type S3BlobConfig = Pick<
  Config,
  | 'S3_ENDPOINT'
  | 'S3_REGION'
  | 'S3_BUCKET'
  | 'S3_FORCE_PATH_STYLE'
  | 'S3_ACCESS_KEY_ID_REF'
  | 'S3_SECRET_ACCESS_KEY_REF'
> &
  Partial<Pick<Config, 'S3_PART_BYTES'>>;

/**
 * The S3 backend from the platform's configuration (BLOB_BACKEND=s3). The credentials are read from the environment
 * variables S3_ACCESS_KEY_ID_REF and S3_SECRET_ACCESS_KEY_REF name (s3Credentials); neither set: the SDK's default
 * chain. The database is not used here: the factory (index.ts) records the S3 backend's blobs in the catalog.
 */
export function createS3BlobStore(config: S3BlobConfig, _db?: Db, env: NodeJS.ProcessEnv = process.env): S3BlobStore {
  if (!config.S3_BUCKET) throw new Error('S3_BUCKET is required when BLOB_BACKEND is s3');
  return s3BlobStore({
    endpoint: config.S3_ENDPOINT || undefined,
    region: config.S3_REGION,
    bucket: config.S3_BUCKET,
    forcePathStyle: config.S3_FORCE_PATH_STYLE,
    credentials: s3Credentials(config, env),
    partSizeBytes: config.S3_PART_BYTES,
  });
}

interface S3ErrorShape {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

function status(err: unknown): number | undefined {
  return (err as S3ErrorShape | undefined)?.$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const e = err as S3ErrorShape | undefined;
  return status(err) === 404 || e?.name === 'NoSuchKey' || e?.name === 'NotFound';
}

function isPreconditionFailed(err: unknown): boolean {
  const e = err as S3ErrorShape | undefined;
  return status(err) === 412 || e?.name === 'PreconditionFailed' || e?.Code === 'PreconditionFailed';
}

/** A conditional write the server does not implement (rather than one it refused). */
function isNotImplemented(err: unknown): boolean {
  const e = err as S3ErrorShape | undefined;
  return status(err) === 501 || e?.name === 'NotImplemented';
}

/** Passes bytes through while hashing them; with an expected digest, fails at the end if they differ. */
class Digesting extends Transform {
  readonly #hash = createHash('sha256');
  /** Not `size` or `length`: lib-storage would take either for the body's total length before it is read. */
  byteCount = 0;
  sha256: string | undefined;
  constructor(private readonly expected?: string) {
    super();
  }
  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.#hash.update(bytes);
    this.byteCount += bytes.length;
    cb(null, bytes);
  }
  override _flush(cb: TransformCallback): void {
    this.sha256 = this.#hash.digest('hex');
    if (this.expected && this.sha256 !== this.expected) {
      cb(new BlobIntegrityError(`the bytes hash to ${this.sha256}, not the expected ${this.expected}`));
    } else cb();
  }
}

/**
 * Passes an object's bytes through, always holding back the newest chunk: only once the whole object has hashed to
 * its content address (and has its announced length) does the last chunk go out. Otherwise the stream fails with
 * BlobIntegrityError and the consumer never has all the bytes.
 */
class Verifying extends Transform {
  readonly #hash = createHash('sha256');
  #size = 0;
  #pending: Buffer | undefined;
  constructor(
    private readonly expected: string,
    private readonly expectedSize: number | undefined,
    private readonly where: string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk);
    this.#size += chunk.length;
    const previous = this.#pending;
    this.#pending = chunk;
    cb(null, previous);
  }
  override _flush(cb: TransformCallback): void {
    const actual = this.#hash.digest('hex');
    if (actual !== this.expected) {
      cb(new BlobIntegrityError(`${this.where}: the stored bytes hash to ${actual}, not ${this.expected}`));
    } else if (this.expectedSize !== undefined && this.#size !== this.expectedSize) {
      cb(new BlobIntegrityError(`${this.where}: ${this.#size} bytes read, the object has ${this.expectedSize}`));
    } else {
      if (this.#pending) this.push(this.#pending);
      this.#pending = undefined;
      cb();
    }
  }
}

/** The S3 backend from explicit options (createS3BlobStore maps the configuration to these). */
export function s3BlobStore(options: S3BlobStoreOptions): S3BlobStore {
  const bucket = options.bucket;
  const partSize = Math.max(5 * MiB, options.partSizeBytes ?? 5 * MiB);
  const queueSize = Math.max(1, options.queueSize ?? 2);
  const copyThreshold = options.multipartCopyThresholdBytes ?? MAX_SINGLE_COPY;
  const copyPartSize = Math.max(5 * MiB, options.copyPartSizeBytes ?? 512 * MiB);
  const client = new S3Client({
    endpoint: options.endpoint,
    region: options.region,
    forcePathStyle: options.forcePathStyle ?? false,
    credentials: options.credentials,
    // The SDK's own CRC32 trailers (its default since 2025) are not understood by every S3-compatible server, and
    // the blob store verifies SHA-256 end to end itself.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  let ready: Promise<void> | undefined;
  const ensureBucket = (): Promise<void> => {
    ready ??= (async () => {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }));
        return;
      } catch (err) {
        if (!isNotFound(err) || options.createBucket === false) throw err;
      }
      try {
        await client.send(
          new CreateBucketCommand({
            Bucket: bucket,
            // AWS wants the region named, except its default one.
            ...(options.region !== 'us-east-1'
              ? { CreateBucketConfiguration: { LocationConstraint: options.region as BucketLocationConstraint } }
              : {}),
          }),
        );
      } catch (err) {
        const name = (err as S3ErrorShape).name;
        if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err;
      }
    })().catch((err: unknown) => {
      ready = undefined; // the next call tries again
      throw err;
    });
    return ready;
  };

  const check = (tenantId: string, sha256?: string): void => {
    if (!TENANT.test(tenantId)) throw new Error(`not a tenant id: ${JSON.stringify(tenantId)}`);
    if (sha256 !== undefined && !SHA256.test(sha256))
      throw new Error(`not a SHA-256 digest: ${JSON.stringify(sha256)}`);
  };
  const keyOf = (tenantId: string, sha256: string): string => {
    check(tenantId, sha256);
    return `tenants/${tenantId}/sha256/${sha256}`;
  };

  async function headObject(key: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Hashes a body without storing it (the content key already exists), checking the expected digest. */
  async function drain(body: Readable, expected: string): Promise<number> {
    const digesting = new Digesting(expected);
    await new Promise<void>((resolve, reject) => {
      pipeline(body, digesting, (err) => (err ? reject(err) : resolve()));
      digesting.resume();
    });
    return digesting.byteCount;
  }

  /** Uploads a stream to `key` (single PutObject below one part, else multipart); nothing is visible on failure. */
  async function upload(
    key: string,
    body: Readable,
    mediaType: string,
    metadata: Record<string, string>,
    ifNoneMatch: boolean,
  ): Promise<void> {
    const uploader = new Upload({
      client,
      partSize,
      queueSize,
      params: {
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentType: mediaType,
        Metadata: metadata,
        ...(ifNoneMatch ? { IfNoneMatch: '*' } : {}),
      },
    });
    try {
      await uploader.done();
    } catch (err) {
      body.destroy();
      throw err;
    }
  }

  /** Publishes `from` under `to` server-side, unless `to` exists; true if this call published it. */
  async function publish(from: string, to: string, size: number, mediaType: string, sha256: string): Promise<boolean> {
    const metadata = { sha256, 'media-type': mediaType };
    const conditional = async (send: (ifNoneMatch: string | undefined) => Promise<unknown>): Promise<boolean> => {
      try {
        await send('*');
        return true;
      } catch (err) {
        if (isPreconditionFailed(err)) return false; // someone published the same content first
        if (!isNotImplemented(err)) throw err;
      }
      // A server without conditional copies: the content key was absent a moment ago, and a concurrent publisher
      // can only write the same bytes (atomically), so an unconditional copy is still safe.
      await send(undefined);
      return true;
    };
    if (size <= copyThreshold) {
      return conditional((ifNoneMatch) =>
        client.send(
          new CopyObjectCommand({
            Bucket: bucket,
            Key: to,
            CopySource: `${bucket}/${from}`,
            MetadataDirective: 'REPLACE',
            ContentType: mediaType,
            Metadata: metadata,
            IfNoneMatch: ifNoneMatch,
          }),
        ),
      );
    }
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: to, ContentType: mediaType, Metadata: metadata }),
    );
    try {
      const parts: { PartNumber: number; ETag: string | undefined }[] = [];
      for (let start = 0, n = 1; start < size; start += copyPartSize, n++) {
        const end = Math.min(size, start + copyPartSize) - 1;
        const res = await client.send(
          new UploadPartCopyCommand({
            Bucket: bucket,
            Key: to,
            UploadId,
            PartNumber: n,
            CopySource: `${bucket}/${from}`,
            CopySourceRange: `bytes=${start}-${end}`,
          }),
        );
        parts.push({ PartNumber: n, ETag: res.CopyPartResult?.ETag });
      }
      return await conditional((ifNoneMatch) =>
        client.send(
          new CompleteMultipartUploadCommand({
            Bucket: bucket,
            Key: to,
            UploadId,
            MultipartUpload: { Parts: parts },
            IfNoneMatch: ifNoneMatch,
          }),
        ),
      );
    } catch (err) {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: to, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  /** An incomplete multipart upload's parts: how many, their bytes, and when the last arrived (or it began). */
  async function multipartActivity(
    key: string,
    uploadId: string,
  ): Promise<{ count: number; bytes: number; activeAt: Date } | undefined> {
    let count = 0;
    let bytes = 0;
    let activeAt: Date | undefined;
    let marker: string | undefined;
    try {
      do {
        const page = await client.send(
          new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }),
        );
        for (const part of page.Parts ?? []) {
          count++;
          bytes += part.Size ?? 0;
          if (part.LastModified && (!activeAt || part.LastModified > activeAt)) activeAt = part.LastModified;
        }
        marker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
      } while (marker);
      if (!activeAt) {
        // No part yet: idle since it began (ListParts does not say when; the listing of uploads does).
        const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
        activeAt = page.Uploads?.find((u) => u.UploadId === uploadId)?.Initiated;
        if (!activeAt) return undefined;
      }
    } catch (err) {
      if (isNotFound(err) || (err as S3ErrorShape).name === 'NoSuchUpload') return undefined;
      throw err;
    }
    return { count, bytes, activeAt };
  }

  async function deleteQuietly(key: string): Promise<void> {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined);
  }

  async function putKnown(tenantId: string, sha256: string, body: Readable, mediaType: string): Promise<BlobRef> {
    const key = keyOf(tenantId, sha256);
    if (await headObject(key)) return { tenantId, sha256, sizeBytes: await drain(body, sha256) };
    const digesting = new Digesting(sha256);
    pipeline(body, digesting, () => undefined); // an error in either ends both; upload() sees it
    try {
      await upload(key, digesting, mediaType, { sha256, 'media-type': mediaType }, true);
    } catch (err) {
      if (!isPreconditionFailed(err)) throw err;
      // Published concurrently by another put of the same content; these bytes were checked (the digest passed:
      // the uploader only completes after the stream ended without error).
    }
    return { tenantId, sha256, sizeBytes: digesting.byteCount };
  }

  async function putStreamed(tenantId: string, body: Readable, mediaType: string): Promise<BlobRef> {
    check(tenantId);
    const tempKey = `tmp/${tenantId}/${randomUUID()}`;
    const digesting = new Digesting();
    pipeline(body, digesting, () => undefined);
    try {
      await upload(tempKey, digesting, mediaType, { 'media-type': mediaType }, false);
      const sha256 = digesting.sha256;
      if (!sha256) throw new Error('the upload finished before its body did');
      const key = keyOf(tenantId, sha256);
      if (!(await headObject(key))) await publish(tempKey, key, digesting.byteCount, mediaType, sha256);
      return { tenantId, sha256, sizeBytes: digesting.byteCount };
    } finally {
      await deleteQuietly(tempKey);
    }
  }

  const store: S3BlobStore = {
    backend: 's3',
    bucket,
    keyOf,

    async put(tenantId: string, body: Readable | Uint8Array, opts: PutOptions = {}): Promise<BlobRef> {
      check(tenantId);
      const expected = opts.expectedSha256?.toLowerCase();
      if (expected !== undefined && !SHA256.test(expected)) {
        throw new Error(`not a SHA-256 digest: ${JSON.stringify(opts.expectedSha256)}`);
      }
      const mediaType = opts.mediaType ?? DEFAULT_MEDIA_TYPE;
      await ensureBucket();
      if (body instanceof Uint8Array) {
        const sha256 = createHash('sha256').update(body).digest('hex');
        if (expected && expected !== sha256) {
          throw new BlobIntegrityError(`the bytes hash to ${sha256}, not the expected ${expected}`);
        }
        return putKnown(
          tenantId,
          sha256,
          Readable.from([Buffer.from(body.buffer, body.byteOffset, body.length)]),
          mediaType,
        );
      }
      return expected ? putKnown(tenantId, expected, body, mediaType) : putStreamed(tenantId, body, mediaType);
    },

    async get(tenantId: string, sha256: string): Promise<Readable> {
      const key = keyOf(tenantId, sha256);
      await ensureBucket();
      let res;
      try {
        res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      } catch (err) {
        if (isNotFound(err)) throw new BlobNotFoundError(`no blob ${sha256} for tenant ${tenantId}`);
        throw err;
      }
      const body = res.Body;
      if (!(body instanceof Readable)) throw new Error('GetObject returned no Node.js stream');
      const verifying = new Verifying(sha256, res.ContentLength, `blob ${sha256} of tenant ${tenantId}`);
      pipeline(body, verifying, () => undefined); // a broken connection fails `verifying` with its error
      return verifying;
    },

    async head(tenantId: string, sha256: string): Promise<BlobHead | undefined> {
      const key = keyOf(tenantId, sha256);
      await ensureBucket();
      const res = await headObject(key);
      if (!res) return undefined;
      return {
        tenantId,
        sha256,
        sizeBytes: res.ContentLength ?? 0,
        mediaType: res.Metadata?.['media-type'] ?? res.ContentType ?? DEFAULT_MEDIA_TYPE,
        backend: 's3',
        createdAt: res.LastModified ?? new Date(0),
      };
    },

    async delete(tenantId: string, sha256: string): Promise<boolean> {
      const key = keyOf(tenantId, sha256);
      await ensureBucket();
      if (!(await headObject(key))) return false;
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      return true;
    },

    async orphanUploads(idleSince: Date, limit: number): Promise<OrphanUpload[]> {
      await ensureBucket();
      const found: OrphanUpload[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: 'tmp/', ContinuationToken: token }),
        );
        for (const obj of page.Contents ?? []) {
          const tenantId = obj.Key?.split('/')[1];
          if (!obj.Key || !tenantId || !obj.LastModified || obj.LastModified >= idleSince) continue;
          const at = obj.LastModified;
          found.push({
            uploadId: `object:${obj.Key}`,
            tenantId,
            startedAt: at,
            activeAt: at,
            chunks: 1,
            bytes: obj.Size ?? 0,
          });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token && found.length < limit);
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        const page = await client.send(
          new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
        for (const u of page.Uploads ?? []) {
          const tenantId = u.Key?.split('/')[1];
          if (!u.Key || !u.UploadId || !tenantId || !/^(tmp|tenants)\//.test(u.Key)) continue;
          if (!u.Initiated || u.Initiated >= idleSince) continue;
          const parts = await multipartActivity(u.Key, u.UploadId);
          if (!parts || parts.activeAt >= idleSince) continue; // gone, or still receiving parts
          found.push({
            uploadId: `multipart:${u.Key}:${u.UploadId}`,
            tenantId,
            startedAt: u.Initiated,
            activeAt: parts.activeAt,
            chunks: parts.count,
            bytes: parts.bytes,
          });
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
      } while (keyMarker && found.length < limit);
      return found.sort((a, b) => a.activeAt.getTime() - b.activeAt.getTime()).slice(0, limit);
    },

    async removeUpload(uploadId: string, idleSince: Date): Promise<boolean> {
      await ensureBucket();
      if (uploadId.startsWith('object:')) {
        const key = uploadId.slice('object:'.length);
        if (!key.startsWith('tmp/')) return false;
        const res = await headObject(key);
        if (!res?.LastModified || res.LastModified >= idleSince) return false;
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
        return true;
      }
      if (uploadId.startsWith('multipart:')) {
        const rest = uploadId.slice('multipart:'.length);
        const colon = rest.indexOf(':'); // keys hold no colon; upload ids may
        const key = rest.slice(0, colon);
        const id = rest.slice(colon + 1);
        if (colon < 0 || !/^(tmp|tenants)\//.test(key)) return false;
        const parts = await multipartActivity(key, id);
        if (!parts || parts.activeAt >= idleSince) return false;
        try {
          await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id }));
        } catch (err) {
          if (isNotFound(err)) return false;
          throw err;
        }
        return true;
      }
      return false;
    },

    async sweepIncomplete(olderThanMs: number): Promise<number> {
      const idleSince = new Date(Date.now() - olderThanMs);
      let removed = 0;
      for (const orphan of await store.orphanUploads(idleSince, 10_000)) {
        if (await store.removeUpload(orphan.uploadId, idleSince)) removed++;
      }
      return removed;
    },

    close() {
      client.destroy();
    },
  };
  return store;
}
