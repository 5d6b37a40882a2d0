/**
 * Creates the bootstrap tenant (BOOTSTRAP_TENANT, default `default`) if missing and a new admin API key for it, and
 * prints the key once:   npm run bootstrap [-- --name <key-name>] [--expires-in-days N]
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createApiKey, ensureTenant } from '../common/api-keys.js';
import { appendAuditEvent } from '../common/audit.js';
import { loadConfigOrExit } from '../common/config.js';
import { createDb, migrate, type Db } from '../common/db.js';

export async function bootstrapAdminKey(
  db: Db,
  tenantId: string,
  name: string,
  expiresInDays?: number,
): Promise<string> {
  await ensureTenant(db, tenantId, tenantId === 'default' ? 'Default tenant' : tenantId);
  const expiresAt = expiresInDays ? new Date(Date.now() + expiresInDays * 86_400_000).toISOString() : null;
  const created = await createApiKey(db, { tenantId, name, roles: ['admin'], expiresAt });
  await appendAuditEvent(db, {
    tenantId,
    actor: 'system',
    action: 'key.created',
    subject: created.id,
    payload: { name, roles: ['admin'], via: 'bootstrap' },
  });
  return created.key;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { name: { type: 'string', default: 'bootstrap-admin' }, 'expires-in-days': { type: 'string' } },
  });
  const config = loadConfigOrExit();
  await migrate(config.DATABASE_URL);
  const db = createDb(config.DATABASE_URL);
  const days = values['expires-in-days'] ? Number(values['expires-in-days']) : undefined;
  const key = await bootstrapAdminKey(db, config.BOOTSTRAP_TENANT, values.name, days);
  await db.end();
  process.stdout.write(`tenant: ${config.BOOTSTRAP_TENANT}\nadmin API key (shown once): ${key}\n`);
}
