/**
 * The MCP tool registry in PostgreSQL (migrations/0004_tool_registry.sql): servers, their discovered tools, health,
 * and capability matching. Read by the execution pool and the API; written by discovery (activities) and the API.
 */
import { z } from 'zod';
import type { Db } from './db.js';
import { levelRank, SECURITY_LEVELS, type SecurityLevel } from '../workflows/execution/tools.js';

export const ServerIdSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes');
const Capability = z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/, 'capability tags look like fs.read');

/** A server as an admin registers it (POST /api/v1/tools/servers). */
export const ToolServerInputSchema = z
  .object({
    id: ServerIdSchema,
    name: z.string().trim().min(1).max(100),
    transport: z.enum(['stdio', 'http']),
    command: z.string().min(1).max(1024).optional(),
    args: z.array(z.string().max(4096)).max(128).default([]),
    env_allow: z
      .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/))
      .max(64)
      .default([]),
    url: z.url({ protocol: /^https?$/ }).optional(),
    auth_secret_ref: z
      .string()
      .regex(/^[A-Z][A-Z0-9_]{0,127}$/, 'the name of an environment variable of the execution workers')
      .optional(),
    capabilities: z.array(Capability).max(64).default([]),
    security_level: z.enum(SECURITY_LEVELS),
    tool_levels: z.record(z.string().min(1).max(128), z.enum(SECURITY_LEVELS)).default({}),
    timeout_ms: z.number().int().min(100).max(3_600_000).default(120_000),
    max_output_bytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(1024 * 1024),
    max_concurrency: z.number().int().min(1).max(256).default(4),
    priority: z.number().int().min(0).max(10_000).default(100),
    enabled: z.boolean().default(true),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.transport === 'stdio' && (!s.command || s.url))
      ctx.addIssue({ code: 'custom', path: ['command'], message: 'a stdio server has a command and no url' });
    if (s.transport === 'http' && (!s.url || s.command || s.args.length || s.env_allow.length))
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'an http server has a url and no command, args or env' });
  });
export type ToolServerInput = z.infer<typeof ToolServerInputSchema>;

export interface ToolServer {
  id: string;
  tenantId: string | null;
  name: string;
  transport: 'stdio' | 'http';
  command: string | null;
  args: string[];
  envAllow: string[];
  url: string | null;
  authSecretRef: string | null;
  capabilities: string[];
  securityLevel: SecurityLevel;
  toolLevels: Record<string, SecurityLevel>;
  timeoutMs: number;
  maxOutputBytes: number;
  maxConcurrency: number;
  priority: number;
  enabled: boolean;
  health: 'unknown' | 'healthy' | 'unhealthy';
  healthError: string | null;
  checkedAt: string | null;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

export interface DiscoveredTool {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
  capabilities: string[];
}

interface ServerRow {
  id: string;
  tenant_id: string | null;
  name: string;
  transport: 'stdio' | 'http';
  command: string | null;
  args: string[];
  env_allow: string[];
  url: string | null;
  auth_secret_ref: string | null;
  capabilities: string[];
  security_level: SecurityLevel;
  tool_levels: Record<string, SecurityLevel>;
  timeout_ms: number;
  max_output_bytes: number;
  max_concurrency: number;
  priority: number;
  enabled: boolean;
  health: ToolServer['health'];
  health_error: string | null;
  checked_at: Date | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
}

function fromRow(r: ServerRow): ToolServer {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    transport: r.transport,
    command: r.command,
    args: r.args,
    envAllow: r.env_allow,
    url: r.url,
    authSecretRef: r.auth_secret_ref,
    capabilities: r.capabilities,
    securityLevel: r.security_level,
    toolLevels: r.tool_levels,
    timeoutMs: r.timeout_ms,
    maxOutputBytes: r.max_output_bytes,
    maxConcurrency: r.max_concurrency,
    priority: r.priority,
    enabled: r.enabled,
    health: r.health,
    healthError: r.health_error,
    checkedAt: r.checked_at?.toISOString() ?? null,
    createdBy: r.created_by,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  };
}

/** Servers a tenant sees: its own and the platform's (tenant NULL). */
const VISIBLE = '(tenant_id = $1 OR tenant_id IS NULL)';

export async function listServers(db: Db, tenantId: string): Promise<ToolServer[]> {
  const { rows } = await db.query<ServerRow>(`SELECT * FROM tool_servers WHERE ${VISIBLE} ORDER BY priority, id`, [
    tenantId,
  ]);
  return rows.map(fromRow);
}

export async function getServer(db: Db, tenantId: string, id: string): Promise<ToolServer | undefined> {
  const { rows } = await db.query<ServerRow>(`SELECT * FROM tool_servers WHERE ${VISIBLE} AND id = $2`, [tenantId, id]);
  return rows[0] && fromRow(rows[0]);
}

/** Inserts a tenant's server; undefined when the id or the name is taken. */
export async function insertServer(
  db: Db,
  tenantId: string,
  createdBy: string,
  s: ToolServerInput,
): Promise<ToolServer | undefined> {
  const { rows } = await db.query<ServerRow>(
    `INSERT INTO tool_servers (id, tenant_id, name, transport, command, args, env_allow, url, auth_secret_ref,
                               capabilities, security_level, tool_levels, timeout_ms, max_output_bytes,
                               max_concurrency, priority, enabled, created_by)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)
     ON CONFLICT DO NOTHING RETURNING *`,
    [
      s.id,
      tenantId,
      s.name,
      s.transport,
      s.command ?? null,
      JSON.stringify(s.args),
      s.env_allow,
      s.url ?? null,
      s.auth_secret_ref ?? null,
      s.capabilities,
      s.security_level,
      JSON.stringify(s.tool_levels),
      s.timeout_ms,
      s.max_output_bytes,
      s.max_concurrency,
      s.priority,
      s.enabled,
      createdBy,
    ],
  );
  return rows[0] && fromRow(rows[0]);
}

/** Enables or disables a tenant's server (the platform's servers are changed by migrations, not tenants). */
export async function setServerEnabled(
  db: Db,
  tenantId: string,
  id: string,
  enabled: boolean,
): Promise<ToolServer | undefined> {
  const { rows } = await db.query<ServerRow>(
    'UPDATE tool_servers SET enabled = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING *',
    [tenantId, id, enabled],
  );
  return rows[0] && fromRow(rows[0]);
}

export async function listTools(db: Db, serverIds: string[]): Promise<Map<string, DiscoveredTool[]>> {
  const { rows } = await db.query<{
    server_id: string;
    name: string;
    description: string;
    input_schema: Record<string, unknown>;
    capabilities: string[];
  }>('SELECT * FROM tool_server_tools WHERE server_id = ANY($1) ORDER BY server_id, name', [serverIds]);
  const byServer = new Map<string, DiscoveredTool[]>();
  for (const r of rows) {
    const list = byServer.get(r.server_id) ?? [];
    list.push({ name: r.name, description: r.description, inputSchema: r.input_schema, capabilities: r.capabilities });
    byServer.set(r.server_id, list);
  }
  return byServer;
}

/** Replaces a server's discovered tools and marks it healthy, in one transaction. */
export async function storeDiscovery(db: Db, serverId: string, tools: DiscoveredTool[]): Promise<void> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    // One discovery at a time per server: concurrent ones (two workers, a list_changed) would collide on the rows.
    await client.query('SELECT 1 FROM tool_servers WHERE id = $1 FOR UPDATE', [serverId]);
    await client.query('DELETE FROM tool_server_tools WHERE server_id = $1', [serverId]);
    for (const t of tools) {
      await client.query(
        `INSERT INTO tool_server_tools (server_id, name, description, input_schema, capabilities)
         VALUES ($1,$2,$3,$4,$5)`,
        [serverId, t.name, t.description, JSON.stringify(t.inputSchema), t.capabilities],
      );
    }
    await client.query(
      `UPDATE tool_servers SET health = 'healthy', health_error = NULL, checked_at = now() WHERE id = $1`,
      [serverId],
    );
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export async function markUnhealthy(db: Db, serverId: string, error: string): Promise<void> {
  await db.query(`UPDATE tool_servers SET health = 'unhealthy', health_error = $2, checked_at = now() WHERE id = $1`, [
    serverId,
    error.slice(0, 4000),
  ]);
}

/** A tool as a candidate for a step: its server, effective level and capabilities. */
export interface Candidate {
  server: ToolServer;
  tool: DiscoveredTool;
  level: SecurityLevel;
  capabilities: string[];
}

/** The level the operator set for a tool, else its server's: what a server claims about itself is not trusted. */
export function toolLevel(server: ToolServer, tool: string): SecurityLevel {
  return server.toolLevels[tool] ?? server.securityLevel;
}

/** A tool's capabilities: what it declares (`_meta['agency/capabilities']`), else its server's tags. */
export function toolCapabilities(server: ToolServer, tool: DiscoveredTool): string[] {
  return tool.capabilities.length ? tool.capabilities : server.capabilities;
}

/**
 * Every enabled, healthy-or-unknown tool visible to the tenant that has all the capabilities (and the name or server
 * when given), best first: lower server priority, then lower level, then name.
 */
export async function findCandidates(
  db: Db,
  tenantId: string,
  want: { capabilities: string[]; tool?: string; server?: string },
): Promise<{ candidates: Candidate[]; considered: ToolServer[] }> {
  // considered: every server the tenant sees, for the error that explains a missing match.
  const all = await listServers(db, tenantId);
  const servers = all.filter((s) => s.enabled && s.health !== 'unhealthy');
  const tools = await listTools(
    db,
    servers.map((s) => s.id),
  );
  const candidates: Candidate[] = [];
  for (const server of servers) {
    if (want.server && server.id !== want.server) continue;
    for (const tool of tools.get(server.id) ?? []) {
      if (want.tool && tool.name !== want.tool) continue;
      const capabilities = toolCapabilities(server, tool);
      if (!want.capabilities.every((c) => capabilities.includes(c))) continue;
      candidates.push({ server, tool, level: toolLevel(server, tool.name), capabilities });
    }
  }
  candidates.sort(
    (a, b) =>
      a.server.priority - b.server.priority ||
      levelRank(a.level) - levelRank(b.level) ||
      a.server.id.localeCompare(b.server.id) ||
      a.tool.name.localeCompare(b.tool.name),
  );
  return { candidates, considered: all };
}
