/**
 * Blob store throughput: put and get of one blob (default 200 MB) through each backend, each beside a reference
 * measured in the same run on the same bytes, as MB/s (1 MB = 10^6 bytes) and the ratio store / reference.
 *
 *   npm run bench:blob [-- --size-mb 200 --runs 1]
 *
 * Starts its own S3-compatible server (versitygw, common/blob-store/s3-server.ts: built once into ~/.cache/agency)
 * and a scratch database agency_bench_blob_<pid> (every migration applied), and stops / drops both at the end.
 * Admin connection: BENCH_DATABASE_ADMIN_URL, else TEST_DATABASE_ADMIN_URL, else postgres://postgres@127.0.0.1:5432/postgres.
 *
 * References:
 *   - PostgreSQL: pg-copy-streams is not a dependency, so the raw reference is the same bytes in chunks of
 *     BLOB_CHUNK_BYTES, one INSERT per chunk into a scratch table in ONE transaction (and read back by a cursor).
 *     When `psql` is on PATH, a real `COPY … FROM STDIN (FORMAT binary)` / `COPY … TO STDOUT` through psql is
 *     measured too (it includes psql's start, a few milliseconds).
 *   - S3: one plain PutObject / GetObject of the same bytes (no hashing, no temporary key, no copy).
 * Every timing includes generating the bytes (AES-CTR keystream, about 1 GB/s) on the writing side, alike for all.
 * The raw figures are written as JSON to <tmpdir>/agency-bench/blob-<time>.json.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { access, constants, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { loadConfig } from '../common/config.js';
import { createDb, migrate, type Db } from '../common/db.js';
import { startS3Server, type S3Server } from '../common/blob-store/s3-server.js';
import { s3BlobStore } from '../common/blob-store/s3.js';
import type { BlobStore } from '../common/blob-store/types.js';
import { scratchDatabase } from './stack.js';

const { values } = parseArgs({
  options: { 'size-mb': { type: 'string', default: '200' }, runs: { type: 'string', default: '1' } },
  strict: true,
});
const sizeMb = Number(values['size-mb']);
const runs = Number(values.runs);
if (!(sizeMb > 0)) throw new Error('--size-mb takes a positive number');
if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs takes a positive integer');
const size = Math.round(sizeMb * 1e6);
const progress = (line: string): void => void process.stderr.write(`[bench:blob] ${line}\n`);

// ---------------------------------------------------------------------------------------------------------------
// Data and timing

const PIECE = 256 * 1024;

/** `bytes` bytes of the seed's AES-256-CTR keystream: incompressible, produced as read, never whole in memory. */
function generated(seed: string, bytes: number): Readable {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16));
  const zeros = Buffer.alloc(PIECE);
  function* pieces(): Generator<Buffer> {
    for (let left = bytes; left > 0; left -= PIECE)
      yield cipher.update(left >= PIECE ? zeros : zeros.subarray(0, left));
  }
  return Readable.from(pieces(), { objectMode: false });
}

/** The same keystream in chunks of `chunk` bytes (the PostgreSQL reference inserts one row per chunk). */
function* generatedChunks(seed: string, bytes: number, chunk: number): Generator<Buffer> {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16));
  const zeros = Buffer.alloc(chunk);
  for (let left = bytes; left > 0; left -= chunk) yield cipher.update(left >= chunk ? zeros : zeros.subarray(0, left));
}

async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of stream as AsyncIterable<Buffer>) hash.update(c);
  return hash.digest('hex');
}

/** Reads a stream to its end, counting bytes. */
async function sink(stream: Readable): Promise<number> {
  let n = 0;
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        n += chunk.length;
        cb();
      },
    }),
  );
  return n;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
}

const mbps = (seconds: number): number => size / 1e6 / seconds;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

async function onPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, name);
    if (
      await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return candidate;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Set-up and clean-up

const cleanups: { name: string; fn: () => Promise<unknown> }[] = [];
async function cleanUp(): Promise<void> {
  while (cleanups.length) {
    const step = cleanups.pop()!;
    await step.fn().catch((err: unknown) => progress(`cleanup ${step.name}: ${(err as Error).message}`));
  }
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal}: stopping what the bench started`);
    void cleanUp().finally(() => process.exit(130));
  });
}

const { adminUrl, name: dbName, url: databaseUrl, drop: dropDatabase } = scratchDatabase('blob');

interface Row {
  backend: 'postgres' | 's3';
  op: string;
  store: number[];
  reference: string;
  ref: number[];
}
const results: Row[] = [];
const notes: string[] = [];

function record(backend: Row['backend'], op: string, reference: string, store: number, ref: number): void {
  let row = results.find((r) => r.backend === backend && r.op === op && r.reference === reference);
  if (!row) results.push((row = { backend, op, store: [], reference, ref: [] }));
  row.store.push(mbps(store));
  row.ref.push(mbps(ref));
}

try {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'agency-bench-blob-'));
  cleanups.push({ name: 'state dir', fn: () => rm(stateDir, { recursive: true, force: true }) });

  progress('starting the S3-compatible server (versitygw)');
  const s3: S3Server = await startS3Server({ dir: path.join(stateDir, 's3'), log: progress });
  cleanups.push({ name: 'S3 server', fn: () => s3.stop() });

  progress(`scratch database ${dbName}`);
  await dropDatabase();
  cleanups.push({ name: 'scratch database', fn: dropDatabase });
  await migrate(databaseUrl);
  const config = loadConfig({ DATABASE_URL: databaseUrl, BLOB_BACKEND: 'postgres' });
  const db: Db = createDb(databaseUrl, 4);
  cleanups.push({ name: 'database pool', fn: () => db.end() });
  const owner = new pg.Client({ connectionString: databaseUrl });
  await owner.connect();
  cleanups.push({ name: 'owner connection', fn: () => owner.end() });

  const bucket = 'bench-blob';
  const s3Options = {
    endpoint: s3.endpoint,
    region: s3.region,
    bucket,
    forcePathStyle: true,
    credentials: s3.credentials,
  };
  // Configured as the store's client is: without the SDK's own CRC checksums, which it would otherwise compute on
  // uploads and verify on downloads (in JavaScript, at about half the speed of a plain GetObject here).
  const raw = new S3Client({
    ...s3Options,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  cleanups.push({ name: 'S3 client', fn: () => Promise.resolve(raw.destroy()) });
  await raw.send(new CreateBucketCommand({ Bucket: bucket }));

  // The stores as the platform makes them: createBlobStore (index.ts) when it exists, with its metrics and catalog.
  let factory: ((c: typeof config, d: Db) => Promise<BlobStore>) | undefined;
  const INDEX = '../common/blob-store/index.js';
  try {
    factory = ((await import(INDEX)) as { createBlobStore: typeof factory }).createBlobStore;
  } catch (err) {
    notes.push(`common/blob-store/index.ts could not be loaded (${(err as Error).message}): PostgreSQL skipped`);
    progress(notes.at(-1)!);
  }
  const pgStore = factory ? await factory(config, db) : undefined;
  const s3Config = loadConfig({
    DATABASE_URL: databaseUrl,
    BLOB_BACKEND: 's3',
    S3_ENDPOINT: s3.endpoint,
    S3_REGION: s3.region,
    S3_BUCKET: bucket,
    S3_ACCESS_KEY_ID_REF: 'BENCH_S3_ACCESS_KEY_ID',
    S3_SECRET_ACCESS_KEY_REF: 'BENCH_S3_SECRET_ACCESS_KEY',
  });
  process.env.BENCH_S3_ACCESS_KEY_ID = s3.credentials.accessKeyId;
  process.env.BENCH_S3_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
  let s3Store: BlobStore;
  if (factory) s3Store = await factory(s3Config, db);
  else {
    const direct = s3BlobStore(s3Options);
    cleanups.push({ name: 'S3 store', fn: () => Promise.resolve(direct.close()) });
    s3Store = direct;
  }

  const chunkBytes = config.BLOB_CHUNK_BYTES;
  // Logged tables with a primary key, like the store's own chunk table: the references pay the same WAL and index.
  await owner.query('CREATE TABLE bench_raw (run int, seq int, data bytea, PRIMARY KEY (run, seq))');
  await owner.query('CREATE TABLE bench_copy (run int, seq int, data bytea, PRIMARY KEY (run, seq))');
  const psql = await onPath('psql');
  if (!psql) notes.push('psql is not on PATH: no COPY reference, only the INSERT one');

  /** COPY … FROM STDIN (FORMAT binary) through psql: the rows (run, seq, data) in PostgreSQL's binary copy format. */
  async function copyIn(run: number, seed: string): Promise<void> {
    const child = spawn(
      psql!,
      [databaseUrl, '-q', '-v', 'ON_ERROR_STOP=1', '-c', 'COPY bench_copy (run, seq, data) FROM STDIN (FORMAT binary)'],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    function* tuples(): Generator<Buffer> {
      yield Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
      let seq = 0;
      for (const chunk of generatedChunks(seed, size, chunkBytes)) {
        const head = Buffer.alloc(2 + 4 + 4 + 4 + 4 + 4);
        head.writeInt16BE(3, 0);
        head.writeInt32BE(4, 2);
        head.writeInt32BE(run, 6);
        head.writeInt32BE(4, 10);
        head.writeInt32BE(seq++, 14);
        head.writeInt32BE(chunk.length, 18);
        yield head;
        yield chunk;
      }
      yield Buffer.from([0xff, 0xff]);
    }
    await pipeline(Readable.from(tuples(), { objectMode: false }), child.stdin);
    const code = await exited;
    if (code !== 0) throw new Error(`psql COPY FROM exited with ${code}: ${stderr.trim()}`);
  }
  async function copyOut(run: number): Promise<number> {
    const child = spawn(
      psql!,
      [
        databaseUrl,
        '-q',
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        `COPY (SELECT data FROM bench_copy WHERE run = ${run} ORDER BY seq) TO STDOUT (FORMAT binary)`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const n = await sink(child.stdout);
    if ((await exited) !== 0) throw new Error('psql COPY TO failed');
    return n;
  }

  for (let run = 0; run < runs; run++) {
    progress(`run ${run + 1}/${runs}: ${sizeMb} MB`);

    if (pgStore) {
      const seed = `pg-${process.pid}-${run}`;
      let sha = '';
      const put = await timed(async () => {
        sha = (await pgStore.put('default', generated(seed, size))).sha256;
      });
      const insert = await timed(async () => {
        await owner.query('BEGIN');
        let seq = 0;
        for (const chunk of generatedChunks(seed, size, chunkBytes)) {
          await owner.query('INSERT INTO bench_raw (run, seq, data) VALUES ($1, $2, $3)', [run, seq++, chunk]);
        }
        await owner.query('COMMIT');
      });
      record('postgres', 'put', `INSERT of ${chunkBytes / 1024} KiB bytea rows, 1 transaction`, put, insert);
      if (psql) {
        record('postgres', 'put', 'COPY FROM STDIN binary (psql)', put, await timed(() => copyIn(run, seed)));
        const { rows } = await owner.query<{ n: string }>(
          'SELECT sum(length(data))::text AS n FROM bench_copy WHERE run = $1',
          [run],
        );
        if (Number(rows[0]?.n) !== size) throw new Error(`COPY stored ${rows[0]?.n} bytes, not ${size}`);
      }

      const get = await timed(async () => {
        if ((await sink(await pgStore.get('default', sha))) !== size) throw new Error('postgres get: wrong size');
      });
      const select = await timed(async () => {
        await owner.query('BEGIN');
        await owner.query('DECLARE c NO SCROLL CURSOR FOR SELECT data FROM bench_raw WHERE run = $1 ORDER BY seq', [
          run,
        ]);
        let n = 0;
        for (;;) {
          const { rows } = await owner.query<{ data: Buffer }>('FETCH 8 FROM c');
          if (!rows.length) break;
          for (const r of rows) n += r.data.length;
        }
        await owner.query('COMMIT');
        if (n !== size) throw new Error('postgres reference read: wrong size');
      });
      record('postgres', 'get', `SELECT of the bytea rows (cursor, 8 rows a fetch)`, get, select);
      if (psql) record('postgres', 'get', 'COPY TO STDOUT binary (psql)', get, await timed(() => copyOut(run)));
    }

    {
      const seed = `s3-${process.pid}-${run}`;
      let sha = '';
      const put = await timed(async () => {
        sha = (await s3Store.put('default', generated(seed, size))).sha256;
      });
      const key = `reference/${seed}`;
      const putObject = await timed(() =>
        raw.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: generated(seed, size), ContentLength: size })),
      );
      record('s3', 'put (digest unknown: temporary key + copy)', 'one PutObject', put, putObject);

      const knownSeed = `s3-known-${process.pid}-${run}`;
      const known = await sha256Of(generated(knownSeed, size)); // untimed
      const putKnown = await timed(() => s3Store.put('default', generated(knownSeed, size), { expectedSha256: known }));
      const knownKey = `reference/${knownSeed}`;
      const putObjectKnown = await timed(() =>
        raw.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: knownKey,
            Body: generated(knownSeed, size),
            ContentLength: size,
          }),
        ),
      );
      record('s3', 'put (digest known: straight to its key)', 'one PutObject', putKnown, putObjectKnown);

      const get = await timed(async () => {
        if ((await sink(await s3Store.get('default', sha))) !== size) throw new Error('s3 get: wrong size');
      });
      const getObject = await timed(async () => {
        const res = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        if ((await sink(res.Body as Readable)) !== size) throw new Error('s3 reference read: wrong size');
      });
      record('s3', 'get', 'one GetObject', get, getObject);
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Report

  const header = ['backend', 'operation', 'store MB/s', 'reference', 'reference MB/s', 'store/reference'];
  const rows = results.map((r) => {
    const s = median(r.store);
    const ref = median(r.ref);
    return [r.backend, r.op, s.toFixed(1), r.reference, ref.toFixed(1), `${(s / ref).toFixed(2)}`];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
  process.stdout.write(
    [
      `blob store throughput: ${sizeMb} MB (1 MB = 10^6 bytes), median of ${runs} run(s), ${os.cpus().length} CPUs`,
      `S3: versitygw at ${s3.endpoint} (POSIX backend on ${os.tmpdir()}); PostgreSQL: ${new URL(adminUrl).host}, ` +
        `chunks of ${chunkBytes / 1024} KiB`,
      line(header),
      widths.map((w) => '-'.repeat(w)).join('-|-'),
      ...rows.map(line),
      ...notes.map((n) => `note: ${n}`),
      '',
    ].join('\n'),
  );

  const outDir = path.join(os.tmpdir(), 'agency-bench');
  await mkdir(outDir, { recursive: true });
  const outFile = path.join(outDir, `blob-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(
    outFile,
    JSON.stringify(
      {
        sizeBytes: size,
        runs,
        cpus: os.cpus().length,
        s3Server: 'versitygw',
        chunkBytes,
        notes,
        results: results.map((r) => ({
          backend: r.backend,
          operation: r.op,
          reference: r.reference,
          storeMBps: r.store,
          referenceMBps: r.ref,
          ratio: median(r.store) / median(r.ref),
        })),
      },
      null,
      2,
    ),
  );
  process.stdout.write(`raw figures: ${outFile}\n`);
} finally {
  await cleanUp();
}
