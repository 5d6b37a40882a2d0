/**
 * A large model through the registry API: POST /api/v1/models/:name/versions streams an N MB ONNX file (default 100)
 * into the blob store (PostgreSQL backend) and GET …/artifact streams it back. Prints the throughput of each way and
 * the process's peak RSS growth over its baseline while the file passes (API and client share this process, so the
 * figure bounds the API's own) and its peak live memory (heap + buffers after a forced collection, sampled every
 * 500 ms), beside the claim that a 100 MB model never sits whole in the API's memory.
 *
 *   npm run bench:model-upload [-- --mb 100]      (runs node with --expose-gc)
 *
 * Needs PostgreSQL (127.0.0.1:5432, or BENCH_DATABASE_ADMIN_URL); uses a scratch database agency_bench_upload_<pid>,
 * dropped at the end. No Temporal server is needed: these routes do not touch it.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { pino } from 'pino';
import { createLazyTemporalClient, startServer, stopServer } from '../api/server.js';
import { loadConfig } from '../common/config.js';
import { createDb, migrate } from '../common/db.js';
import { bootstrapAdminKey } from '../scripts/bootstrap.js';

const mbArg = process.argv.indexOf('--mb');
const MB = mbArg > 0 ? Number(process.argv[mbArg + 1]) : 100;
const admin = process.env.BENCH_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const url = admin.replace(/\/[^/]*$/, `/agency_bench_upload_${process.pid}`);

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(sql).finally(() => client.end());
}

/** What the process holds alive: JS heap plus Buffers/ArrayBuffers, after a full collection (garbage not counted). */
function live(): number {
  global.gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/**
 * Peak RSS (sampled every 5 ms) and peak live memory (collected every 500 ms) while fn runs. RSS also counts garbage
 * not yet collected and heap the allocator keeps; live memory is what a buffered file would show up in.
 */
async function peaks<T>(fn: () => Promise<T>): Promise<{ value: T; rss: number; live: number }> {
  let rss = process.memoryUsage.rss();
  let held = live();
  const rssTimer = setInterval(() => (rss = Math.max(rss, process.memoryUsage.rss())), 5);
  const liveTimer = setInterval(() => (held = Math.max(held, live())), 500);
  try {
    const value = await fn();
    return { value, rss: Math.max(rss, process.memoryUsage.rss()), live: Math.max(held, live()) };
  } finally {
    clearInterval(rssTimer);
    clearInterval(liveTimer);
  }
}

/** N MiB of deterministic pseudo-random bytes, 1 MiB at a time (the file never exists whole here either). */
function body(mb: number, digest: ReturnType<typeof createHash>): Readable {
  const chunk = Buffer.alloc(1024 * 1024);
  return Readable.from(
    (function* () {
      for (let i = 0; i < mb; i++) {
        for (let o = 0; o < chunk.length; o += 4) chunk.writeUInt32LE((i * 2654435761 + o * 40503) >>> 0, o);
        const copy = Buffer.from(chunk);
        digest.update(copy);
        yield copy;
      }
    })(),
  );
}

/** node:http with stream backpressure on both ends (fetch's Readable.toWeb bridge reads ahead without limit). */
function request(
  url: string,
  opts: http.RequestOptions,
  send?: Readable,
  sink?: (chunk: Buffer) => void,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, opts, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (sink ? sink(chunk) : (text += chunk.toString())));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (send) pipeline(send, req).catch(reject);
    else req.end();
  });
}

async function main(): Promise<void> {
  const dbName = new URL(url).pathname.slice(1);
  await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await migrate(url);
  const config = loadConfig({
    DATABASE_URL: url,
    TEMPORAL_ADDRESS: '127.0.0.1:1',
    LOG_LEVEL: 'silent',
    MODEL_UPLOAD_MAX_BYTES: String((MB + 1) * 1024 * 1024),
    RATE_LIMIT_PER_MINUTE: '1000',
  });
  const db = createDb(url);
  const temporal = await createLazyTemporalClient(config);
  const server = await startServer({ temporal, db, config, log: pino({ level: 'silent' }) }, 0, '127.0.0.1');
  try {
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const key = await bootstrapAdminKey(db, config.BOOTSTRAP_TENANT, 'bench-upload');
    if (!global.gc) throw new Error('run with node --expose-gc (npm run bench:model-upload does)');
    const baseLive = live();
    const baseline = process.memoryUsage.rss();
    const sent = createHash('sha256');
    const up = await peaks(async () => {
      const started = performance.now();
      const res = await request(
        `${base}/api/v1/models/big/versions`,
        { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/octet-stream' } },
        body(MB, sent),
      );
      if (res.status !== 201) throw new Error(`upload: ${res.status} ${res.text}`);
      return { ms: performance.now() - started, created: JSON.parse(res.text) as { artifact: { sha256: string } } };
    });
    const received = createHash('sha256');
    const down = await peaks(async () => {
      const started = performance.now();
      const res = await request(
        `${base}/api/v1/models/big/versions/1.0.0/artifact`,
        { headers: { 'x-api-key': key } },
        undefined,
        (chunk) => received.update(chunk),
      );
      if (res.status !== 200) throw new Error(`download: ${res.status}`);
      return performance.now() - started;
    });
    const digest = sent.digest('hex');
    const same = up.value.created.artifact.sha256 === digest && received.digest('hex') === digest;
    const mib = (b: number) => (b / 1024 / 1024).toFixed(1);
    console.log(
      `model file: ${MB} MiB, stored and read back ${same ? 'byte for byte (sha256 equal)' : 'WITH A MISMATCH'}`,
    );
    const line = (what: string, mibps: number, p: { rss: number; live: number }) =>
      console.log(
        `${what} ${mibps.toFixed(1)} MiB/s, peak live memory +${mib(p.live - baseLive)} MiB, peak RSS +${mib(p.rss - baseline)} MiB`,
      );
    line('upload:  ', MB / (up.value.ms / 1000), up);
    line('download:', MB / (down.value / 1000), down);
    console.log(
      `claim "a 100 MB model does not load whole into the API's memory": peak live memory +${mib(Math.max(up.live, down.live) - baseLive)} MiB for a ${MB} MiB file (API and client together)`,
    );
    if (!same) process.exitCode = 1;
  } finally {
    await stopServer(server);
    await db.end();
    await temporal.connection.close().catch(() => undefined);
    await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  }
}

await main();
