/**
 * Compiles the runtime code to dist/ (`npm run build:compile`; `npm run build` also bundles the workflows):
 *
 *   node --import tsx scripts/build.ts
 *
 * `tsc -p tsconfig.build.json` (incremental) writes dist/<dir>/<file>.js for every source outside test/ and bench/,
 * so `node dist/api/server.js` is `node --import tsx api/server.ts` without the compile at start. Then the files
 * the compiled code finds beside itself: the worker-thread .mjs files, migrations/, and a package.json (its version,
 * and "type": "module"). From dist/, PROJECT_ROOT (common/config.ts) is dist/ itself, so those are all it reads there.
 *
 * Skipped when every compiled file is at least as new as its source: with isolatedModules each file's output depends on
 * that file alone. After tsc runs, outputs it judged current are stamped, so that an mtime comparison (this, and
 * mcp/workspace-server/launch.ts) never sees a touched but unchanged source as newer than its output.
 */
import { spawn } from 'node:child_process';
import { cp, mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { PROJECT_ROOT } from '../common/config.js';

export const DIST = path.join(PROJECT_ROOT, 'dist');
const TSCONFIG = path.join(PROJECT_ROOT, 'tsconfig.build.json');
const TSBUILDINFO = path.join(DIST, '.tsbuildinfo');
const LOCK = path.join(DIST, '.build.lock');
const LOCK_STALE_MS = 10 * 60_000;

/** Files the compiled code reads beside itself (relative to PROJECT_ROOT), copied to the same place under dist/. */
export const ASSETS: readonly string[] = ['activities/inference/ort-thread.mjs', 'migrations'];

export interface BuildResult {
  /** Whether tsc ran (false: every output was current). */
  compiled: boolean;
  /** tsc's type errors, when allowed (the outputs are written anyway). */
  typeErrors?: string;
}

export interface BuildOptions {
  /** Type errors fail the build unless this is set (the test setup: other people's work in progress). */
  allowTypeErrors?: boolean;
  log?: (line: string) => void;
}

const mtimeMs = async (file: string): Promise<number | undefined> => (await stat(file).catch(() => undefined))?.mtimeMs;

/** The sources tsconfig.build.json compiles, each with its output file. */
export function buildFiles(): { source: string; output: string }[] {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    TSCONFIG,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!parsed) throw new Error(`cannot read ${TSCONFIG}`);
  return parsed.fileNames
    .filter((f) => !/\.d\.[cm]?ts$/.test(f))
    .map((source) => ({
      source,
      output: path.join(DIST, path.relative(PROJECT_ROOT, source)).replace(/\.([cm]?)ts$/, '.$1js'),
    }));
}

/** The newest mtime an output must reach to be current: its source's, or the tsconfig files' when newer. */
async function requiredMtime(source: string): Promise<number> {
  const times = await Promise.all([source, TSCONFIG, path.join(PROJECT_ROOT, 'tsconfig.json')].map(mtimeMs));
  return Math.max(...times.map((m) => m ?? Infinity));
}

/** The outputs that are missing or older than their source (or the tsconfig files). */
async function staleOutputs(
  files: { source: string; output: string }[],
): Promise<{ source: string; output: string }[]> {
  const stale = await Promise.all(
    files.map(async (f) => ((await mtimeMs(f.output)) ?? -Infinity) < (await requiredMtime(f.source))),
  );
  return files.filter((_, i) => stale[i]);
}

async function missingOutputs(files: { output: string }[]): Promise<string[]> {
  const exists = await Promise.all(files.map(async (f) => (await mtimeMs(f.output)) !== undefined));
  return files.filter((_, i) => !exists[i]).map((f) => f.output);
}

/** tsc -p tsconfig.build.json: its exit code (0, 1 nothing written, 2 written with errors) and its output. */
function tsc(): Promise<{ code: number; output: string }> {
  const bin = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, '-p', TSCONFIG, '--pretty', 'false'], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Runs fn holding dist/.build.lock (a directory holding the owner's pid), so two test runs starting together do not
 * write dist/ at once. A lock whose owner has died, or older than LOCK_STALE_MS, is taken over.
 */
async function withLock<T>(fn: () => Promise<T>, log: (line: string) => void): Promise<T> {
  await mkdir(DIST, { recursive: true });
  let waited = false;
  for (;;) {
    try {
      await mkdir(LOCK);
      await writeFile(path.join(LOCK, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(await readFile(path.join(LOCK, 'pid'), 'utf8').catch(() => NaN));
      const since = await mtimeMs(LOCK);
      if ((owner > 0 && !alive(owner)) || (since !== undefined && Date.now() - since > LOCK_STALE_MS)) {
        await rm(LOCK, { recursive: true, force: true });
        continue;
      }
      if (!waited) log('another build is running; waiting for it');
      waited = true;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(LOCK, { recursive: true, force: true });
  }
}

/** Size and mtime of a file, or of every file under a directory: what decides whether an asset is copied again. */
async function fingerprint(p: string): Promise<string> {
  const info = await stat(p).catch(() => undefined);
  if (!info) return '';
  if (!info.isDirectory()) return `${info.size}:${info.mtimeMs}`;
  const entries = (await readdir(p, { recursive: true })).sort();
  const parts = await Promise.all(entries.map(async (e) => `${e}=${await fingerprint(path.join(p, e))}`));
  return parts.join('\n');
}

async function copyAssets(): Promise<void> {
  for (const asset of ASSETS) {
    const source = path.join(PROJECT_ROOT, asset);
    const target = path.join(DIST, asset);
    if ((await fingerprint(source)) === (await fingerprint(target))) continue;
    // Replaced whole: a migration removed from the sources must not linger in dist/migrations.
    await rm(target, { recursive: true, force: true });
    await cp(source, target, { recursive: true, preserveTimestamps: true });
  }
  const pkg = JSON.parse(await readFile(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
  };
  const text = `${JSON.stringify({ name: pkg.name, version: pkg.version, private: true, type: 'module' }, null, 2)}\n`;
  const target = path.join(DIST, 'package.json');
  if ((await readFile(target, 'utf8').catch(() => '')) !== text) await writeFile(target, text);
}

export async function build(opts: BuildOptions = {}): Promise<BuildResult> {
  const log = opts.log ?? ((line: string) => void process.stderr.write(`[build] ${line}\n`));
  return withLock(async () => {
    const files = buildFiles();
    let result: BuildResult = { compiled: false };
    if ((await staleOutputs(files)).length > 0) {
      const started = Date.now();
      let run = await tsc();
      if (run.code !== 1 && (await missingOutputs(files)).length > 0) {
        // dist/ lost files that .tsbuildinfo says are written: compile again from scratch.
        await rm(TSBUILDINFO, { force: true });
        run = await tsc();
      }
      if (run.code === 1 || (run.code !== 0 && !opts.allowTypeErrors)) {
        throw new Error(`tsc -p tsconfig.build.json failed (exit ${run.code}):\n${run.output}`);
      }
      const missing = await missingOutputs(files);
      if (missing.length > 0) throw new Error(`tsc did not write ${missing.join(', ')}`);
      // tsc leaves an output alone when its source's text has not changed; it is current, so say so in its mtime.
      // A source edited while tsc ran may have been read before the edit: its output gets the start time, older than
      // the source, so that it stays stale (the next build compiles it; launch.ts runs that source through tsx).
      const startedAt = new Date(started);
      const now = new Date();
      await Promise.all(
        files.map(async ({ source, output }) => {
          if (((await mtimeMs(source)) ?? Infinity) >= started) await utimes(output, startedAt, startedAt);
          else if (((await mtimeMs(output)) ?? 0) < (await requiredMtime(source))) await utimes(output, now, now);
        }),
      );
      result = { compiled: true, ...(run.code !== 0 ? { typeErrors: run.output } : {}) };
      log(
        run.code === 0
          ? `compiled ${files.length} files to ${path.relative(PROJECT_ROOT, DIST)}/`
          : `compiled with type errors (outputs written):\n${run.output}`,
      );
    }
    await copyAssets();
    return result;
  }, log);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  build().then(
    (r) =>
      process.stderr.write(`[build] ${r.compiled ? 'done' : 'dist/ is up to date'} in ${Date.now() - started} ms\n`),
    (err: Error) => {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    },
  );
}
