/** The built-in workspace MCP server as the tool tests start it: a real MCP client over stdio, and a call helper. */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { workspaceServerEntry } from '../../mcp/workspace-server/launch.js';

/** The server finds bwrap the way this process does (the client transport passes only a few variables by default). */
const BWRAP_ENV = Object.fromEntries(
  ['BWRAP_PATH', 'XDG_CACHE_HOME'].flatMap((k) => (process.env[k] ? [[k, process.env[k]]] : [])),
) as Record<string, string>;

/**
 * A transport that spawns the server with `--root <root>` and the given extra environment: dist/…/main.js when it is
 * current (the stack tests' global setup builds it), else main.ts through tsx, as the execution pool does.
 */
export function workspaceServerTransport(root: string, env: Record<string, string> = {}): StdioClientTransport {
  return new StdioClientTransport({
    command: process.execPath,
    args: [...workspaceServerEntry(), '--root', root],
    cwd: process.cwd(),
    env: { ...BWRAP_ENV, ...env },
    stderr: 'ignore',
  });
}

export async function connectWorkspaceServer(
  root: string,
  env: Record<string, string> = {},
  name = 'workspace-test',
): Promise<Client> {
  const client = new Client({ name, version: '1.0.0' });
  await client.connect(workspaceServerTransport(root, env));
  return client;
}

export interface Called {
  isError: boolean;
  text: string;
  data: Record<string, unknown>;
}

/** Calls a tool; the result as text (joined parts), its structured content, and whether it is a tool error. */
export async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<Called> {
  const result = await client.callTool({ name, arguments: args });
  const content = result.content as { type: string; text?: string }[];
  return {
    isError: result.isError === true,
    text: content.map((c) => c.text ?? '').join('\n'),
    data: (result.structuredContent ?? {}) as Record<string, unknown>,
  };
}
