/**
 * Audit appends (common/audit.ts appendAuditEvent) against real PostgreSQL: appends per second and the p95 / p50 latency
 * of one append with 1, 8 and 32 concurrent writers, and the ratio of the throughput at 32 writers to that at 1,
 * measured in the same run on the same database.
 *
 *   npm run bench:audit [-- --seconds 5 --writers 1,8,32 --pool 32 --spread 4]
 *
 * A writer is an async loop that appends one event, waits for it, and appends the next (as an activity does); all the
 * writers of a level share one connection pool (`--pool` connections), as the activities of one worker process do.
 * A last row spreads the largest level's writers over `--spread` pools (as over that many processes: appends only
 * share a transaction within one pool), each with its share of the connections; `--spread 1` leaves it out.
 * Every event is for the tenant `default` with an idempotency key of its own (the shape the activities write), so the
 * idempotency look-up is measured too. After each level the whole chain is verified (verifyAuditChain) and a
 * checkpoint is signed (createCheckpoint): a faster append that broke the chain would fail the bench.
 *
 * Works in a scratch database agency_bench_audit_<pid> (every migration applied) and drops it at the end.
 * Admin connection: BENCH_DATABASE_ADMIN_URL, else TEST_DATABASE_ADMIN_URL, else postgres://postgres@127.0.0.1:5432/postgres.
 * The raw figures are written as JSON to <tmpdir>/agency-bench/audit-<time>.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { appendAuditEvent, createCheckpoint, verifyAuditChain } from '../common/audit.js';
import { createDb, migrate } from '../common/db.js';
import { loadOrCreateSigningKey } from '../common/signing.js';
import { summarize } from './stats.js';
import { scratchDatabase } from './stack.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    writers: { type: 'string', default: '1,8,32' },
    pool: { type: 'string', default: '32' },
    spread: { type: 'string', default: '4' },
  },
  strict: true,
});
const seconds = Number(values.seconds);
const levels = values.writers.split(',').map(Number);
const poolSize = Number(values.pool);
if (!(seconds > 0)) throw new Error('--seconds takes a positive number');
if (!levels.every((n) => Number.isInteger(n) && n > 0)) throw new Error('--writers takes positive integers, a,b,c');
if (!Number.isInteger(poolSize) || poolSize < 1) throw new Error('--pool takes a positive integer');
const spread = Number(values.spread);
if (!Number.isInteger(spread) || spread < 1) throw new Error('--spread takes a positive integer');
const runs = [
  ...levels.map((writers) => ({ writers, pools: 1 })),
  ...(spread > 1 ? [{ writers: Math.max(...levels), pools: spread }] : []),
];
const progress = (line: string): void => void process.stderr.write(`[bench:audit] ${line}\n`);

const { adminUrl, name: dbName, url: databaseUrl, drop: dropDatabase } = scratchDatabase('audit');

interface Level {
  writers: number;
  pools: number;
  appends: number;
  seconds: number;
  perSecond: number;
  latencyMs: ReturnType<typeof summarize>;
  chainVerified: number;
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    progress(`${signal}: finishing the level and dropping the scratch database`);
  });
}

const keyDir = await mkdtemp(path.join(os.tmpdir(), 'agency-bench-audit-key-'));
const results: Level[] = [];
let failed = false;
try {
  progress(`scratch database ${dbName}`);
  await dropDatabase();
  await migrate(databaseUrl);
  const db = createDb(databaseUrl, poolSize);
  const spreadPools = Array.from({ length: spread > 1 ? spread : 0 }, () =>
    createDb(databaseUrl, Math.max(2, Math.ceil(poolSize / spread))),
  );
  const key = await loadOrCreateSigningKey(keyDir);
  try {
    // Warm the pool and the plan cache, off the clock.
    await Promise.all(
      Array.from({ length: Math.min(poolSize, 8) }, (_, i) =>
        appendAuditEvent(db, { tenantId: 'default', actor: 'system', action: 'bench.warmup', payload: { i } }),
      ),
    );
    for (const { writers, pools } of runs) {
      if (interrupted) break;
      progress(`${writers} writer(s) on ${pools} pool(s) for ${seconds} s`);
      const latencies: number[] = [];
      const started = performance.now();
      const until = started + seconds * 1000;
      await Promise.all(
        Array.from({ length: writers }, async (_, w) => {
          for (let i = 0; performance.now() < until && !interrupted; i++) {
            const t0 = performance.now();
            await appendAuditEvent(pools === 1 ? db : spreadPools[w % pools]!, {
              tenantId: 'default',
              actor: 'worker:execution',
              action: 'bench.append',
              subject: `writer-${w}`,
              workflowId: `bench-${writers}-${pools}-${w}`,
              idempotencyKey: `bench-${process.pid}-${writers}-${pools}-${w}-${i}`,
              payload: { writer: w, i, note: 'x'.repeat(64) },
            });
            latencies.push(performance.now() - t0);
          }
        }),
      );
      const elapsed = (performance.now() - started) / 1000;
      const verified = await verifyAuditChain(db);
      if (!verified.ok) throw new Error(`the chain does not verify after ${writers} writer(s): ${verified.reason}`);
      if (!(await createCheckpoint(db, key))) throw new Error('no checkpoint was signed');
      results.push({
        writers,
        pools,
        appends: latencies.length,
        seconds: elapsed,
        perSecond: latencies.length / elapsed,
        latencyMs: summarize(latencies),
        chainVerified: verified.count,
      });
    }
  } finally {
    await db.end();
    for (const pool of spreadPools) await pool.end();
  }
} catch (err) {
  failed = true;
  progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
} finally {
  await dropDatabase().catch((err: unknown) => progress(`could not drop ${dbName}: ${String(err)}`));
  await rm(keyDir, { recursive: true, force: true });
}

const fmt = (n: number, digits = 1): string => n.toFixed(digits);
console.log(`audit appends, PostgreSQL ${new URL(adminUrl).host}, ${seconds} s per level, pool of ${poolSize}`);
console.log('writers  pools  appends   appends/s   p50 ms   p95 ms   max ms   chain verified');
for (const r of results) {
  console.log(
    `${String(r.writers).padStart(7)}  ${String(r.pools).padStart(5)}  ${String(r.appends).padStart(7)}  ${fmt(r.perSecond).padStart(10)}  ${fmt(r.latencyMs.p50, 2).padStart(7)}  ${fmt(r.latencyMs.p95, 2).padStart(7)}  ${fmt(r.latencyMs.max, 2).padStart(7)}   ${r.chainVerified} events`,
  );
}
const onePool = results.filter((r) => r.pools === 1);
const one = onePool.find((r) => r.writers === 1);
const top = onePool.reduce<Level | undefined>((a, r) => (!a || r.writers > a.writers ? r : a), undefined);
if (one && top && top !== one) {
  console.log(
    `throughput at ${top.writers} writers / at 1 writer: ${fmt(top.perSecond / one.perSecond, 2)}× (target ≥ 4×)`,
  );
  const spreadRow = results.find((r) => r.pools > 1);
  if (spreadRow) {
    console.log(
      `throughput at ${spreadRow.writers} writers on ${spreadRow.pools} pools / at 1 writer: ${fmt(spreadRow.perSecond / one.perSecond, 2)}×`,
    );
  }
}
const outDir = path.join(os.tmpdir(), 'agency-bench');
await mkdir(outDir, { recursive: true });
const out = path.join(outDir, `audit-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
await writeFile(out, JSON.stringify({ seconds, poolSize, spread, results }, null, 2));
console.log(`raw figures: ${out}`);
process.exit(failed ? 1 : 0);
