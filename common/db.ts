/**
 * PostgreSQL: the pool factory, database creation, and versioned migrations (node-pg-migrate, files in migrations/).
 */
import path from 'node:path';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import { PROJECT_ROOT } from './config.js';

export type Db = pg.Pool;

export function createDb(databaseUrl: string, max = 10): Db {
  const pool = new pg.Pool({ connectionString: databaseUrl, max, connectionTimeoutMillis: 5_000 });
  // An idle client that loses its connection (database restarted) must not crash the process.
  pool.on('error', () => undefined);
  return pool;
}

/** Creates the database named in the URL when it does not exist (connecting through the `postgres` database). */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_-]+$/.test(name))
    throw new Error(`unsupported database name in DATABASE_URL: ${JSON.stringify(name)}`);
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 5_000 });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) {
      try {
        await admin.query(`CREATE DATABASE "${name}"`);
      } catch (err) {
        // Two processes may race to create it; the loser sees duplicate_database (42P04).
        if ((err as { code?: string }).code !== '42P04') throw err;
      }
    }
  } finally {
    await admin.end();
  }
}

/** Creates the database if needed and applies every pending migration. Returns the names applied now. */
export async function migrate(databaseUrl: string, log: (msg: string) => void = () => undefined): Promise<string[]> {
  await ensureDatabase(databaseUrl);
  const applied = await runner({
    databaseUrl,
    dir: path.join(PROJECT_ROOT, 'migrations'),
    direction: 'up',
    migrationsTable: 'schema_migrations',
    checkOrder: true,
    singleTransaction: true,
    log,
  });
  return applied.map((m) => m.name);
}
