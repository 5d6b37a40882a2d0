/**
 * The workspace MCP server end to end: a real MCP client spawns `main.ts --root <tmp git repo>` over stdio and calls
 * every tool. Commands run in the real bubblewrap sandbox (fetched into the user cache if missing).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectSandbox, type SandboxInfo } from '../../mcp/workspace-server/sandbox.js';
import { call, connectWorkspaceServer } from '../helpers/workspace-server.js';

const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

async function makeRepo(): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'workspace-'));
  await mkdir(path.join(root, 'src'));
  await writeFile(path.join(root, 'README.md'), 'hi a\n');
  await writeFile(path.join(root, 'src', 'index.ts'), 'export const answer = 42;\nexport const name = "agency";\n');
  const git = (...args: string[]): string =>
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
      cwd: root,
      encoding: 'utf8',
    });
  git('init', '-q', '-b', 'main');
  git('add', '.');
  git('commit', '-qm', 'init');
  return root;
}

describe('workspace MCP server over stdio', () => {
  let root: string;
  let client: Client;
  let sandbox: SandboxInfo;

  beforeAll(async () => {
    sandbox = await detectSandbox();
    root = await makeRepo();
    client = await connectWorkspaceServer(root);
  });

  afterAll(async () => {
    await client?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('this machine can run the sandbox (bubblewrap and a process limit)', () => {
    if (sandbox.kind === 'none') throw new Error(`no sandbox on this machine: ${sandbox.reason}`);
    expect(sandbox.kind).toBe('bubblewrap');
  });

  it('when tools are listed, then the 8 tools come with input schemas and capabilities', async () => {
    const { tools } = await client.listTools();
    const caps = Object.fromEntries(tools.map((t) => [t.name, t._meta?.['agency/capabilities']]));
    expect(caps).toEqual({
      read_file: ['fs.read'],
      write_file: ['fs.write'],
      apply_patch: ['fs.edit'],
      list_dir: ['fs.list'],
      search_text: ['fs.search'],
      run_command: ['process.exec'],
      git_status: ['vcs.status'],
      git_diff: ['vcs.diff'],
    });
    for (const tool of tools) {
      expect(tool.inputSchema.type).toBe('object');
      expect(tool.outputSchema?.type).toBe('object');
      expect(tool.description?.length).toBeGreaterThan(40);
    }
    const byName = new Map(tools.map((t) => [t.name, t]));
    expect(byName.get('run_command')?.inputSchema.required).toEqual(['argv']);
    expect(byName.get('read_file')?.annotations?.readOnlyHint).toBe(true);
    expect(byName.get('write_file')?.annotations?.destructiveHint).toBe(true);
  });

  it('when a file is read, then content, size and the sha256 of the bytes come back; hash_only omits the content', async () => {
    const read = await call(client, 'read_file', { path: 'src/index.ts' });
    const bytes = await readFile(path.join(root, 'src', 'index.ts'));
    expect(read.isError).toBe(false);
    expect(read.data).toMatchObject({ path: 'src/index.ts', sha256: sha(bytes), size: bytes.length, binary: false });
    expect(read.data.content).toBe(bytes.toString());
    const hashOnly = await call(client, 'read_file', { path: 'src/index.ts', hash_only: true });
    expect(hashOnly.data.sha256).toBe(sha(bytes));
    expect(hashOnly.data.content).toBeUndefined();

    await writeFile(path.join(root, 'blob.bin'), Buffer.from([0, 1, 2, 255]));
    const binary = await call(client, 'read_file', { path: 'blob.bin' });
    expect(binary.data).toMatchObject({ binary: true, size: 4 });
    expect(binary.data.content).toBeUndefined();
  });

  it('when write_file is retried with the same expected_sha256, then it is applied once; a wrong hash is a conflict', async () => {
    const args = { path: 'docs/new/notes.md', content: 'first\n', expected_sha256: 'absent' };
    const first = await call(client, 'write_file', args);
    expect(first.data).toMatchObject({ applied: true, already: false, sha256: sha('first\n') });
    const retry = await call(client, 'write_file', args);
    expect(retry.isError).toBe(false);
    expect(retry.data).toMatchObject({ applied: false, already: true, sha256: sha('first\n') });
    expect(await readFile(path.join(root, 'docs/new/notes.md'), 'utf8')).toBe('first\n');

    const conflict = await call(client, 'write_file', { ...args, content: 'second\n' });
    expect(conflict.isError).toBe(true);
    expect(conflict.text).toContain(`conflict: expected absent, found ${sha('first\n')}`);
    const wrong = await call(client, 'write_file', { ...args, content: 'second\n', expected_sha256: sha('nope') });
    expect(wrong.text).toContain(`conflict: expected ${sha('nope')}, found ${sha('first\n')}`);
    const right = await call(client, 'write_file', { ...args, content: 'second\n', expected_sha256: sha('first\n') });
    expect(right.data).toMatchObject({ applied: true, sha256: sha('second\n') });
  });

  it('when apply_patch "a"→"aa" is retried with the same expected_sha256, then the text is not doubled', async () => {
    const before = await readFile(path.join(root, 'README.md'), 'utf8');
    expect(before).toBe('hi a\n');
    const args = { path: 'README.md', edits: [{ old_text: 'a', new_text: 'aa' }], expected_sha256: sha(before) };
    const first = await call(client, 'apply_patch', args);
    expect(first.data).toMatchObject({ applied: true, already: false, sha256: sha('hi aa\n') });
    const retry = await call(client, 'apply_patch', args);
    expect(retry.isError).toBe(false);
    expect(retry.data).toMatchObject({ applied: false, already: true });
    expect(await readFile(path.join(root, 'README.md'), 'utf8')).toBe('hi aa\n');

    const noHash = await call(client, 'apply_patch', { path: 'README.md', edits: [{ old_text: 'a', new_text: 'aa' }] });
    expect(noHash.isError).toBe(true);
    expect(noHash.text).toContain('edit 1: old_text found 2 times');

    const conflict = await call(client, 'apply_patch', { ...args, edits: [{ old_text: 'hi', new_text: 'ho' }] });
    expect(conflict.isError).toBe(true);
    expect(conflict.text).toContain(`conflict: expected ${sha(before)}, found ${sha('hi aa\n')}`);

    // Without a hash: old_text gone and new_text present once counts as applied.
    const rename = { path: 'src/index.ts', edits: [{ old_text: 'answer = 42', new_text: 'answer = 43' }] };
    expect((await call(client, 'apply_patch', rename)).data).toMatchObject({ applied: true });
    expect((await call(client, 'apply_patch', rename)).data).toMatchObject({ already: true });
  });

  it('when a directory is listed or searched, then .git is skipped and matches carry path and line', async () => {
    const top = await call(client, 'list_dir', {});
    const names = (top.data.entries as { path: string; type: string }[]).map((e) => `${e.type}:${e.path}`);
    expect(names).toContain('file:README.md');
    expect(names).toContain('dir:src');
    expect(names.some((n) => n.includes('.git'))).toBe(false);
    const deep = await call(client, 'list_dir', { recursive: true });
    expect((deep.data.entries as { path: string }[]).map((e) => e.path)).toContain('src/index.ts');

    const literal = await call(client, 'search_text', { pattern: 'name = "agency"' });
    expect(literal.data.matches).toEqual([{ path: 'src/index.ts', line: 2, text: 'export const name = "agency";' }]);
    const regex = await call(client, 'search_text', { pattern: '^export const \\w+ = \\d+', regex: true, path: 'src' });
    expect(regex.data.matches).toEqual([{ path: 'src/index.ts', line: 1, text: 'export const answer = 43;' }]);
    const bad = await call(client, 'search_text', { pattern: '(', regex: true });
    expect(bad.isError).toBe(true);
    expect(bad.text).toContain('invalid regular expression');
  });

  it('when files changed, then git_status and git_diff (also staged) show them', async () => {
    const status = await call(client, 'git_status');
    expect(status.isError).toBe(false);
    expect(status.data.clean).toBe(false);
    expect(status.data.output).toContain(' M README.md');
    expect(status.data.output).toContain('?? docs/new/notes.md');
    const diff = await call(client, 'git_diff');
    expect(diff.data.diff).toContain('-hi a\n+hi aa');
    execFileSync('git', ['add', 'README.md'], { cwd: root });
    const staged = await call(client, 'git_diff', { staged: true });
    expect(staged.data.diff).toContain('+hi aa');
    expect(staged.data.diff).not.toContain('answer');
  });

  it('when a command runs, then its output and exit code come back from the sandbox; a non-zero exit is not an error', async () => {
    const node = await call(client, 'run_command', { argv: ['node', '-e', 'console.log(6 * 7)'] });
    if (node.isError) throw new Error(node.text);
    expect(node.isError).toBe(false);
    expect(node.data).toMatchObject({
      exitCode: 0,
      output: '42\n',
      sandbox: 'bubblewrap',
      limit: null,
      timedOut: false,
    });
    const failing = await call(client, 'run_command', { argv: ['false'] });
    expect(failing.isError).toBe(false);
    expect(failing.data.exitCode).toBe(1);
    const writes = await call(client, 'run_command', {
      argv: ['sh', '-c', 'echo made > made.txt && git status --short'],
    });
    expect(writes.data.exitCode).toBe(0);
    expect(await readFile(path.join(root, 'made.txt'), 'utf8')).toBe('made\n');

    const notAllowed = await call(client, 'run_command', { argv: ['curl', 'http://example.com'] });
    expect(notAllowed.isError).toBe(true);
    expect(notAllowed.text).toContain('command "curl" is not allowed');
    const withPath = await call(client, 'run_command', { argv: ['/bin/sh', '-c', 'true'] });
    expect(withPath.isError).toBe(true);
    expect(withPath.text).toContain('bare name from the allow-list');
  });

  it('when a call does not match the schema, then it is an error result and the server keeps answering', async () => {
    const bad = await call(client, 'run_command', { argv: 'ls -la' });
    expect(bad.isError).toBe(true);
    expect(bad.text).toMatch(/Input validation error[\s\S]*argv/);
    const missing = await call(client, 'write_file', { path: 'x.txt' });
    expect(missing.isError).toBe(true);
    const alive = await call(client, 'read_file', { path: 'README.md', hash_only: true });
    expect(alive.isError).toBe(false);
  });
});
