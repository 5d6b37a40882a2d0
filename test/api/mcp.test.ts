/**
 * The MCP server at /mcp on the real stack, through the SDK's own client over Streamable HTTP: the tools, a strict
 * task approved through MCP, its diff and its resource; per-tool roles (a refused call is a tool error, never data),
 * tenant isolation, 401 before any MCP without a key, 405 for GET/DELETE, and the same answers as the REST routes.
 */
import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, ensureTenant, type Role } from '../../common/api-keys.js';
import type { PendingApprovalItem, TaskAccepted, TaskView } from '../../api/task-service.js';
import { eventually, json, sampleRepo, useStack, type RunningApi } from '../helpers/stack.js';
import { calculatorSpec } from '../helpers/tasks.js';

type ToolResult = {
  isError?: boolean;
  content: { type: string; text?: string }[];
  structuredContent?: Record<string, unknown>;
};

describe('the MCP server at /mcp', () => {
  let api: RunningApi;
  const keys = {} as Record<Role | 'otherTenant', string>;
  const clients: Client[] = [];

  /** An MCP client of the API, authenticated with the given key. */
  async function connect(key: string): Promise<Client> {
    const client = new Client({ name: 'mcp-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${api.url}/mcp`), { requestInit: { headers: { 'x-api-key': key } } }),
    );
    clients.push(client);
    return client;
  }
  const call = async (client: Client, name: string, args: Record<string, unknown>): Promise<ToolResult> =>
    (await client.callTool({ name, arguments: args })) as ToolResult;
  const data = <T>(result: ToolResult): T => {
    expect(result.isError, result.content[0]?.text).toBeFalsy();
    return result.structuredContent as T;
  };

  useStack((stack) => ({ api } = stack));
  beforeAll(async () => {
    for (const role of ['viewer', 'operator', 'approver', 'admin'] as const) {
      keys[role] = (await createApiKey(api.db, { tenantId: 'default', name: `mcp-${role}`, roles: [role] })).key;
    }
    const tenant = `mcp-${randomUUID().slice(0, 8)}`;
    await ensureTenant(api.db, tenant, 'Another tenant');
    keys.otherTenant = (await createApiKey(api.db, { tenantId: tenant, name: 'other-admin', roles: ['admin'] })).key;
  });
  afterAll(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
  });

  it('when a client lists the tools, then it finds the task tools with their input schemas', async () => {
    const client = await connect(keys.viewer);
    expect(client.getServerVersion()?.name).toBe('agent-agency');
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(
      [
        'approve_task',
        'get_artifact',
        'get_task',
        'list_artifacts',
        'list_pending_approvals',
        'list_tasks',
        'reject_task',
        'start_task',
      ].sort(),
    );
    const start = tools.find((t) => t.name === 'start_task')!;
    // A task names a registered repository (or, during migration, a local workspace): neither is required alone.
    expect(start.inputSchema.required).toEqual(expect.arrayContaining(['title']));
    expect(Object.keys(start.inputSchema.properties ?? {})).toEqual(
      expect.arrayContaining(['repository', 'ref', 'workspace']),
    );
    expect(Object.keys(start.inputSchema.properties ?? {})).toEqual(
      expect.arrayContaining(['spec', 'mode', 'budgets', 'workspace']),
    );
    const approve = tools.find((t) => t.name === 'approve_task')!;
    expect(approve.inputSchema.required).toEqual(expect.arrayContaining(['id', 'hash']));
    expect(approve.description).toContain('approver role');
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((t) => t.uriTemplate)).toContain('agency://tasks/{id}');
  });

  it('when a strict task is started, listed as pending, approved and read through MCP, then roles and tenants hold as in REST', async () => {
    const operator = await connect(keys.operator);
    const viewer = await connect(keys.viewer);
    const approver = await connect(keys.approver);
    const other = await connect(keys.otherTenant);

    // Invalid input is a tool error, and nothing starts.
    const invalid = await call(operator, 'start_task', { title: 'x', workspace: 'relative/path' });
    expect(invalid.isError).toBe(true);
    expect(invalid.content[0]!.text).toMatch(/workspace/);

    // A viewer may not start tasks: a tool error naming the role, no data.
    const refusedStart = await call(viewer, 'start_task', {
      title: 'Not mine to start',
      workspace: await sampleRepo(),
    });
    expect(refusedStart).toMatchObject({
      isError: true,
      content: [{ type: 'text', text: 'forbidden: needs role operator' }],
    });

    const started = data<TaskAccepted>(
      await call(operator, 'start_task', {
        title: 'Approve me over MCP',
        workspace: await sampleRepo(),
        mode: 'strict',
        spec: calculatorSpec(),
      }),
    );
    expect(started).toMatchObject({ status: 'pending', workflowId: `task-${started.id}` });
    const id = started.id;

    const pending = await eventually(
      async () => {
        const page = data<{ items: PendingApprovalItem[] }>(await call(viewer, 'list_pending_approvals', {}));
        return page.items.find((i) => i.id === id);
      },
      { timeoutMs: 60_000, what: `task ${id} to be listed as awaiting approval` },
    );
    expect(pending).toMatchObject({ status: 'awaiting_approval', kind: 'plan' });
    expect(pending.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(pending.hash).toBe(pending.planHash);

    // Not the viewer's or the operator's decision to make.
    for (const client of [viewer, operator]) {
      const refused = await call(client, 'approve_task', { id, hash: pending.hash });
      expect(refused.isError).toBe(true);
      expect(refused.content).toEqual([{ type: 'text', text: 'forbidden: needs role approver' }]);
    }
    // Another tenant cannot see, list or decide it: not found, as over REST.
    const foreign = await call(other, 'get_task', { id });
    expect(foreign).toMatchObject({ isError: true, content: [{ text: `not found: no task ${id}` }] });
    expect(JSON.stringify(foreign)).not.toContain(pending.hash);
    expect((await call(other, 'approve_task', { id, hash: pending.hash })).content[0]!.text).toBe(
      `not found: no task ${id}`,
    );
    const otherPending = data<{ items: PendingApprovalItem[] }>(await call(other, 'list_pending_approvals', {}));
    expect(otherPending.items.map((i) => i.id)).not.toContain(id);
    await expect(other.readResource({ uri: `agency://tasks/${id}` })).rejects.toThrow(/not found/);
    expect((await other.listResources()).resources.map((r) => r.uri)).not.toContain(`agency://tasks/${id}`);

    // A stale hash is refused with the workflow's reason; the current one is accepted.
    const stale = await call(approver, 'approve_task', { id, hash: 'f'.repeat(64) });
    expect(stale.isError).toBe(true);
    expect(stale.content[0]!.text).toMatch(/^conflict: .*stale/);
    const approved = data<{ id: string; accepted: boolean }>(
      await call(approver, 'approve_task', { id, hash: pending.hash, reason: 'looks right (MCP)' }),
    );
    expect(approved).toMatchObject({ id, accepted: true });

    const done = await eventually(
      async () => {
        const task = data<TaskView>(await call(viewer, 'get_task', { id }));
        return task.temporalStatus !== 'RUNNING' ? task : undefined;
      },
      { timeoutMs: 90_000, what: `task ${id} to end` },
    );
    expect(done.status).toBe('completed');
    expect(done.result!.approvals.filter((a) => a.accepted).map((a) => a.approver)).toEqual(['user:mcp-approver']);

    // REST and MCP answer the same record.
    const rest = await api.fetch(`/api/v1/tasks/${id}`, { headers: { 'x-api-key': keys.viewer } });
    expect(await json(rest)).toEqual(done);

    // The diff, as text.
    const diffSha = done.result!.diffRef!.sha256;
    const diff = await call(viewer, 'get_artifact', { task_id: id, sha256: diffSha });
    expect(diff.isError).toBeFalsy();
    expect(diff.content[0]!.text).toContain('+  return sum(values) / values.length;');
    expect(diff.content[0]!.text).toContain('-  return sum(values) / (values.length - 1);');
    expect(diff.structuredContent).toMatchObject({ sha256: diffSha, encoding: 'utf-8', truncated: false });
    const listed = data<{ items: { name: string | null; sha256: string }[] }>(
      await call(viewer, 'list_artifacts', { id }),
    );
    expect(listed.items.map((a) => a.sha256)).toContain(diffSha);
    expect((await call(other, 'get_artifact', { task_id: id, sha256: diffSha })).content[0]!.text).toBe(
      `not found: no task ${id}`,
    );

    // The task record as a resource, and in the list of the caller's recent tasks.
    const read = await viewer.readResource({ uri: `agency://tasks/${id}` });
    expect(read.contents[0]).toMatchObject({ uri: `agency://tasks/${id}`, mimeType: 'application/json' });
    expect(JSON.parse((read.contents[0] as { text: string }).text)).toEqual(done);
    await eventually(
      async () => (await viewer.listResources()).resources.some((r) => r.uri === `agency://tasks/${id}`),
      { what: 'the task among the listed resources' },
    );
    // Without the viewer role: an error on read, nothing listed.
    await expect(operator.readResource({ uri: `agency://tasks/${id}` })).rejects.toThrow(
      /forbidden: needs role viewer/,
    );
    expect((await approver.listResources()).resources).toEqual([]);
  });

  it('when no key is sent, then 401 problem+json before any MCP; GET and DELETE answer 405', async () => {
    const initialize = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    };
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const anonymous = await fetch(`${api.url}/mcp`, { method: 'POST', headers, body: JSON.stringify(initialize) });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('content-type')).toContain('application/problem+json');
    expect(anonymous.headers.get('www-authenticate')).toContain('Bearer');
    await expect(connect(`ak_abcdefgh_${'A'.repeat(43)}`)).rejects.toThrow();

    const ok = await fetch(`${api.url}/mcp`, {
      method: 'POST',
      headers: { ...headers, 'x-api-key': keys.viewer },
      body: JSON.stringify(initialize),
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('mcp-session-id')).toBeNull();
    expect(await json(ok)).toMatchObject({ jsonrpc: '2.0', id: 1, result: { serverInfo: { name: 'agent-agency' } } });

    for (const method of ['GET', 'DELETE']) {
      const res = await fetch(`${api.url}/mcp`, { method, headers: { 'x-api-key': keys.viewer } });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('POST');
      expect(res.headers.get('content-type')).toContain('application/problem+json');
    }
  });
});
