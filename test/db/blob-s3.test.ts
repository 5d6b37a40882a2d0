/**
 * The S3 backend of the blob store against the run's real S3-compatible server (versitygw, started by the global
 * setup): the backends' common contract (test/helpers/blob-contract.ts) on the store alone and as configured
 * (createBlobStore), then what is S3's own: the key layout, publication by copy or straight to the content key,
 * no rewrite of an existing key, corruption at either end, the multipart copy, the configuration's credentials, a
 * 200 MiB blob through a child process whose RSS is measured, and a put killed mid-way.
 */
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createBlobStore } from '../../common/blob-store/index.js';
import {
  createS3BlobStore,
  s3BlobStore,
  type S3BlobStore,
  type S3BlobStoreOptions,
} from '../../common/blob-store/s3.js';
import { BlobIntegrityError, BlobNotFoundError } from '../../common/blob-store/types.js';
import { loadConfig, PROJECT_ROOT } from '../../common/config.js';
import { createDb, type Db } from '../../common/db.js';
import { describeBlobStore } from '../helpers/blob-contract.js';
import { seededSha256, seededStream } from '../helpers/blob-data.js';

const MiB = 1024 * 1024;
const s3 = inject('s3');
/** Buckets of this file and run (one per describe block): nothing is shared with other files or runs. */
const run = randomUUID().slice(0, 8);
const bucket = `blob-test-${run}`;
const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
const options: S3BlobStoreOptions = {
  endpoint: s3.endpoint,
  region: s3.region,
  bucket,
  forcePathStyle: true,
  credentials,
  partSizeBytes: 5 * MiB,
};
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const keyOf = (tenantId: string, digest: string): string => `tenants/${tenantId}/sha256/${digest}`;

const raw = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials });
afterAll(() => raw.destroy());

/** Rewrites a stored object directly through the S3 API: same key, same metadata, one byte flipped. */
async function corruptObject(
  inBucket: string,
  tenantId: string,
  digest: string,
  at: (size: number) => number,
): Promise<void> {
  const key = keyOf(tenantId, digest);
  const res = await raw.send(new GetObjectCommand({ Bucket: inBucket, Key: key }));
  const bytes = Buffer.from(await res.Body!.transformToByteArray());
  bytes[at(bytes.length)]! ^= 0xff;
  await raw.send(
    new PutObjectCommand({
      Bucket: inBucket,
      Key: key,
      Body: bytes,
      ContentType: res.ContentType,
      Metadata: res.Metadata,
    }),
  );
}

/** How many objects hold the blob (its content key, and any temporary object of its tenant). */
async function objectsOf(inBucket: string, tenantId: string, digest: string): Promise<number> {
  const listed = await Promise.all(
    [keyOf(tenantId, digest), `tmp/${tenantId}/`].map((prefix) =>
      raw.send(new ListObjectsV2Command({ Bucket: inBucket, Prefix: prefix })),
    ),
  );
  return listed.reduce((n, page) => n + (page.KeyCount ?? page.Contents?.length ?? 0), 0);
}

// The contract, on the store alone: 5 MiB parts, blobs of three parts.
const contractBucket = `blob-contract-${run}`;
describeBlobStore(
  'S3 (versitygw), 5 MiB parts',
  () => s3BlobStore({ ...options, bucket: contractBucket }),
  (tenantId, digest) => corruptObject(contractBucket, tenantId, digest, (n) => Math.floor(n / 2)),
  { largeBytes: 12 * MiB + 3, countStored: (tenantId, digest) => objectsOf(contractBucket, tenantId, digest) },
);

// The contract, on the store as the platform makes it from its configuration: createBlobStore (index.ts) with
// BLOB_BACKEND=s3, the credentials by reference, metrics and the catalog around it.
const configuredBucket = `blob-configured-${run}`;
let configuredDb: Db | undefined;
afterAll(async () => {
  await configuredDb?.end();
});
describeBlobStore(
  'S3 as configured (createBlobStore, BLOB_BACKEND=s3)',
  async () => {
    process.env.TEST_S3_ACCESS_KEY_ID = s3.accessKeyId;
    process.env.TEST_S3_SECRET_ACCESS_KEY = s3.secretAccessKey;
    const config = loadConfig({
      DATABASE_URL: inject('databaseUrl'),
      BLOB_BACKEND: 's3',
      S3_ENDPOINT: s3.endpoint,
      S3_REGION: s3.region,
      S3_BUCKET: configuredBucket,
      S3_ACCESS_KEY_ID_REF: 'TEST_S3_ACCESS_KEY_ID',
      S3_SECRET_ACCESS_KEY_REF: 'TEST_S3_SECRET_ACCESS_KEY',
    });
    configuredDb = createDb(config.DATABASE_URL, 2);
    return createBlobStore(config, configuredDb);
  },
  (tenantId, digest) => corruptObject(configuredBucket, tenantId, digest, (n) => n - 1),
  { countStored: (tenantId, digest) => objectsOf(configuredBucket, tenantId, digest) },
);

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Reads a stream to its end or its error: the bytes that reached the consumer, and the error. */
async function consume(stream: Readable): Promise<{ bytes: number; error: unknown }> {
  let bytes = 0;
  try {
    await pipeline(
      stream,
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          bytes += chunk.length;
          cb();
        },
      }),
    );
    return { bytes, error: undefined };
  } catch (error) {
    return { bytes, error };
  }
}

describe('blob store, S3 backend (versitygw): objects, keys and processes', () => {
  let store: S3BlobStore;

  /** Every key under a prefix (the store's own view is by digest; these tests also look at what else is there). */
  async function keys(prefix: string): Promise<string[]> {
    const res = await raw.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    return (res.Contents ?? []).map((o) => o.Key!);
  }
  async function multipartUploads(): Promise<string[]> {
    const res = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    return (res.Uploads ?? []).map((u) => u.Key!);
  }

  const corrupt = (tenantId: string, digest: string, at: (size: number) => number): Promise<void> =>
    corruptObject(bucket, tenantId, digest, at);

  beforeAll(() => {
    store = s3BlobStore(options);
  });
  afterAll(() => {
    store?.close();
  });

  it('when a buffer is put, then its object is tenants/<tenant>/sha256/<hash> with its media type', async () => {
    const bytes = Buffer.from('hello, blob store');
    const ref = await store.put('acme', bytes, { mediaType: 'text/plain' });
    expect(ref).toEqual({ tenantId: 'acme', sha256: sha256(bytes), sizeBytes: bytes.length });
    expect(await keys('tenants/acme/')).toContain(`tenants/acme/sha256/${ref.sha256}`);
    expect(store.keyOf('acme', ref.sha256)).toBe(`tenants/acme/sha256/${ref.sha256}`);
    const object = await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: store.keyOf('acme', ref.sha256) }));
    expect(object).toMatchObject({ ContentType: 'text/plain', ContentLength: bytes.length });
    const head = await store.head('acme', ref.sha256);
    expect(head).toMatchObject({ ...ref, mediaType: 'text/plain', backend: 's3' });
    expect(head!.createdAt.getTime()).toBeGreaterThan(Date.now() - 5 * 60_000);
    expect(await readAll(await store.get('acme', ref.sha256))).toEqual(bytes);
  });

  it('when a multi-part stream is put (digest unknown), then it is published by copy and the temporary key is gone', async () => {
    const size = 13 * MiB + 17; // three 5 MiB parts, the last one short
    const ref = await store.put('acme', seededStream('multi', size), { mediaType: 'application/x-test' });
    expect(ref).toEqual({ tenantId: 'acme', sha256: await seededSha256('multi', size), sizeBytes: size });
    expect(await store.head('acme', ref.sha256)).toMatchObject({ sizeBytes: size, mediaType: 'application/x-test' });
    expect(sha256(await readAll(await store.get('acme', ref.sha256)))).toBe(ref.sha256);
    expect(await keys('tmp/')).toEqual([]);
    expect(await multipartUploads()).toEqual([]);
  });

  it('when the digest is known (expectedSha256), then a multi-part stream goes straight to its content key', async () => {
    const size = 11 * MiB;
    const expected = await seededSha256('direct', size);
    const ref = await store.put('acme', seededStream('direct', size), { expectedSha256: expected });
    expect(ref).toEqual({ tenantId: 'acme', sha256: expected, sizeBytes: size });
    expect(sha256(await readAll(await store.get('acme', expected)))).toBe(expected);
    expect(await keys('tmp/')).toEqual([]);
  });

  it('when the bytes do not match expectedSha256, then no incomplete upload is left behind', async () => {
    const size = 12 * MiB;
    const claimed = await seededSha256('claimed', size);
    await expect(store.put('acme', seededStream('other', size), { expectedSha256: claimed })).rejects.toThrow(
      BlobIntegrityError,
    );
    await expect(store.put('acme', Buffer.from('x'), { expectedSha256: claimed })).rejects.toThrow(BlobIntegrityError);
    expect(await store.head('acme', claimed)).toBeUndefined();
    expect(await multipartUploads()).toEqual([]);
  });

  it('when the same content is put twice, then it is one blob and the stored object is not rewritten', async () => {
    const bytes = await readAll(seededStream('twice', 6 * MiB));
    const first = await store.put('acme', Readable.from([bytes]));
    const key = store.keyOf('acme', first.sha256);
    const before = await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    await new Promise((r) => setTimeout(r, 1_100)); // Last-Modified has one-second resolution
    expect(await store.put('acme', Readable.from([bytes]))).toEqual(first);
    expect(await store.put('acme', bytes)).toEqual(first);
    expect(await store.put('acme', Readable.from([bytes]), { expectedSha256: first.sha256 })).toEqual(first);
    const after = await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    expect(after.LastModified).toEqual(before.LastModified);
    expect(after.ETag).toBe(before.ETag);
    expect(await keys('tmp/')).toEqual([]);
  });

  it('when the same content is put concurrently, then every put returns the same ref and one object exists', async () => {
    const size = 12 * MiB;
    const expected = await seededSha256('concurrent', size);
    const refs = await Promise.all([
      ...Array.from({ length: 4 }, () => store.put('conc', seededStream('concurrent', size))),
      store.put('conc', seededStream('concurrent', size), { expectedSha256: expected }),
      store.put('conc', seededStream('concurrent', size), { expectedSha256: expected }),
    ]);
    for (const ref of refs) expect(ref).toEqual({ tenantId: 'conc', sha256: expected, sizeBytes: size });
    expect(await keys('tenants/conc/')).toEqual([`tenants/conc/sha256/${expected}`]);
    expect(sha256(await readAll(await store.get('conc', expected)))).toBe(expected);
    expect(await keys('tmp/')).toEqual([]);
    expect(await multipartUploads()).toEqual([]);
  });

  it('when a stored object is corrupted, then get fails with BlobIntegrityError before the last bytes arrive', async () => {
    const size = 9 * MiB;
    const ref = await store.put('acme', seededStream('corrupt-late', size));
    await corrupt('acme', ref.sha256, (n) => n - 1); // the very last byte
    const late = await consume(await store.get('acme', ref.sha256));
    expect(late.error).toBeInstanceOf(BlobIntegrityError);
    expect(late.bytes).toBeLessThan(size);

    const small = await store.put('acme', Buffer.from('a small object, corrupted at its start'));
    await corrupt('acme', small.sha256, () => 0);
    const early = await consume(await store.get('acme', small.sha256));
    expect(early.error).toBeInstanceOf(BlobIntegrityError);
    expect(early.bytes).toBe(0);
  });

  it('when tenant ids or digests are not well-formed, then nothing reaches S3', async () => {
    await expect(store.put('../acme', Buffer.from('x'))).rejects.toThrow(/tenant/);
    await expect(store.get('acme', 'sha256/../x')).rejects.toThrow(/SHA-256/);
    await expect(store.head('Acme', '0'.repeat(64))).rejects.toThrow(/tenant/);
  });

  it('when the publishing copy is larger than the single-copy threshold, then it is copied part by part', async () => {
    const small = s3BlobStore({ ...options, multipartCopyThresholdBytes: 6 * MiB, copyPartSizeBytes: 5 * MiB });
    try {
      const size = 12 * MiB + 3;
      const ref = await small.put('copyparts', seededStream('copyparts', size), { mediaType: 'model/onnx' });
      expect(ref.sha256).toBe(await seededSha256('copyparts', size));
      expect(await small.head('copyparts', ref.sha256)).toMatchObject({ sizeBytes: size, mediaType: 'model/onnx' });
      expect(sha256(await readAll(await small.get('copyparts', ref.sha256)))).toBe(ref.sha256);
    } finally {
      small.close();
    }
  });

  it('when configured by S3_* keys, then the credentials are read from the variables the *_REF keys name', async () => {
    const env = { TEST_S3_KEY: s3.accessKeyId, TEST_S3_SECRET: s3.secretAccessKey };
    const config = loadConfig({
      BLOB_BACKEND: 's3',
      S3_ENDPOINT: s3.endpoint,
      S3_REGION: s3.region,
      S3_BUCKET: bucket,
      S3_ACCESS_KEY_ID_REF: 'TEST_S3_KEY',
      S3_SECRET_ACCESS_KEY_REF: 'TEST_S3_SECRET',
    });
    const configured = createS3BlobStore(config, undefined, env);
    try {
      const ref = await configured.put('acme', Buffer.from('configured'));
      expect(await store.head('acme', ref.sha256)).toBeDefined();
    } finally {
      configured.close();
    }
    // One credential without the other names the missing variable.
    expect(() => createS3BlobStore(config, undefined, { TEST_S3_KEY: 'x' })).toThrow(/TEST_S3_SECRET/);
    expect(() => createS3BlobStore({ ...config, S3_BUCKET: undefined }, undefined, env)).toThrow(/S3_BUCKET/);
  });

  describe('in a child process', () => {
    const child = (mode: 'roundtrip' | 'stall', env: Record<string, string>) =>
      spawn(process.execPath, [path.join(PROJECT_ROOT, 'test/helpers/blob-s3-child.mjs'), mode], {
        cwd: PROJECT_ROOT,
        env: { ...process.env, BLOB_S3: JSON.stringify({ ...options, partSizeBytes: undefined }), ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });

    /** Lines of JSON the child prints, as they come; rejects when it exits before `until` accepts one. */
    function watch(
      proc: ReturnType<typeof child>,
      until: (message: Record<string, unknown>) => boolean,
    ): Promise<Record<string, unknown>> {
      return new Promise((resolve, reject) => {
        let out = '';
        let err = '';
        proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
        proc.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          let nl;
          while ((nl = out.indexOf('\n')) >= 0) {
            const message = JSON.parse(out.slice(0, nl)) as Record<string, unknown>;
            out = out.slice(nl + 1);
            if (until(message)) resolve(message);
          }
        });
        proc.once('exit', (code, sig) => reject(new Error(`child exited (${code ?? sig}): ${err.slice(-2_000)}`)));
      });
    }

    it('when a 200 MiB stream is put and read back, then the digests agree and RSS grows by well under half of it', async () => {
      const size = 200 * MiB;
      const proc = child('roundtrip', { BLOB_TENANT: 'big', BLOB_SEED: 'two-hundred', BLOB_SIZE: String(size) });
      const result = (await watch(proc, (m) => 'ref' in m)) as {
        ref: { sha256: string; sizeBytes: number };
        generatedSha256: string;
        readSha256: string;
        readBytes: number;
        putMs: number;
        getMs: number;
        baselineRssBytes: number;
        maxRssBytes: number;
      };
      expect(result.ref.sizeBytes).toBe(size);
      expect(result.ref.sha256).toBe(result.generatedSha256);
      expect(result.readSha256).toBe(result.generatedSha256);
      expect(result.readBytes).toBe(size);
      const mib = (n: number): string => `${(n / MiB).toFixed(0)} MiB`;
      console.log(
        `S3 backend, 200 MiB through a child: put ${result.putMs} ms, get ${result.getMs} ms; peak RSS ` +
          `${mib(result.maxRssBytes)} (${mib(result.baselineRssBytes)} before the put: node and the AWS SDK)`,
      );
      // Streamed: what the round trip adds (5 MiB parts in flight, buffers the GC has not collected yet, measured
      // 80-90 MiB) does not depend on the blob's size; the whole process stays below the blob's size.
      expect(result.maxRssBytes - result.baselineRssBytes).toBeLessThan(size / 2);
      expect(result.maxRssBytes).toBeLessThan(size);
    }, 300_000);

    for (const known of [false, true]) {
      it(`when a put ${known ? 'with a known digest ' : ''}is killed mid-way, then no blob is visible and a re-put succeeds`, async () => {
        const size = 40 * MiB;
        const seed = `killed-${known}`;
        const expected = await seededSha256(seed, size);
        const tenant = known ? 'killed-known' : 'killed';
        const proc = child('stall', {
          BLOB_TENANT: tenant,
          BLOB_SEED: seed,
          BLOB_SIZE: String(size),
          BLOB_STALL_AFTER: String(25 * MiB),
          BLOB_EXPECTED: known ? expected : '',
        });
        const exited = new Promise((r) => proc.once('exit', r));
        await watch(proc, (m) => 'stalled' in m);
        // Mid-way: a multipart upload is under way, some of its parts stored, nothing completed.
        const storedParts = async (): Promise<number> =>
          (await store.orphanUploads(new Date(Date.now() + 60_000), 100))
            .filter((o) => o.tenantId === tenant)
            .reduce((n, o) => n + o.chunks, 0);
        const deadline = Date.now() + 30_000;
        while (!(await storedParts()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        expect(await storedParts()).toBeGreaterThan(0);
        proc.kill('SIGKILL');
        await exited;

        expect(await store.head(tenant, expected)).toBeUndefined();
        await expect(store.get(tenant, expected)).rejects.toThrow(BlobNotFoundError);
        expect(await keys(`tenants/${tenant}/`)).toEqual([]);

        // What it left is an orphan upload for retention (retention.ts), and removing it leaves nothing behind.
        const orphans = await store.orphanUploads(new Date(Date.now() + 1_000), 100);
        expect(orphans.map((o) => o.tenantId)).toContain(tenant);
        expect(orphans.find((o) => o.tenantId === tenant)!.bytes).toBeGreaterThan(0);
        expect(await store.sweepIncomplete(-1_000)).toBeGreaterThan(0);
        expect(await multipartUploads()).toEqual([]);

        const ref = await store.put(tenant, seededStream(seed, size), known ? { expectedSha256: expected } : {});
        expect(ref).toEqual({ tenantId: tenant, sha256: expected, sizeBytes: size });
        expect(sha256(await readAll(await store.get(tenant, expected)))).toBe(expected);
      }, 120_000);
    }
  });
});
