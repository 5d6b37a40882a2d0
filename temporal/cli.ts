/**
 * Finds the Temporal CLI, or builds the pinned release into a cache outside the clone.
 *
 * Order: $TEMPORAL_CLI, `temporal` on PATH, the cached build, then `go install` of the pinned version
 * (common/go-tool.ts). The cache ($XDG_CACHE_HOME or ~/.cache, under agency/temporal/<version>) survives fresh clones,
 * so CI builds it once.
 *
 *   npx tsx temporal/cli.ts      prints the path of the CLI (building it if needed)
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureGoTool, goToolCacheDir, type EnsureOptions, type GoTool } from '../common/go-tool.js';

/** v1.5.1 is the newest CLI release whose go.mod has no replace directive, so `go install` can build it. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';

const TEMPORAL_CLI: GoTool = {
  label: 'Temporal CLI',
  binary: 'temporal',
  module: 'github.com/temporalio/cli/cmd/temporal',
  version: TEMPORAL_CLI_VERSION,
  envVar: 'TEMPORAL_CLI',
  releases: 'https://docs.temporal.io/cli#install',
  minGo: '1.23',
};

export function cliCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return goToolCacheDir(TEMPORAL_CLI, env);
}

export class TemporalCliUnavailable extends Error {
  override name = 'TemporalCliUnavailable';
}

/** Returns the path of a usable Temporal CLI, building the pinned one if none is found. */
export function ensureTemporalCli(opts: EnsureOptions = {}): Promise<string> {
  return ensureGoTool(TEMPORAL_CLI, opts, (message) => new TemporalCliUnavailable(message));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureTemporalCli({ log: (l) => process.stderr.write(`${l}\n`) }).then(
    (p) => process.stdout.write(`${p}\n`),
    (err: Error) => {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = 1;
    },
  );
}
