/**
 * How the built-in workspace server is started. One process per task workspace, so its start-up is paid at every
 * spawn: compiled JavaScript (dist/, `npm run build`) when it is current, else its TypeScript through tsx
 * (development, where nobody has built, or has edited a source since).
 *
 * The registry row (migrations/0004_tool_registry.sql) names
 * `--import tsx ${AGENCY_ROOT}/mcp/workspace-server/main.ts`; the execution pool (activities/execution/tools/clients.ts)
 * replaces that with `workspaceServerEntry()`.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The server's entry as the registry row names it, which `builtinServerArgs` replaces. */
export const REGISTRY_ENTRY: readonly string[] = ['--import', 'tsx', '${AGENCY_ROOT}/mcp/workspace-server/main.ts'];

export interface ServerDirs {
  /** mcp/workspace-server: main.ts and every module it imports (none outside this directory). */
  source: string;
  /** dist/mcp/workspace-server: their compiled files. */
  compiled: string;
}

/** The two directories, whether this module runs from the sources (tsx) or from dist/ (compiled). */
export function serverDirs(moduleUrl: string = import.meta.url): ServerDirs {
  const here = path.dirname(fileURLToPath(moduleUrl));
  const root = path.resolve(here, moduleUrl.endsWith('.js') ? '../../..' : '../..');
  return {
    source: path.join(root, 'mcp', 'workspace-server'),
    compiled: path.join(root, 'dist', 'mcp', 'workspace-server'),
  };
}

const mtimeMs = (file: string): number | undefined => statSync(file, { throwIfNoEntry: false })?.mtimeMs;

function sourcesIn(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  } catch {
    return []; // no sources: a production image ships dist/ only
  }
}

/**
 * Node's arguments that start the server (before `--root <dir>`): `<compiled>/main.js` when it exists and every
 * source of the server has a compiled file no older than itself; else `--import tsx <source>/main.ts`. Without
 * sources (a production image) the compiled file is used. Decided at every spawn (a few stat calls), so an edit
 * during development takes effect without a rebuild, and a stale dist/ is never run.
 */
export function workspaceServerEntry(dirs: ServerDirs = serverDirs()): string[] {
  const main = path.join(dirs.compiled, 'main.js');
  const current =
    mtimeMs(main) !== undefined &&
    sourcesIn(dirs.source).every(
      (file) =>
        (mtimeMs(path.join(dirs.compiled, file.replace(/\.ts$/, '.js'))) ?? -Infinity) >=
        (mtimeMs(path.join(dirs.source, file)) ?? Infinity),
    );
  return current ? [main] : ['--import', 'tsx', path.join(dirs.source, 'main.ts')];
}

/** A platform server's arguments with the registry's tsx entry of the workspace server replaced by the current one. */
export function builtinServerArgs(args: readonly string[], entry: () => string[] = workspaceServerEntry): string[] {
  const named = REGISTRY_ENTRY.every((a, i) => args[i] === a);
  return named ? [...entry(), ...args.slice(REGISTRY_ENTRY.length)] : [...args];
}
