/**
 * A program the project obtains itself (the Temporal CLI, the S3-compatible test server): from an environment variable,
 * else PATH, else a cache outside the clone ($XDG_CACHE_HOME or ~/.cache, under agency/<binary>/<version>, which fresh
 * clones and CI reuse), else `go install` of the pinned version into that cache (CGO_ENABLED=0).
 */
import { execFile } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface GoTool {
  /** What a person calls it, in messages: "Temporal CLI". */
  label: string;
  binary: string;
  /** The `go install` path, without the version. */
  module: string;
  version: string;
  /** The environment variable that names an executable to use instead. */
  envVar: string;
  /** Where to get a release, for the message when nothing can be built. */
  releases: string;
  minGo: string;
}

export interface EnsureOptions {
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
  /** Where Go may be when it is not on PATH. */
  goLocations?: string[];
}

export function goToolCacheDir(tool: GoTool, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'agency', tool.binary, tool.version);
}

export async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable `name` in PATH's absolute directories (a relative entry would depend on the working directory). */
export async function onPath(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter((d) => path.isAbsolute(d))) {
    const candidate = path.join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** The path of a usable `tool`, building the pinned version into the cache if none is found. */
export async function ensureGoTool(
  tool: GoTool,
  opts: EnsureOptions,
  unavailable: (message: string) => Error,
): Promise<string> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? (() => undefined);
  const named = env[tool.envVar];
  if (named) {
    if (await isExecutable(named)) return named;
    throw unavailable(`${tool.envVar} is set to ${named}, which is not an executable file`);
  }
  const fromPath = await onPath(tool.binary, env);
  if (fromPath) return fromPath;

  const cacheDir = goToolCacheDir(tool, env);
  const cached = path.join(cacheDir, tool.binary);
  if (await isExecutable(cached)) return cached;

  let go = await onPath('go', env);
  for (const candidate of opts.goLocations ?? ['/usr/local/go/bin/go']) {
    if (!go && (await isExecutable(candidate))) go = candidate;
  }
  const pinned = `${tool.module}@${tool.version}`;
  if (!go) {
    throw unavailable(
      [
        `The ${tool.label} was not found and cannot be built (no Go toolchain).`,
        'Install one of:',
        `  - the ${tool.label}: ${tool.releases} (then put \`${tool.binary}\` on PATH or set ${tool.envVar})`,
        `  - Go ${tool.minGo} or newer (https://go.dev/dl/), and the project will build ${pinned}`,
      ].join('\n'),
    );
  }
  await mkdir(cacheDir, { recursive: true });
  log(`building the ${tool.label} ${tool.version} with Go into ${cacheDir} (once; takes a few minutes)`);
  const started = Date.now();
  try {
    await run(go, ['install', pinned], {
      env: { ...env, GOBIN: cacheDir, CGO_ENABLED: env.CGO_ENABLED ?? '0' },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 30 * 60_000,
    });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? String(err);
    throw unavailable(`go install ${pinned} failed:\n${stderr.trim()}`);
  }
  if (!(await isExecutable(cached))) throw unavailable(`go install finished but ${cached} is missing`);
  log(`built ${cached} in ${Math.round((Date.now() - started) / 1000)} s`);
  return cached;
}
