/**
 * PostgreSQL: the pool factory, database creation, and versioned migrations (node-pg-migrate, files in migrations/).
 */
import path from 'node:path';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import { PROJECT_ROOT } from './config.js';

export type Db = pg.Pool;

/**
 * The role the application's queries run as (migrations/0003_audit_hardening.sql): it may read and write the
 * platform's tables, but only insert into the audit trail, its checkpoints and the signing keys.
 *
 * Production: DATABASE_URL names a dedicated LOGIN role that is a member of agency_app (or agency_app itself, given
 * LOGIN), and migrations run separately as the owner. Fallback, used when DATABASE_URL names the owner or a superuser
 * (dev, tests): every pooled connection switches to agency_app with SET ROLE. That holds the application to the
 * role's privileges, but SQL running on the connection could RESET ROLE, so the dedicated login role is stronger.
 */
export const APP_ROLE = 'agency_app';

export interface DbOptions {
  /** The role each new connection switches to (default APP_ROLE); null keeps the login role (migrations, tests). */
  role?: string | null;
}

/**
 * Switches a new connection to `role`, when this database grants that role its privileges (migration 0003 applied)
 * and the login role may assume it. Otherwise the connection keeps the login role: a database before migrate (the
 * role may not exist yet, or exist for another database of the cluster but hold no grants here), or a dedicated login
 * role that is not a member and has its own grants. One round trip; an error fails the connection (fail closed).
 */
async function assumeRole(client: pg.ClientBase, role: string): Promise<void> {
  await client.query(
    `SELECT set_config('role', r.rolname, false)
       FROM pg_roles r
      WHERE r.rolname = $1
        AND r.rolname <> current_user
        AND pg_has_role(current_user, r.oid, 'MEMBER')
        AND EXISTS (SELECT 1 FROM pg_class c
                     WHERE c.oid = to_regclass('public.audit_events') AND has_table_privilege(r.oid, c.oid, 'INSERT'))`,
    [role],
  );
}

export function createDb(databaseUrl: string, max = 10, { role = APP_ROLE }: DbOptions = {}): Db {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max,
    connectionTimeoutMillis: 5_000,
    // pg-pool awaits onConnect before handing the connection out, and fails the checkout if it rejects (its type
    // says void, the implementation takes a promise).
    // eslint-disable-next-line @typescript-eslint/no-misused-promises
    ...(role ? { onConnect: (client: pg.ClientBase) => assumeRole(client, role) } : {}),
  });
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
