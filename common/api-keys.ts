/**
 * Tenants and API keys. A key is `ak_<prefix>_<secret>` (32 random bytes): shown once, stored as the SHA-256 of the
 * whole key (the keys are high-entropy random, so a fast hash is the right tool; nothing to salt or stretch), with its
 * tenant, roles, optional expiry, revocation and last-used time.
 */
import { randomBytes } from 'node:crypto';
import type { Db } from './db.js';
import { sha256Hex } from './hash.js';

export const ROLES = ['viewer', 'operator', 'approver', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface KeyPrincipal {
  keyId: string;
  tenantId: string;
  name: string;
  roles: Role[];
}

export interface ApiKeyView {
  id: string;
  tenantId: string;
  name: string;
  prefix: string;
  roles: Role[];
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

const KEY_PATTERN = /^ak_([A-Za-z0-9]{8})_([A-Za-z0-9_-]{43})$/;

interface KeyRow {
  id: string;
  tenant_id: string;
  name: string;
  key_prefix: string;
  roles: Role[];
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

function view(r: KeyRow): ApiKeyView {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    prefix: r.key_prefix,
    roles: r.roles,
    createdAt: r.created_at.toISOString(),
    expiresAt: r.expires_at?.toISOString() ?? null,
    revokedAt: r.revoked_at?.toISOString() ?? null,
    lastUsedAt: r.last_used_at?.toISOString() ?? null,
  };
}

export async function ensureTenant(db: Db, id: string, name: string): Promise<boolean> {
  const { rowCount } = await db.query('INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING', [
    id,
    name,
  ]);
  return rowCount === 1;
}

export async function tenantExists(db: Db, id: string): Promise<boolean> {
  return ((await db.query('SELECT 1 FROM tenants WHERE id = $1', [id])).rowCount ?? 0) > 0;
}

/** Creates a key and returns it with its secret: the only time the secret exists outside the caller's hands. */
export async function createApiKey(
  db: Db,
  input: { tenantId: string; name: string; roles: Role[]; expiresAt?: string | null },
): Promise<ApiKeyView & { key: string }> {
  const prefix = randomBytes(6).toString('base64url').replace(/[-_]/g, 'x').slice(0, 8);
  const key = `ak_${prefix}_${randomBytes(32).toString('base64url')}`;
  const { rows } = await db.query<KeyRow>(
    `INSERT INTO api_keys (tenant_id, name, key_prefix, key_hash, roles, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
    [input.tenantId, input.name, prefix, sha256Hex(key), input.roles, input.expiresAt ?? null],
  );
  return { ...view(rows[0]!), key };
}

const lastRecorded = new Map<string, number>();

/**
 * Records a key's last use at most once a minute per key and process. A burst of requests with one key would
 * otherwise queue up behind each other's UPDATE of the same row, a commit each.
 */
async function recordUse(db: Db, keyId: string): Promise<void> {
  const now = Date.now();
  if (now - (lastRecorded.get(keyId) ?? 0) < 60_000) return;
  lastRecorded.set(keyId, now);
  await db.query(
    `UPDATE api_keys SET last_used_at = now()
     WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
    [keyId],
  );
}

/** The principal behind a key, or the reason it is refused. Records the last use (at most once a minute). */
export async function authenticateKey(
  db: Db,
  key: string,
): Promise<{ ok: true; principal: KeyPrincipal } | { ok: false; reason: string }> {
  if (!KEY_PATTERN.test(key)) return { ok: false, reason: 'malformed API key' };
  const { rows } = await db.query<KeyRow>('SELECT * FROM api_keys WHERE key_hash = $1', [sha256Hex(key)]);
  const row = rows[0];
  if (!row) return { ok: false, reason: 'unknown API key' };
  if (row.revoked_at) return { ok: false, reason: 'API key revoked' };
  if (row.expires_at && row.expires_at.getTime() <= Date.now()) return { ok: false, reason: 'API key expired' };
  if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > 60_000) await recordUse(db, row.id);
  return { ok: true, principal: { keyId: row.id, tenantId: row.tenant_id, name: row.name, roles: row.roles } };
}

export async function listApiKeys(db: Db, tenantId: string): Promise<ApiKeyView[]> {
  const { rows } = await db.query<KeyRow>('SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at', [
    tenantId,
  ]);
  return rows.map(view);
}

export async function revokeApiKey(db: Db, tenantId: string, id: string): Promise<ApiKeyView | undefined> {
  const { rows } = await db.query<KeyRow>(
    'UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE tenant_id = $1 AND id = $2 RETURNING *',
    [tenantId, id],
  );
  return rows[0] && view(rows[0]);
}
