/**
 * The PostgreSQL backend of the blob store on the run's database: the contract (test/helpers/blob-contract.ts) with
 * small chunks and as configured; what is particular to chunk rows (a corrupted middle chunk, a forged last chunk, a
 * missing one, a failing body, a blob removed while read); the metrics; and, in child processes, a 200 MiB blob whose
 * peak RSS is measured and a put killed mid-way.
 */
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureTenant } from '../../common/api-keys.js';
import { storedBytes } from '../../common/blob-store/catalog.js';
import { createBlobStore } from '../../common/blob-store/index.js';
import { createPostgresBlobStore, type PostgresBlobStore } from '../../common/blob-store/postgres.js';
import { sweepBlobs } from '../../common/blob-store/retention.js';
import { BlobIntegrityError, BlobNotFoundError } from '../../common/blob-store/types.js';
import { PROJECT_ROOT } from '../../common/config.js';
import { createDb, type Db } from '../../common/db.js';
import { registry, reportBlobBytesFrom } from '../../common/metrics.js';
import { describeBlobStore } from '../helpers/blob-contract.js';
import { drain, seededSha256, seededStream } from '../helpers/blob-data.js';
import { eventually, killHard, testConfig } from '../helpers/stack.js';

const MiB = 1024 * 1024;
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

let pool: Db | undefined;
/** The application's pool (as agency_app), made on first use and shared by this file's blocks. */
const db = (): Db => (pool ??= createDb(inject('databaseUrl'), 6));
afterAll(async () => {
  await pool?.end();
});

/** Flips the first byte of the blob's middle chunk (data only: its digest no longer matches). */
async function corruptChunk(tenantId: string, digest: string): Promise<void> {
  const { rowCount } = await db().query(
    `UPDATE blob_chunks c SET data = set_byte(c.data, 0, get_byte(c.data, 0) # 255)
       FROM blobs b
      WHERE b.backend = 'postgres' AND b.tenant_id = $1 AND b.sha256 = $2
        AND c.upload_id = b.upload_id AND c.seq = b.chunk_count / 2`,
    [tenantId, digest],
  );
  expect(rowCount).toBe(1);
}

/** The blob's catalog rows plus the tenant's unpublished uploads: 1 once puts are done (nothing left behind). */
async function countStored(tenantId: string, digest: string): Promise<number> {
  const { rows } = await db().query<{ n: number }>(
    `SELECT (SELECT count(*) FROM blobs WHERE backend = 'postgres' AND tenant_id = $1 AND sha256 = $2)::int
          + (SELECT count(*) FROM blob_uploads WHERE tenant_id = $1 AND published_at IS NULL)::int AS n`,
    [tenantId, digest],
  );
  return rows[0]!.n;
}

describeBlobStore(
  'PostgreSQL, 64 KiB chunks',
  () => createPostgresBlobStore(db(), { chunkBytes: 64 * 1024 }),
  corruptChunk,
  {
    countStored,
  },
);
describeBlobStore(
  'PostgreSQL as configured (createBlobStore: 1 MiB chunks, timed)',
  () => createBlobStore(testConfig(), db()),
  corruptChunk,
  {
    countStored,
  },
);

describe('blob store, PostgreSQL backend: chunk rows', () => {
  const tenant = `blob-pg-${randomUUID().slice(0, 8)}`;
  let store: PostgresBlobStore;
  const size = 3 * 256 * 1024 + 1000; // four chunks of 256 KiB, the last one short

  beforeAll(async () => {
    await ensureTenant(db(), tenant, 'blob chunk rows');
    store = createPostgresBlobStore(db(), { chunkBytes: 256 * 1024 });
  });

  const chunksOf = async (digest: string) =>
    (
      await db().query<{ seq: number; sha256: string; length: number; published: boolean }>(
        `SELECT c.seq, c.sha256, octet_length(c.data) AS length, u.published_at IS NOT NULL AS published
           FROM blobs b JOIN blob_chunks c ON c.upload_id = b.upload_id JOIN blob_uploads u ON u.id = b.upload_id
          WHERE b.backend = 'postgres' AND b.tenant_id = $1 AND b.sha256 = $2 ORDER BY c.seq`,
        [tenant, digest],
      )
    ).rows;

  it('when a blob is put, then it is chunk rows of the configured size, each with its own digest, under a published upload', async () => {
    const { bytes } = await drain(seededStream('rows', size));
    const ref = await store.put(tenant, Readable.from([bytes]));
    const chunks = await chunksOf(ref.sha256);
    expect(chunks.map((c) => c.length)).toEqual([262144, 262144, 262144, 1000]);
    expect(chunks.map((c) => c.sha256)).toEqual(
      [0, 1, 2, 3].map((i) => sha256(bytes.subarray(i * 262144, (i + 1) * 262144))),
    );
    expect(chunks.every((c) => c.published)).toBe(true);
  });

  it('when a middle chunk is corrupted, then the stream delivers exactly the good chunks before it, then fails', async () => {
    const { bytes } = await drain(seededStream('middle', size));
    const ref = await store.put(tenant, bytes);
    await corruptChunk(tenant, ref.sha256); // chunk 2 of 0..3
    const read = await drain(await store.get(tenant, ref.sha256));
    expect(read.error).toBeInstanceOf(BlobIntegrityError);
    expect((read.error as Error).message).toMatch(/chunk 2 does not match its digest/);
    expect(read.bytes.length).toBe(2 * 262144);
    expect(read.bytes.equals(bytes.subarray(0, 2 * 262144))).toBe(true);
  });

  it('when the last chunk is replaced together with its digest, then the whole digest stops it before it is delivered', async () => {
    const { bytes } = await drain(seededStream('forged', size));
    const ref = await store.put(tenant, bytes);
    const forged = Buffer.from(bytes.subarray(3 * 262144));
    forged[0]! ^= 1;
    await db().query(
      `UPDATE blob_chunks c SET data = $3, sha256 = $4 FROM blobs b
        WHERE b.backend = 'postgres' AND b.tenant_id = $1 AND b.sha256 = $2 AND c.upload_id = b.upload_id AND c.seq = 3`,
      [tenant, ref.sha256, forged, sha256(forged)],
    );
    const read = await drain(await store.get(tenant, ref.sha256));
    expect(read.error).toBeInstanceOf(BlobIntegrityError);
    expect((read.error as Error).message).toMatch(/the stored bytes have SHA-256/);
    expect(read.bytes.length).toBe(3 * 262144); // everything but the last chunk
  });

  it('when a chunk row is missing, then the stream fails with BlobIntegrityError', async () => {
    const ref = await store.put(tenant, (await drain(seededStream('missing', size))).bytes);
    await db().query(
      `DELETE FROM blob_chunks c USING blobs b
        WHERE b.backend = 'postgres' AND b.tenant_id = $1 AND b.sha256 = $2 AND c.upload_id = b.upload_id AND c.seq = 1`,
      [tenant, ref.sha256],
    );
    const read = await drain(await store.get(tenant, ref.sha256));
    expect(read.error).toBeInstanceOf(BlobIntegrityError);
    expect((read.error as Error).message).toMatch(/chunk 1 of 4 is missing/);
  });

  it('when the body fails half-way, then the put fails with its error and leaves nothing behind', async () => {
    function* failing(): Generator<Buffer> {
      yield Buffer.alloc(600 * 1024, 1);
      throw new Error('the client went away');
    }
    await expect(store.put(tenant, Readable.from(failing()))).rejects.toThrow('the client went away');
    expect(await store.head(tenant, sha256(Buffer.alloc(600 * 1024, 1)))).toBeUndefined();
    const left = await db().query('SELECT 1 FROM blob_uploads WHERE tenant_id = $1 AND published_at IS NULL', [tenant]);
    expect(left.rowCount).toBe(0);
  });

  it('when a blob is deleted while it is read, then the reader gets BlobNotFoundError, not a truncated success', async () => {
    const ref = await store.put(tenant, (await drain(seededStream('deleted-while-read', size))).bytes);
    const chunks = (await store.get(tenant, ref.sha256))[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const first = await chunks.next();
    expect(first.done ? 0 : first.value.length).toBe(262144);
    expect(await store.delete(tenant, ref.sha256)).toBe(true);
    const rest = async (): Promise<void> => {
      while (!(await chunks.next()).done);
    };
    await expect(rest()).rejects.toThrow(BlobNotFoundError);
  });

  it('when puts and gets go through the configured store, then the latency histograms and the stored-bytes gauge show them', async () => {
    const configured = await createBlobStore(testConfig(), db());
    const bytes = Buffer.from(`metrics ${tenant}`);
    const ref = await configured.put(tenant, bytes);
    await drain(await configured.get(tenant, ref.sha256));
    reportBlobBytesFrom(() => storedBytes(db()));
    const text = await registry.metrics();
    expect(text).toMatch(/agent_agency_blob_put_seconds_count\{backend="postgres",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/agent_agency_blob_get_seconds_count\{backend="postgres",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/agent_agency_blob_bytes_total\{backend="postgres",direction="put"\} [1-9]/);
    const stored = (await storedBytes(db())).find((r) => r.tenant === tenant && r.backend === 'postgres')!.bytes;
    expect(stored).toBeGreaterThan(0);
    expect(text).toContain(`agent_agency_blob_stored_bytes{tenant="${tenant}",backend="postgres"} ${stored}`);
  });
});

describe('blob store, PostgreSQL backend: in a child process', () => {
  const tenant = `blob-child-${randomUUID().slice(0, 8)}`;
  const child = path.join(PROJECT_ROOT, 'test', 'helpers', 'blob-child.mjs');

  beforeAll(async () => {
    await ensureTenant(db(), tenant, 'blob child processes');
    // The child runs the compiled store, which the test setup builds; a source edited since would not be measured.
    for (const file of ['postgres', 'catalog', 'types']) {
      const source = statSync(path.join(PROJECT_ROOT, 'common', 'blob-store', `${file}.ts`)).mtimeMs;
      const compiled = statSync(path.join(PROJECT_ROOT, 'dist', 'common', 'blob-store', `${file}.js`), {
        throwIfNoEntry: false,
      })?.mtimeMs;
      if (compiled === undefined || compiled < source) {
        throw new Error(`dist/common/blob-store/${file}.js is older than its source: run npm run build:compile`);
      }
    }
  });

  function start(mode: 'roundtrip' | 'put', env: Record<string, string>) {
    const proc = spawn(process.execPath, [child, mode], {
      cwd: PROJECT_ROOT,
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: inject('databaseUrl'), BLOB_TENANT: tenant, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const result = new Promise<Record<string, unknown>>((resolve, reject) => {
      proc.once('exit', (code, signal) => {
        if (code === 0) resolve(JSON.parse(out) as Record<string, unknown>);
        else reject(new Error(`blob child exited with ${code ?? signal}: ${err.slice(-2000)}`));
      });
    });
    result.catch(() => undefined); // awaited by the test that cares; a killed child is expected to reject
    return { proc, result };
  }

  const bytes = Number(process.env.TEST_BLOB_BYTES ?? 200 * MiB);

  it(`when a ${Math.round(bytes / MiB)} MiB stream is put and read back, then the digests agree and the peak RSS stays far below the blob's size`, async () => {
    const started = performance.now();
    const r = (await start('roundtrip', { BLOB_BYTES: String(bytes), BLOB_SEED: `big-${tenant}` }).result) as {
      sha256: string;
      expectedSha256: string;
      readSha256: string;
      sizeBytes: number;
      readBytes: number;
      putMs: number;
      getMs: number;
      baselineRssMiB: number;
      putRssMiB: number;
      maxRssMiB: number;
    };
    const seconds = (performance.now() - started) / 1000;
    const rate = (ms: number): string => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;
    console.log(
      `PostgreSQL backend, ${bytes / MiB} MiB through a child process: put ${(r.putMs / 1000).toFixed(1)} s ` +
        `(${rate(r.putMs)}), get ${(r.getMs / 1000).toFixed(1)} s (${rate(r.getMs)}); peak RSS ${r.maxRssMiB.toFixed(0)} MiB ` +
        `(${r.baselineRssMiB.toFixed(0)} MiB before the put, ${r.putRssMiB.toFixed(0)} MiB after it); ` +
        `${seconds.toFixed(1)} s in all`,
    );
    expect(r.sizeBytes).toBe(bytes);
    expect(r.readBytes).toBe(bytes);
    expect(r.sha256).toBe(r.expectedSha256);
    expect(r.readSha256).toBe(r.expectedSha256);
    // What the round trip adds is bounded by the chunks in flight and the garbage not yet collected, not the size.
    expect(r.maxRssMiB - r.baselineRssMiB).toBeLessThan(80);
    if (bytes >= 200 * MiB) expect(r.maxRssMiB).toBeLessThan(120);
    expect(await createPostgresBlobStore(db()).delete(tenant, r.sha256)).toBe(true); // 200 MiB less in the database
  }, 600_000);

  it('when a put is killed mid-way, then nothing is visible, a re-put succeeds and retention sweeps the orphaned upload', async () => {
    const size = 16 * MiB;
    const seed = `killed-${tenant}`;
    const expected = await seededSha256(seed, size);
    // 256 KiB chunks, 20 ms per 256 KiB piece: about 1.3 s for the whole put, killed after a few chunks.
    const env = { BLOB_BYTES: String(size), BLOB_SEED: seed, BLOB_CHUNK_BYTES: String(256 * 1024) };
    const { proc } = start('put', { ...env, BLOB_THROTTLE_MS: '20' });
    const upload = await eventually(
      async () => {
        const { rows } = await db().query<{ id: string; chunks: number }>(
          `SELECT u.id, (SELECT count(*) FROM blob_chunks c WHERE c.upload_id = u.id)::int AS chunks
             FROM blob_uploads u WHERE u.tenant_id = $1 AND u.published_at IS NULL`,
          [tenant],
        );
        return rows[0] && rows[0].chunks >= 4 ? rows[0] : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20, what: 'the child to store a few chunks' },
    );
    await killHard(proc);
    expect(proc.signalCode).toBe('SIGKILL');

    // Nothing visible; the chunks it wrote are there, under an upload nobody reads.
    const store = createPostgresBlobStore(db());
    expect(await store.head(tenant, expected)).toBeUndefined();
    await expect(store.get(tenant, expected)).rejects.toThrow(BlobNotFoundError);
    const { rows } = await db().query<{ chunks: number }>(
      'SELECT count(*)::int AS chunks FROM blob_chunks WHERE upload_id = $1',
      [upload.id],
    );
    expect(rows[0]!.chunks).toBeGreaterThanOrEqual(4);

    // Another process puts the same content: it succeeds and reads back.
    const again = await start('put', env).result;
    expect(again).toMatchObject({ sha256: expected, expectedSha256: expected, sizeBytes: size });
    const read = await drain(await store.get(tenant, expected));
    expect(read.error).toBeUndefined();
    expect(sha256(read.bytes)).toBe(expected);

    // The killed upload is an orphan: not yet an hour idle, so retention keeps it; once it is, retention removes it.
    const ageMs = 7 * 24 * 3_600_000;
    expect(await sweepBlobs(db(), store, { ageMs, tenantId: tenant })).toMatchObject({ uploadsRemoved: 0 });
    await db().query(`UPDATE blob_uploads SET active_at = now() - interval '2 hours' WHERE id = $1`, [upload.id]);
    const swept = await sweepBlobs(db(), store, { ageMs, tenantId: tenant });
    // (The retention workflow of another test file, sweeping every tenant, may have come first.)
    expect(swept).toMatchObject({ blobsRemoved: 0 });
    if (swept.uploadsRemoved) expect(swept.uploadBytesRemoved).toBeGreaterThanOrEqual(4 * 256 * 1024);
    const gone = await db().query('SELECT 1 FROM blob_chunks WHERE upload_id = $1', [upload.id]);
    expect(gone.rowCount).toBe(0);
    const audited = await db().query<{ payload: { uploadId: string } }>(
      `SELECT payload FROM audit_events WHERE tenant_id = $1 AND action = 'blob.upload_removed'`,
      [tenant],
    );
    expect(audited.rows.map((r) => r.payload.uploadId)).toEqual([upload.id]);
    // The blob itself is untouched.
    expect(await store.head(tenant, expected)).toMatchObject({ sizeBytes: size });
  }, 120_000);
});
