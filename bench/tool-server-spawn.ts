/**
 * Start-up cost of the built-in workspace MCP server, which the execution pool spawns once per task workspace:
 * from spawn to the answer of `tools/list` (the MCP initialize handshake included), through tsx versus compiled.
 *
 *   npm run bench:tool-server-spawn [-- --runs 7]
 *
 * Builds dist/ first when it is stale (scripts/build.ts). Each mode gets one discarded warm-up spawn (which also fills
 * tsx's transform cache); the runs then alternate between modes so that machine load falls on both alike.
 * Modes: `compiled` (node dist/mcp/workspace-server/main.js), `tsx` (node --import tsx main.ts with its cache warm,
 * as on a worker that has spawned it before) and `tsx-cold` (TSX_DISABLE_CACHE=1: a worker's first spawn).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { serverDirs, workspaceServerEntry } from '../mcp/workspace-server/launch.js';
import { build } from '../scripts/build.js';
import { summarize } from './stats.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } }, strict: true });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs takes a positive integer');

await build({ allowTypeErrors: true, log: (line) => void process.stderr.write(`[build] ${line}\n`) });
const dirs = serverDirs();
const compiled = workspaceServerEntry(dirs);
if (compiled.length !== 1) throw new Error('dist/mcp/workspace-server is not current after the build');

const passEnv = Object.fromEntries(
  ['BWRAP_PATH', 'XDG_CACHE_HOME'].flatMap((k) => (process.env[k] ? [[k, process.env[k]]] : [])),
) as Record<string, string>;

const modes: Record<string, { args: string[]; env: Record<string, string> }> = {
  compiled: { args: compiled, env: {} },
  tsx: { args: ['--import', 'tsx', path.join(dirs.source, 'main.ts')], env: {} },
  'tsx-cold': { args: ['--import', 'tsx', path.join(dirs.source, 'main.ts')], env: { TSX_DISABLE_CACHE: '1' } },
};

/** Milliseconds from spawn to the tools/list answer. */
async function spawnOnce(mode: string, root: string): Promise<number> {
  const { args, env } = modes[mode]!;
  const started = performance.now();
  const client = new Client({ name: 'spawn-bench', version: '1.0.0' });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [...args, '--root', root],
      env: { ...passEnv, ...env },
      stderr: 'ignore',
    }),
  );
  const { tools } = await client.listTools();
  const elapsed = performance.now() - started;
  await client.close();
  if (tools.length === 0) throw new Error(`${mode}: the server listed no tools`);
  return elapsed;
}

const root = await mkdtemp(path.join(os.tmpdir(), 'spawn-bench-'));
const times: Record<string, number[]> = Object.fromEntries(Object.keys(modes).map((m) => [m, []]));
try {
  for (const mode of Object.keys(modes)) await spawnOnce(mode, root); // warm-up
  for (let i = 0; i < runs; i++) {
    for (const mode of Object.keys(modes)) times[mode]!.push(await spawnOnce(mode, root));
  }
} finally {
  await rm(root, { recursive: true, force: true });
}

const fmt = (ms: number): string => `${ms.toFixed(0)} ms`;
const summaries = Object.fromEntries(Object.entries(times).map(([m, t]) => [m, summarize(t)]));
process.stdout.write(
  `workspace server: spawn → tools/list answered, ${runs} runs per mode (${os.cpus().length} CPUs)\n`,
);
for (const [mode, s] of Object.entries(summaries)) {
  process.stdout.write(
    `  ${mode.padEnd(9)} median ${fmt(s.p50)}  mean ${fmt(s.mean)}  min ${fmt(s.min)}  max ${fmt(s.max)}  ` +
      `[${times[mode]!.map((t) => t.toFixed(0)).join(', ')}]\n`,
  );
}
const ratio = (mode: string): string => (summaries[mode]!.p50 / summaries.compiled!.p50).toFixed(2);
process.stdout.write(`  ratio (median): tsx/compiled ${ratio('tsx')}x, tsx-cold/compiled ${ratio('tsx-cold')}x\n`);
