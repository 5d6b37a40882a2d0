/**
 * Finds bubblewrap (`bwrap`), the sandbox the workspace server runs commands in, or fetches it without root.
 *
 * Order: $BWRAP_PATH, `bwrap` on PATH, a copy cached outside the clone
 * ($XDG_CACHE_HOME or ~/.cache, under agency/bubblewrap/<version>/usr/bin/bwrap), then `apt-get download bubblewrap`
 * into a temporary directory and `dpkg-deb -x` into that cache (no root needed: nothing is installed system-wide).
 * Every candidate is verified by running `bwrap --version`. The binary is never put in the repository.
 *
 *   node --import tsx mcp/workspace-server/bubblewrap.ts    prints the path of bwrap (fetching it if needed)
 */
import { execFile } from 'node:child_process';
import { access, constants, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type BubblewrapSource = 'env' | 'path' | 'cache' | 'download';

export type BubblewrapLookup =
  { found: true; path: string; version: string; source: BubblewrapSource } | { found: false; reason: string };

const INSTALL_HINT =
  'install bubblewrap (Debian/Ubuntu package `bubblewrap`: apt-get install bubblewrap; Fedora/RHEL: dnf install bubblewrap) ' +
  'or point BWRAP_PATH at a bwrap binary';

export function bubblewrapCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'agency', 'bubblewrap');
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
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter((d) => path.isAbsolute(d))) {
    const candidate = path.join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** The version `bwrap --version` prints ("bubblewrap 0.8.0"), or undefined if the binary does not run. */
async function bwrapVersion(file: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(file, ['--version'], { timeout: 10_000, env: { PATH: '/usr/bin:/bin' } });
    const match = /bubblewrap\s+(\S+)/.exec(stdout);
    return match?.[1];
  } catch {
    return undefined;
  }
}

async function fromCache(cacheDir: string): Promise<BubblewrapLookup | undefined> {
  const versions = await readdir(cacheDir).catch(() => [] as string[]);
  for (const version of versions
    .filter((v) => !v.startsWith('.'))
    .sort()
    .reverse()) {
    const file = path.join(cacheDir, version, 'usr', 'bin', 'bwrap');
    const ran = await bwrapVersion(file);
    if (ran) return { found: true, path: file, version: ran, source: 'cache' };
  }
  return undefined;
}

/** `apt-get download` + `dpkg-deb -x`: needs apt's package lists and the Debian mirror, but not root. */
async function download(
  cacheDir: string,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<BubblewrapLookup> {
  const aptGet = await onPath('apt-get', env);
  const dpkgDeb = await onPath('dpkg-deb', env);
  if (!aptGet || !dpkgDeb) {
    return {
      found: false,
      reason: `bwrap was not found and cannot be fetched here (no apt-get/dpkg-deb); ${INSTALL_HINT}`,
    };
  }
  const work = await mkdtemp(path.join(os.tmpdir(), 'agency-bwrap-'));
  try {
    log(`fetching bubblewrap with apt-get download into ${cacheDir}`);
    try {
      await run(aptGet, ['download', 'bubblewrap'], { cwd: work, timeout: 120_000, env });
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? String(err);
      return { found: false, reason: `apt-get download bubblewrap failed: ${stderr.trim()}; ${INSTALL_HINT}` };
    }
    const deb = (await readdir(work)).find((f) => f.startsWith('bubblewrap_') && f.endsWith('.deb'));
    if (!deb) return { found: false, reason: `apt-get download bubblewrap produced no .deb; ${INSTALL_HINT}` };
    // bubblewrap_0.8.0-2+deb12u1_amd64.deb (an epoch's ':' is written %3a)
    const version = decodeURIComponent(deb.split('_')[1] ?? 'unknown').replace(/[^\w.+~-]/g, '_');
    const target = path.join(cacheDir, version);
    const partial = path.join(cacheDir, `.partial-${process.pid}-${Date.now()}`);
    await mkdir(partial, { recursive: true });
    try {
      await run(dpkgDeb, ['-x', path.join(work, deb), partial], { timeout: 60_000, env });
      // Rename is atomic: two processes fetching at once both end up with one complete copy.
      await rename(partial, target).catch(async () => rm(partial, { recursive: true, force: true }));
    } catch (err) {
      await rm(partial, { recursive: true, force: true });
      const stderr = (err as { stderr?: string }).stderr ?? String(err);
      return { found: false, reason: `dpkg-deb -x ${deb} failed: ${stderr.trim()}; ${INSTALL_HINT}` };
    }
    const file = path.join(target, 'usr', 'bin', 'bwrap');
    const ran = await bwrapVersion(file);
    if (!ran) return { found: false, reason: `the fetched ${file} does not run (missing libraries?); ${INSTALL_HINT}` };
    log(`bubblewrap ${ran} cached at ${file}`);
    return { found: true, path: file, version: ran, source: 'download' };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Returns a verified bwrap, fetching it into the user cache if needed; `found: false` says exactly what to install. */
export async function ensureBubblewrap(
  opts: { env?: NodeJS.ProcessEnv; log?: (line: string) => void; download?: boolean } = {},
): Promise<BubblewrapLookup> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? (() => undefined);

  if (env.BWRAP_PATH) {
    const version = await bwrapVersion(env.BWRAP_PATH);
    if (version) return { found: true, path: env.BWRAP_PATH, version, source: 'env' };
    return { found: false, reason: `BWRAP_PATH is set to ${env.BWRAP_PATH}, which does not run as bwrap --version` };
  }
  const fromPath = await onPath('bwrap', env);
  if (fromPath) {
    const version = await bwrapVersion(fromPath);
    if (version) return { found: true, path: fromPath, version, source: 'path' };
  }
  const cacheDir = bubblewrapCacheDir(env);
  const cached = await fromCache(cacheDir);
  if (cached) return cached;
  if (opts.download === false)
    return { found: false, reason: `bwrap was not found (PATH, ${cacheDir}); ${INSTALL_HINT}` };
  return download(cacheDir, env, log);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureBubblewrap({ log: (l) => process.stderr.write(`${l}\n`) }).then(
    (found) => {
      if (found.found) {
        process.stdout.write(`${found.path}\n`);
      } else {
        process.stderr.write(`${found.reason}\n`);
        process.exitCode = 1;
      }
    },
    (err: Error) => {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = 1;
    },
  );
}
