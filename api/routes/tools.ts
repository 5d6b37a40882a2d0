/**
 * The MCP tool registry over HTTP. Anyone with `viewer` reads the servers a tenant sees (its own and the platform's);
 * only an `admin` registers, refreshes, enables or disables one, because a stdio server is a program the execution
 * workers run. Discovery runs as the toolDiscovery workflow on the execution pool; the API waits for its result and
 * never starts or talks to a tool server itself. Every change is audited.
 */
import { randomUUID } from 'node:crypto';
import { Router, type Response } from 'express';
import { z } from 'zod';
import {
  getServer,
  insertServer,
  listServers,
  listTools,
  ServerIdSchema,
  setServerEnabled,
  ToolServerInputSchema,
  type ToolServer,
} from '../../common/tool-registry.js';
import { queueFor } from '../../temporal/task-queues.js';
import { toolDiscoveryWorkflow, toolDiscoveryWorkflowId } from '../../workflows/tools/tool-discovery.workflow.js';
import type { AppDeps } from '../app.js';
import { conflict, notFound, validate } from '../errors.js';
import { auditByCaller, principalOf, requireRole } from '../principal.js';

export const PatchServerSchema = z.object({ enabled: z.boolean() }).strict();

function view(s: ToolServer) {
  return {
    id: s.id,
    name: s.name,
    scope: s.tenantId === null ? 'platform' : 'tenant',
    transport: s.transport,
    command: s.command,
    args: s.args,
    env_allow: s.envAllow,
    url: s.url,
    auth_secret_ref: s.authSecretRef,
    capabilities: s.capabilities,
    security_level: s.securityLevel,
    tool_levels: s.toolLevels,
    timeout_ms: s.timeoutMs,
    max_output_bytes: s.maxOutputBytes,
    max_concurrency: s.maxConcurrency,
    priority: s.priority,
    enabled: s.enabled,
    health: s.health,
    health_error: s.healthError,
    checked_at: s.checkedAt,
    created_by: s.createdBy,
    created_at: s.createdAt,
    updated_at: s.updatedAt,
  };
}

export function toolRoutes({ db, temporal, config }: AppDeps): Router {
  const router = Router();

  const load = async (res: Response, raw: string): Promise<ToolServer> => {
    const id = validate(ServerIdSchema, raw, 'params');
    const server = await getServer(db, principalOf(res).tenantId, id);
    if (!server) throw notFound(`no tool server ${id}`);
    return server;
  };

  const detail = async (server: ToolServer) => {
    const tools = (await listTools(db, [server.id])).get(server.id) ?? [];
    return {
      ...view(server),
      tools: tools.map((t) => ({
        name: t.name,
        description: t.description,
        capabilities: t.capabilities.length ? t.capabilities : server.capabilities,
        security_level: server.toolLevels[t.name] ?? server.securityLevel,
        input_schema: t.inputSchema,
      })),
    };
  };

  /** Runs discovery on the execution pool and answers with the server as it now stands. */
  const discover = async (res: Response, server: ToolServer) => {
    const tenantId = principalOf(res).tenantId;
    await temporal.workflow.execute(toolDiscoveryWorkflow, {
      workflowId: toolDiscoveryWorkflowId(server.id, randomUUID()),
      taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
      memo: { tenantId },
      args: [{ tenantId, serverId: server.id }],
    });
    return detail((await getServer(db, tenantId, server.id))!);
  };

  const audit = (res: Response, action: string, subject: string, payload: Record<string, unknown>) =>
    auditByCaller(db, res, action, subject, payload);

  router.get('/api/v1/tools/servers', requireRole('viewer'), async (_req, res) => {
    const servers = await listServers(db, principalOf(res).tenantId);
    const tools = await listTools(
      db,
      servers.map((s) => s.id),
    );
    res.json({ items: servers.map((s) => ({ ...view(s), tool_count: tools.get(s.id)?.length ?? 0 })) });
  });

  router.post('/api/v1/tools/servers', requireRole('admin'), async (req, res) => {
    const body = validate(ToolServerInputSchema, req.body);
    const p = principalOf(res);
    const created = await insertServer(db, p.tenantId, p.subject, body);
    if (!created) throw conflict(`a tool server with id ${body.id} or name ${body.name} already exists`);
    await audit(res, 'tool_server.registered', created.id, {
      transport: created.transport,
      command: created.command,
      url: created.url,
      security_level: created.securityLevel,
      capabilities: created.capabilities,
    });
    const discovered = created.enabled ? await discover(res, created) : await detail(created);
    res.status(201).location(`/api/v1/tools/servers/${created.id}`).json(discovered);
  });

  router.get('/api/v1/tools/servers/:id', requireRole('viewer'), async (req, res) => {
    res.json(await detail(await load(res, String(req.params.id))));
  });

  router.post('/api/v1/tools/servers/:id/refresh', requireRole('admin'), async (req, res) => {
    const server = await load(res, String(req.params.id));
    const refreshed = await discover(res, server);
    await audit(res, 'tool_server.refreshed', server.id, { health: refreshed.health, tools: refreshed.tools.length });
    res.json(refreshed);
  });

  router.patch('/api/v1/tools/servers/:id', requireRole('admin'), async (req, res) => {
    const body = validate(PatchServerSchema, req.body);
    const server = await load(res, String(req.params.id));
    if (server.tenantId === null)
      throw conflict(`${server.id} is a platform server; it is configured by the operator, not per tenant`);
    const updated = await setServerEnabled(db, principalOf(res).tenantId, server.id, body.enabled);
    await audit(res, body.enabled ? 'tool_server.enabled' : 'tool_server.disabled', server.id, {});
    res.json(await detail(updated!));
  });

  return router;
}
