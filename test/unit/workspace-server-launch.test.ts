/**
 * mcp/workspace-server/launch.ts: the built-in workspace server runs compiled (dist/) only when that is current, else
 * through tsx; and the execution pool's registry row is the one whose entry gets replaced.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../common/config.js';
import {
  builtinServerArgs,
  REGISTRY_ENTRY,
  serverDirs,
  workspaceServerEntry,
  type ServerDirs,
} from '../../mcp/workspace-server/launch.js';

const SOURCES = ['main.ts', 'server.ts', 'sandbox.ts'];

describe('workspaceServerEntry', () => {
  let dirs: ServerDirs;
  let base: string;

  /** Writes files with an mtime `ageSeconds` in the past. */
  async function put(dir: string, files: string[], ageSeconds: number): Promise<void> {
    await mkdir(dir, { recursive: true });
    const when = new Date(Date.now() - ageSeconds * 1000);
    for (const f of files) {
      await writeFile(path.join(dir, f), '// test\n');
      await utimes(path.join(dir, f), when, when);
    }
  }
  const compiledOf = (files: string[]): string[] => files.map((f) => f.replace(/\.ts$/, '.js'));
  const tsx = (): string[] => ['--import', 'tsx', path.join(dirs.source, 'main.ts')];

  beforeEach(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'launch-'));
    dirs = { source: path.join(base, 'mcp', 'workspace-server'), compiled: path.join(base, 'dist', 'mcp', 'ws') };
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('when nothing is built, then the server runs through tsx', async () => {
    await put(dirs.source, SOURCES, 60);
    expect(workspaceServerEntry(dirs)).toEqual(tsx());
  });

  it('when every source has a compiled file at least as new, then the compiled main.js runs', async () => {
    await put(dirs.source, SOURCES, 60);
    await put(dirs.compiled, compiledOf(SOURCES), 30);
    expect(workspaceServerEntry(dirs)).toEqual([path.join(dirs.compiled, 'main.js')]);
  });

  it('when any source was edited after the build, not only main.ts, then tsx runs it', async () => {
    await put(dirs.source, SOURCES, 60);
    await put(dirs.compiled, compiledOf(SOURCES), 30);
    await put(dirs.source, ['sandbox.ts'], 10);
    expect(workspaceServerEntry(dirs)).toEqual(tsx());
  });

  it('when a new source has no compiled file yet, then tsx runs it', async () => {
    await put(dirs.source, SOURCES, 60);
    await put(dirs.compiled, compiledOf(SOURCES), 30);
    await put(dirs.source, ['limits.ts'], 60);
    expect(workspaceServerEntry(dirs)).toEqual(tsx());
  });

  it('when main.js is missing though other files are compiled, then tsx runs it', async () => {
    await put(dirs.source, SOURCES, 60);
    await put(dirs.compiled, compiledOf(SOURCES.slice(1)), 30);
    expect(workspaceServerEntry(dirs)).toEqual(tsx());
  });

  it('when there are no sources (a production image), then the compiled main.js runs', async () => {
    await put(dirs.compiled, compiledOf(SOURCES), 30);
    expect(workspaceServerEntry(dirs)).toEqual([path.join(dirs.compiled, 'main.js')]);
  });
});

describe('serverDirs', () => {
  it('finds the sources and dist/ from the sources (tsx) and from dist/ (compiled) alike', () => {
    const expected = {
      source: path.join(PROJECT_ROOT, 'mcp', 'workspace-server'),
      compiled: path.join(PROJECT_ROOT, 'dist', 'mcp', 'workspace-server'),
    };
    expect(serverDirs()).toEqual(expected);
    const compiledUrl = pathToFileURL(path.join(expected.compiled, 'launch.js')).href;
    expect(serverDirs(compiledUrl)).toEqual(expected);
  });

  it('the server imports no relative module outside its directory, so its freshness is that directory’s', async () => {
    const dir = serverDirs().source;
    for (const file of (await readdir(dir)).filter((f) => f.endsWith('.ts'))) {
      const text = await readFile(path.join(dir, file), 'utf8');
      for (const [, spec] of text.matchAll(/(?:from|import\()\s*'(\.[^']*)'/g)) {
        expect(spec, `${file} imports ${spec}`).toMatch(/^\.\/[^/]+$/);
      }
    }
  });
});

describe('builtinServerArgs', () => {
  const entry = (): string[] => ['/x/dist/mcp/workspace-server/main.js'];

  it('replaces the registry’s tsx entry and keeps the arguments after it', () => {
    expect(builtinServerArgs([...REGISTRY_ENTRY, '--root', '${WORKSPACE}'], entry)).toEqual([
      '/x/dist/mcp/workspace-server/main.js',
      '--root',
      '${WORKSPACE}',
    ]);
  });

  it('leaves any other command line alone', () => {
    const other = ['--import', 'tsx', '${AGENCY_ROOT}/mcp/other/main.ts', '--root', '${WORKSPACE}'];
    expect(builtinServerArgs(other, entry)).toEqual(other);
    expect(builtinServerArgs(['server.js'], entry)).toEqual(['server.js']);
  });

  it('matches the built-in workspace server as the migration registers it', async () => {
    const sql = await readFile(path.join(PROJECT_ROOT, 'migrations', '0004_tool_registry.sql'), 'utf8');
    const row = /VALUES \('workspace',[^']*'[^']*',\s*'stdio',\s*'node',\s*'(\[[^']*\])'/.exec(sql);
    expect(row, 'the workspace row of 0004_tool_registry.sql').not.toBeNull();
    const args = JSON.parse(row![1]!) as string[];
    expect(args.slice(0, REGISTRY_ENTRY.length)).toEqual(REGISTRY_ENTRY);
    expect(builtinServerArgs(args, entry)).toEqual(['/x/dist/mcp/workspace-server/main.js', '--root', '${WORKSPACE}']);
  });
});
