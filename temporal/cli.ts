/**
 * Finds the Temporal CLI, or builds the pinned release into a cache outside the clone.
 *
 * Order: $TEMPORAL_CLI, `temporal` on PATH, the cached build, then `go install` of the pinned version.
 * The cache ($XDG_CACHE_HOME or ~/.cache, under agency/temporal/<version>) survives fresh clones, so CI builds it once.
 *
 *   npx tsx temporal/cli.ts      prints the path of the CLI (building it if needed)
 */
import { execFile } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);

/** v1.5.1 is the newest CLI release whose go.mod has no replace directive, so `go install` can build it. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
const MODULE = 'github.com/temporalio/cli/cmd/temporal';

export function cliCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'agency', 'temporal', TEMPORAL_CLI_VERSION);
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function onPath(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

export class TemporalCliUnavailable extends Error {
  override name = 'TemporalCliUnavailable';
}

/** Returns the path of a usable Temporal CLI, building the pinned one if none is found. */
export async function ensureTemporalCli(
  opts: { env?: NodeJS.ProcessEnv; log?: (line: string) => void; goLocations?: string[] } = {},
): Promise<string> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? (() => undefined);

  if (env.TEMPORAL_CLI) {
    if (await isExecutable(env.TEMPORAL_CLI)) return env.TEMPORAL_CLI;
    throw new TemporalCliUnavailable(`TEMPORAL_CLI is set to ${env.TEMPORAL_CLI}, which is not an executable file`);
  }
  const fromPath = await onPath('temporal', env);
  if (fromPath) return fromPath;

  const cacheDir = cliCacheDir(env);
  const cached = path.join(cacheDir, 'temporal');
  if (await isExecutable(cached)) return cached;

  // Go on PATH, else where its installer puts it.
  let go = await onPath('go', env);
  for (const candidate of opts.goLocations ?? ['/usr/local/go/bin/go']) {
    if (!go && (await isExecutable(candidate))) go = candidate;
  }
  if (!go) {
    throw new TemporalCliUnavailable(
      [
        'The Temporal CLI was not found and cannot be built (no Go toolchain).',
        'Install one of:',
        '  - the Temporal CLI: https://docs.temporal.io/cli#install (then put `temporal` on PATH or set TEMPORAL_CLI)',
        `  - Go 1.23 or newer (https://go.dev/dl/), and this script will build ${MODULE}@${TEMPORAL_CLI_VERSION}`,
      ].join('\n'),
    );
  }

  await mkdir(cacheDir, { recursive: true });
  log(`building the Temporal CLI ${TEMPORAL_CLI_VERSION} with Go into ${cacheDir} (once; takes a few minutes)`);
  try {
    await run(go, ['install', `${MODULE}@${TEMPORAL_CLI_VERSION}`], {
      env: { ...env, GOBIN: cacheDir, CGO_ENABLED: env.CGO_ENABLED ?? '0' },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 30 * 60_000,
    });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? String(err);
    throw new TemporalCliUnavailable(`go install ${MODULE}@${TEMPORAL_CLI_VERSION} failed:\n${stderr.trim()}`);
  }
  if (!(await isExecutable(cached))) throw new TemporalCliUnavailable(`go install finished but ${cached} is missing`);
  log(`built ${cached}`);
  return cached;
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
