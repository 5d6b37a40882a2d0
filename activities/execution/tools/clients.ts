/**
 * MCP client connections of one execution worker: one per server (per workspace, for a server whose command names
 * ${WORKSPACE}), reused across calls, bounded by the server's max_concurrency, dropped when the server goes away.
 *
 * A stdio server sees only PATH/HOME/LANG, the variables its registry entry allows, and what the platform passes to
 * its own servers; it runs under `setpriv --pdeathsig KILL`, so it cannot outlive a worker that is killed outright.
 * An http server gets its Authorization header from the secret its entry names (an environment variable).
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ToolListChangedNotificationSchema, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { PROJECT_ROOT } from '../../../common/config.js';
import { builtinServerArgs } from '../../../mcp/workspace-server/launch.js';
import { withParentDeathSignal } from '../../../mcp/workspace-server/sandbox.js';
import type { Logger } from '../../../common/logger.js';
import type { DiscoveredTool, ToolServer } from '../../../common/tool-registry.js';

const BASE_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ'];
const CONNECT_TIMEOUT_MS = 30_000;

export interface ToolClientsOptions {
  /** Variables the platform gives its own servers (tenant id NULL): the workspace server's allow-list and limits. */
  platformEnv: Record<string, string>;
  /** A server said its tool list changed: the new list (stored by the caller). */
  onToolsChanged: (server: ToolServer, tools: DiscoveredTool[]) => Promise<void>;
  log?: Logger;
}

interface Connection {
  client: Client;
  limit: ReturnType<typeof pLimit>;
  stderr: string[];
}

export class ToolConnectError extends Error {
  override name = 'ToolConnectError';
}

const usesWorkspace = (s: ToolServer): boolean => [s.command ?? '', ...s.args].some((a) => a.includes('${WORKSPACE}'));

/** The tool as the registry stores it: its declared capabilities come from `_meta['agency/capabilities']`. */
export function discoveredTool(t: Tool): DiscoveredTool {
  const declared = t._meta?.['agency/capabilities'];
  return {
    name: t.name,
    description: t.description ?? '',
    inputSchema: t.inputSchema,
    capabilities: Array.isArray(declared) ? declared.filter((c): c is string => typeof c === 'string') : [],
  };
}

export async function listAllTools(client: Client): Promise<DiscoveredTool[]> {
  const tools: DiscoveredTool[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor ? { cursor } : undefined, { timeout: CONNECT_TIMEOUT_MS });
    tools.push(...page.tools.map(discoveredTool));
    cursor = page.nextCursor;
  } while (cursor);
  return tools;
}

export class ToolClients {
  private readonly connections = new Map<string, Promise<Connection>>();
  private scratch: Promise<string> | undefined;

  constructor(private readonly opts: ToolClientsOptions) {}

  /** A directory for servers that need a workspace when there is none (discovery). */
  scratchWorkspace(): Promise<string> {
    this.scratch ??= mkdtemp(path.join(os.tmpdir(), 'agency-tools-'));
    return this.scratch;
  }

  private key(server: ToolServer, workspace: string | undefined): string {
    return usesWorkspace(server) ? `${server.id}@${workspace ?? ''}` : server.id;
  }

  private transport(server: ToolServer, workspace: string, stderr: string[]): Transport {
    if (server.transport === 'http') {
      const secret = server.authSecretRef ? process.env[server.authSecretRef] : undefined;
      if (server.authSecretRef && !secret)
        throw new ToolConnectError(`secret ${server.authSecretRef} is not set on this execution worker`);
      return new StreamableHTTPClientTransport(new URL(server.url!), {
        requestInit: secret ? { headers: { Authorization: secret } } : undefined,
      });
    }
    const expand = (a: string): string =>
      a.replaceAll('${WORKSPACE}', workspace).replaceAll('${AGENCY_ROOT}', PROJECT_ROOT);
    const env: Record<string, string> = {};
    for (const name of [...BASE_ENV, ...server.envAllow]) {
      const value = process.env[name];
      if (value !== undefined) env[name] = value;
    }
    if (server.tenantId === null) Object.assign(env, this.opts.platformEnv);
    // The platform's workspace server runs compiled (dist/) when that is current, else through tsx (launch.ts).
    const serverArgs = server.tenantId === null ? builtinServerArgs(server.args) : server.args;
    const [command = '', ...args] = withParentDeathSignal([expand(server.command!), ...serverArgs.map(expand)]);
    const transport = new StdioClientTransport({
      command,
      args,
      env,
      cwd: server.tenantId === null ? PROJECT_ROOT : workspace,
      stderr: 'pipe',
    });
    transport.stderr?.on('data', (chunk: Buffer) => {
      stderr.push(chunk.toString('utf8'));
      if (stderr.length > 50) stderr.shift();
    });
    return transport;
  }

  private async connect(server: ToolServer, workspace: string | undefined, key: string): Promise<Connection> {
    const stderr: string[] = [];
    const client = new Client({ name: 'agency-execution', version: '0.1.0' });
    client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      try {
        await this.opts.onToolsChanged(server, await listAllTools(client));
        this.opts.log?.info({ server: server.id }, 'tool list changed; registry refreshed');
      } catch (err) {
        this.opts.log?.warn({ server: server.id, err }, 'tool list changed, but listing failed');
      }
    });
    // A server that exits (or a dropped connection) is forgotten, so the next call connects afresh.
    client.onclose = () => {
      void this.connections.get(key)?.then(
        (c) => c.client === client && this.connections.delete(key),
        () => undefined,
      );
    };
    const transport = this.transport(server, workspace ?? (await this.scratchWorkspace()), stderr);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.connect(transport, { timeout: CONNECT_TIMEOUT_MS }),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer to initialize within ${CONNECT_TIMEOUT_MS} ms`)),
            CONNECT_TIMEOUT_MS,
          );
        }),
      ]);
    } catch (err) {
      await client.close().catch(() => undefined);
      const tail = stderr.join('').trim().split('\n').slice(-5).join('\n');
      throw new ToolConnectError(
        `could not connect to tool server ${server.id}: ${(err as Error).message}${tail ? `\nstderr: ${tail}` : ''}`,
      );
    } finally {
      clearTimeout(timer);
    }
    return { client, limit: pLimit(server.maxConcurrency), stderr };
  }

  /** A one-off connection for discovery: connects, runs `fn`, closes; the pooled connections are left alone. */
  async probe<T>(server: ToolServer, fn: (client: Client) => Promise<T>): Promise<T> {
    const conn = await this.connect(server, undefined, `probe:${server.id}`);
    try {
      return await fn(conn.client);
    } finally {
      await conn.client.close().catch(() => undefined);
    }
  }

  /** Runs `fn` with a connected client, at most max_concurrency at a time per connection. */
  async use<T>(server: ToolServer, workspace: string | undefined, fn: (client: Client) => Promise<T>): Promise<T> {
    const key = this.key(server, workspace);
    let pending = this.connections.get(key);
    if (!pending) {
      pending = this.connect(server, workspace, key);
      this.connections.set(key, pending);
      pending.catch(() => this.connections.delete(key));
    }
    const conn = await pending;
    return conn.limit(() => fn(conn.client));
  }

  /** Closes the connections that serve a workspace (its task is done). */
  async closeWorkspace(workspace: string): Promise<void> {
    await this.closeWhere((key) => key.endsWith(`@${workspace}`));
  }

  async closeAll(): Promise<void> {
    await this.closeWhere(() => true);
  }

  private async closeWhere(match: (key: string) => boolean): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [key, pending] of this.connections) {
      if (!match(key)) continue;
      this.connections.delete(key);
      closing.push(
        pending.then(
          (c) => c.client.close(),
          () => undefined,
        ),
      );
    }
    await Promise.all(closing);
  }
}
