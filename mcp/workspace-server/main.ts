/**
 * Entry point of the workspace MCP server over stdio:
 *
 *   node dist/mcp/workspace-server/main.js --root <dir>          compiled (`npm run build`), as production runs it
 *   node --import tsx mcp/workspace-server/main.ts --root <dir>  in development
 *
 * The execution pool picks between the two at each spawn (launch.ts: compiled when dist/ is current).
 *
 * Configuration comes from the environment (the server's own; none of it reaches the commands it runs):
 *   WORKSPACE_ALLOWED_COMMANDS  comma-separated program names run_command accepts (default: see server.ts)
 *   SANDBOX_TIMEOUT_SECONDS     default and maximum run_command timeout (120)
 *   SANDBOX_MAX_OUTPUT_BYTES    output cap per command (1 MiB)
 *   SANDBOX_MAX_PROCESSES       process limit per command (128)
 *   SANDBOX_MEMORY_BYTES        address-space limit per process (2 GiB)
 *   SANDBOX_ALLOW_UNSANDBOXED   "true": without bubblewrap, run commands with the old protections only
 *   SANDBOX_MODE                "none" forces the unsandboxed path (tests); default "auto"
 *   BWRAP_PATH                  the bwrap binary to use (else PATH, the user cache, or fetched with apt-get download)
 *
 * Logs go to stderr (stdout is the protocol). The server exits when stdin closes.
 */
import { parseArgs } from 'node:util';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { detectSandbox } from './sandbox.js';
import { createWorkspaceServer, workspaceOptionsFromEnv } from './server.js';

const log = (line: string): void => void process.stderr.write(`[workspace-server] ${line}\n`);

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { root: { type: 'string' } }, strict: true });
  if (!values.root) throw new Error('usage: main.ts --root <dir>');
  const options = { ...workspaceOptionsFromEnv(values.root), log };
  const server = await createWorkspaceServer(options);
  const transport = new StdioServerTransport();
  transport.onclose = () => process.exit(0);
  process.stdin.on('end', () => {
    void server.close().finally(() => process.exit(0));
  });
  await server.connect(transport);
  // Detect early so the first run_command does not wait for it, and say what was found.
  detectSandbox({ env: options.env, mode: options.sandbox, log }).then(
    (info) =>
      log(
        info.kind === 'none'
          ? `no sandbox: ${info.reason}`
          : `sandbox: bubblewrap ${info.version} (${info.processLimit})`,
      ),
    (err: Error) => log(`sandbox detection failed: ${err.message}`),
  );
}

main().catch((err: Error) => {
  log(err.message);
  process.exit(1);
});
