/**
 * The built-in workspace MCP server: file, search, git and command tools confined to one directory.
 *
 * `createWorkspaceServer(options)` returns an McpServer without a transport, so tests can connect it in-process;
 * main.ts connects it to stdio. Every path goes through confine.ts and every command through sandbox.ts.
 * Refusals and failures come back as `isError` results naming the rule that was broken; a tool never throws out of
 * its handler, so one bad call cannot take the server down.
 *
 * Tools: read_file, write_file, apply_patch (both idempotent under retry with expected_sha256), list_dir, search_text,
 * run_command, git_status, git_diff. Each declares its capabilities in `_meta['agency/capabilities']`.
 */
import { createHash } from 'node:crypto';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import vm from 'node:vm';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { ConfinementError, openForRead, readWriteTarget, realRoot, resolveExisting, writeConfined } from './confine.js';
import {
  CommandRefused,
  DEFAULT_LIMITS,
  detectSandbox,
  resolveProgram,
  runOnHost,
  runSandboxed,
  type SandboxInfo,
  type SandboxLimits,
} from './sandbox.js';

export const DEFAULT_ALLOWED_COMMANDS: readonly string[] = [
  'node',
  'npm',
  'npx',
  'git',
  'sh',
  'bash',
  'cat',
  'ls',
  'echo',
  'true',
  'false',
  'sleep',
  'test',
  'grep',
  'find',
  'head',
  'tail',
  'wc',
  'sort',
  'diff',
  'mkdir',
  'cp',
  'mv',
  'rm',
  'touch',
  'ln',
];

const MiB = 1024 * 1024;
/** read_file returns at most this much content (the hash always covers the whole file). */
export const MAX_READ_BYTES = MiB;
const MAX_WRITE_CHARS = 10 * MiB;
const MAX_LIST_ENTRIES = 2_000;
const MAX_SEARCH_FILE_BYTES = MiB;
const MAX_SEARCH_FILES = 5_000;
const SEARCH_BUDGET_MS = 10_000;
const MAX_MATCH_LINE_CHARS = 400;
const GIT_TIMEOUT_MS = 30_000;

export interface WorkspaceServerOptions {
  root: string;
  allowedCommands?: readonly string[];
  limits?: Partial<SandboxLimits>;
  /** 'none' forces unsandboxed execution (tests only; still needs allowUnsandboxed to run anything). */
  sandbox?: 'auto' | 'none';
  allowUnsandboxed?: boolean;
  /** The server's environment: PATH to find programs, BWRAP_PATH; never passed to commands. */
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

function positive(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return value !== undefined && value !== '' && Number.isFinite(n) && n > 0 ? n : fallback;
}

/** Options from WORKSPACE_ALLOWED_COMMANDS, SANDBOX_* and BWRAP_PATH (listed in the header of main.ts). */
export function workspaceOptionsFromEnv(root: string, env: NodeJS.ProcessEnv = process.env): WorkspaceServerOptions {
  const allowed = env.WORKSPACE_ALLOWED_COMMANDS?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    root,
    allowedCommands: allowed && allowed.length > 0 ? allowed : DEFAULT_ALLOWED_COMMANDS,
    sandbox: env.SANDBOX_MODE === 'none' ? 'none' : 'auto',
    allowUnsandboxed: env.SANDBOX_ALLOW_UNSANDBOXED === 'true',
    limits: {
      timeoutMs: positive(env.SANDBOX_TIMEOUT_SECONDS, DEFAULT_LIMITS.timeoutMs / 1000) * 1000,
      maxOutputBytes: positive(env.SANDBOX_MAX_OUTPUT_BYTES, DEFAULT_LIMITS.maxOutputBytes),
      maxProcesses: positive(env.SANDBOX_MAX_PROCESSES, DEFAULT_LIMITS.maxProcesses),
      memoryBytes: positive(env.SANDBOX_MEMORY_BYTES, DEFAULT_LIMITS.memoryBytes),
    },
    env,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Results

/** A refusal that is the caller's to fix (bad argument, conflict); its message is shown as is. */
class ToolError extends Error {
  override name = 'ToolError';
}

function ok(structured: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(structured, null, 2) }], structuredContent: structured };
}

function fail(message: string, structured?: Record<string, unknown>): CallToolResult {
  const result: CallToolResult = { content: [{ type: 'text', text: message }], isError: true };
  if (structured) result.structuredContent = structured;
  return result;
}

async function guarded(fn: () => Promise<CallToolResult>): Promise<CallToolResult> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ConfinementError || err instanceof CommandRefused || err instanceof ToolError) {
      return fail(err.message);
    }
    const e = err as NodeJS.ErrnoException;
    return fail(`failed: ${e.code ? `${e.code}: ` : ''}${e.message}`);
  }
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function count(haystack: string, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i !== -1; i = haystack.indexOf(needle, i + needle.length)) n++;
  return n;
}

/** Binary: a NUL byte early on, or not valid UTF-8. */
function decodeText(data: Buffer): string | undefined {
  if (data.subarray(0, 8192).includes(0)) return undefined;
  try {
    // stream: true tolerates a character cut in half at the end of a truncated read.
    return new TextDecoder('utf-8', { fatal: true }).decode(data, { stream: true });
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Schemas

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex sha256');
const RelPath = z.string().min(1).max(4096).describe('path relative to the workspace root');
const Capabilities = (...caps: string[]): Record<string, unknown> => ({ 'agency/capabilities': caps });

const WriteResult = {
  path: z.string(),
  sha256: z.string().describe('sha256 of the file after the call'),
  applied: z.boolean().describe('true if this call changed the file'),
  already: z.boolean().describe('true if the file already had the requested content (a retried call)'),
};
const RunResult = {
  exitCode: z.number().nullable(),
  signal: z.string().nullable(),
  timedOut: z.boolean(),
  limit: z.enum(['time', 'output', 'processes', 'memory', 'file-size', 'cancelled']).nullable(),
  output: z.string().describe('stdout and stderr interleaved'),
  truncated: z.boolean(),
  durationMs: z.number(),
  sandbox: z.enum(['bubblewrap', 'none']),
};

// ---------------------------------------------------------------------------------------------------------------
// The server

export async function createWorkspaceServer(options: WorkspaceServerOptions): Promise<McpServer> {
  const root = await realRoot(options.root);
  const env = options.env ?? process.env;
  const allowed = options.allowedCommands ?? DEFAULT_ALLOWED_COMMANDS;
  const limits: SandboxLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const log = options.log ?? (() => undefined);
  const sandbox = (): Promise<SandboxInfo> => detectSandbox({ env, mode: options.sandbox ?? 'auto', log });

  // Read-check-write sequences (write_file, apply_patch) run one at a time, so two retries cannot interleave.
  let writes: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = writes.then(fn, fn);
    writes = next.catch(() => undefined);
    return next;
  };

  const server = new McpServer(
    { name: 'agency-workspace', version: '1.0.0' },
    { capabilities: { tools: {} }, maxToolInputElements: 10_000 },
  );

  server.registerTool(
    'read_file',
    {
      title: 'Read a file',
      description:
        `Reads a text file in the workspace. Returns its sha256 (of the whole file), size and content (at most ${MAX_READ_BYTES} bytes; ` +
        '`truncated` says when there is more). Binary files (a NUL byte or invalid UTF-8) return the hash and size ' +
        'without content (`binary: true`). hash_only skips the content. Symlinks leading outside the workspace, ' +
        'hard-linked files, devices, FIFOs and sockets are refused.',
      inputSchema: {
        path: RelPath,
        hash_only: z.boolean().optional().describe('return only sha256 and size (e.g. to get expected_sha256)'),
      },
      outputSchema: {
        path: z.string(),
        sha256: z.string(),
        size: z.number(),
        binary: z.boolean(),
        truncated: z.boolean(),
        content: z.string().optional(),
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
      _meta: Capabilities('fs.read'),
    },
    (args) =>
      guarded(async () => {
        const { rel, handle } = await openForRead(root, args.path);
        try {
          const hash = createHash('sha256');
          const kept: Buffer[] = [];
          let keptSize = 0;
          let size = 0;
          for await (const chunk of handle.createReadStream({ autoClose: false, highWaterMark: 64 * 1024 })) {
            const buf = chunk as Buffer;
            hash.update(buf);
            size += buf.length;
            if (!args.hash_only && keptSize < MAX_READ_BYTES) {
              const part = buf.subarray(0, MAX_READ_BYTES - keptSize);
              kept.push(part);
              keptSize += part.length;
            }
          }
          const result: Record<string, unknown> = {
            path: rel,
            sha256: hash.digest('hex'),
            size,
            binary: false,
            truncated: !args.hash_only && size > MAX_READ_BYTES,
          };
          if (!args.hash_only) {
            const text = decodeText(Buffer.concat(kept));
            if (text === undefined) result.binary = true;
            else result.content = text;
          }
          return ok(result);
        } finally {
          await handle.close();
        }
      }),
  );

  server.registerTool(
    'write_file',
    {
      title: 'Write a file',
      description:
        'Creates or replaces a file (UTF-8) in the workspace, creating parent directories. Idempotent: if the file ' +
        'already has exactly this content nothing is written and `already` is true. With expected_sha256 the current ' +
        'file must hash to it ("absent": the file must not exist), otherwise the call fails with a conflict. ' +
        'Never writes under .git/ or through symlinks or hard links.',
      inputSchema: {
        path: RelPath,
        content: z.string().max(MAX_WRITE_CHARS),
        expected_sha256: z
          .union([Sha256, z.literal('absent')])
          .optional()
          .describe('sha256 the current file must have, or "absent" if it must not exist yet'),
      },
      outputSchema: WriteResult,
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
      _meta: Capabilities('fs.write'),
    },
    (args) =>
      guarded(() =>
        exclusive(async () => {
          const { rel, current } = await readWriteTarget(root, args.path);
          const wanted = Buffer.from(args.content, 'utf8');
          const newHash = sha256(wanted);
          if (current && current.equals(wanted))
            return ok({ path: rel, sha256: newHash, applied: false, already: true });
          if (args.expected_sha256) {
            const found = current ? sha256(current) : 'absent';
            if (found !== args.expected_sha256) {
              throw new ToolError(`conflict: expected ${args.expected_sha256}, found ${found} (${rel})`);
            }
          }
          await writeConfined(root, rel, wanted);
          return ok({ path: rel, sha256: newHash, applied: true, already: false });
        }),
      ),
  );

  server.registerTool(
    'apply_patch',
    {
      title: 'Edit a file',
      description:
        'Applies exact-text edits to an existing file, in order: each old_text must occur exactly once in the text at ' +
        'that point and is replaced by new_text. Idempotent under retry: with expected_sha256 (the hash the edits were ' +
        'written against), a file that no longer matches is checked by undoing the edits; if that gives back the ' +
        'expected content the patch was already applied (`already: true`), else the call fails with a conflict. ' +
        'Without expected_sha256, a patch whose old_texts are gone but whose new_texts are each present once counts as applied.',
      inputSchema: {
        path: RelPath,
        edits: z
          .array(
            z.object({
              old_text: z.string().min(1).describe('exact text to replace; must occur exactly once'),
              new_text: z.string().describe('replacement text'),
            }),
          )
          .min(1)
          .max(200),
        expected_sha256: Sha256.optional().describe('sha256 of the file the edits were written against'),
      },
      outputSchema: WriteResult,
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
      _meta: Capabilities('fs.edit'),
    },
    (args) =>
      guarded(() =>
        exclusive(async () => {
          const { rel, current } = await readWriteTarget(root, args.path);
          if (!current) throw new ToolError(`${JSON.stringify(rel)} does not exist; create it with write_file`);
          const text = current.toString('utf8');
          const currentHash = sha256(current);
          const done = (): CallToolResult => ok({ path: rel, sha256: currentHash, applied: false, already: true });

          if (args.expected_sha256 && currentHash !== args.expected_sha256) {
            const undone = undoEdits(text, args.edits);
            if (undone !== undefined && sha256(undone) === args.expected_sha256) return done();
            throw new ToolError(
              `conflict: expected ${args.expected_sha256}, found ${currentHash} (${rel}); ` +
                'the file changed and does not contain this patch',
            );
          }
          const applied = applyEdits(text, args.edits);
          if (typeof applied !== 'string') {
            // Already applied? Only meaningful without a hash (with one, the hash matched the unpatched file).
            const missingOnly = applied.every((p) => p.found === 0);
            if (
              !args.expected_sha256 &&
              missingOnly &&
              args.edits.every((e) => e.new_text && count(text, e.new_text) === 1)
            ) {
              return done();
            }
            const detail = applied.map((p) => `edit ${p.index + 1}: old_text found ${p.found} times`).join('; ');
            throw new ToolError(`patch does not apply to ${rel}: ${detail} (each old_text must occur exactly once)`);
          }
          await writeConfined(root, rel, applied);
          return ok({ path: rel, sha256: sha256(applied), applied: true, already: false });
        }),
      ),
  );

  server.registerTool(
    'list_dir',
    {
      title: 'List a directory',
      description:
        `Lists a directory of the workspace (default: the root), optionally recursively; .git is skipped, symlinks are ` +
        `listed but not followed, and at most ${MAX_LIST_ENTRIES} entries are returned (\`truncated\` says when there are more).`,
      inputSchema: {
        path: z.string().max(4096).optional().describe('directory relative to the workspace root; default the root'),
        recursive: z.boolean().optional(),
      },
      outputSchema: {
        path: z.string(),
        entries: z.array(
          z.object({
            path: z.string(),
            type: z.enum(['file', 'dir', 'symlink', 'other']),
            size: z.number().optional(),
          }),
        ),
        truncated: z.boolean(),
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
      _meta: Capabilities('fs.list'),
    },
    (args) =>
      guarded(async () => {
        const start = await resolveExisting(root, args.path ?? '', 'dir');
        const entries: { path: string; type: 'file' | 'dir' | 'symlink' | 'other'; size?: number }[] = [];
        let truncated = false;
        const queue: { real: string; rel: string }[] = [{ real: start.real, rel: start.rel }];
        while (queue.length > 0 && !truncated) {
          const dir = queue.shift()!;
          const names = (await readdir(dir.real, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
          for (const d of names) {
            if (d.name === '.git') continue;
            if (entries.length >= MAX_LIST_ENTRIES) {
              truncated = true;
              break;
            }
            const rel = path.join(dir.rel, d.name);
            if (d.isFile()) {
              const st = await lstat(path.join(dir.real, d.name)).catch(() => undefined);
              entries.push({ path: rel, type: 'file', ...(st ? { size: st.size } : {}) });
            } else if (d.isDirectory()) {
              entries.push({ path: rel, type: 'dir' });
              if (args.recursive) queue.push({ real: path.join(dir.real, d.name), rel });
            } else {
              entries.push({ path: rel, type: d.isSymbolicLink() ? 'symlink' : 'other' });
            }
          }
        }
        return ok({ path: start.rel || '.', entries, truncated });
      }),
  );

  server.registerTool(
    'search_text',
    {
      title: 'Search file contents',
      description:
        'Finds lines containing a text (or a JavaScript regular expression with regex: true) in the files under a ' +
        `directory of the workspace. Skips .git and node_modules (give a path under node_modules to search there), ` +
        `binary files, files over ${MAX_SEARCH_FILE_BYTES} bytes, symlinks and hard-linked files; scans at most ` +
        `${MAX_SEARCH_FILES} files within ${SEARCH_BUDGET_MS / 1000} s.`,
      inputSchema: {
        pattern: z.string().min(1).max(1000),
        path: z.string().max(4096).optional().describe('directory or file relative to the root; default the root'),
        regex: z.boolean().optional(),
        max_results: z.number().int().min(1).max(1000).optional().describe('default 100'),
      },
      outputSchema: {
        matches: z.array(z.object({ path: z.string(), line: z.number(), text: z.string() })),
        truncated: z.boolean(),
        filesScanned: z.number(),
        filesSkipped: z.number(),
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
      _meta: Capabilities('fs.search'),
    },
    (args) => guarded(() => searchText(root, args)),
  );

  server.registerTool(
    'run_command',
    {
      title: 'Run a command',
      description:
        'Runs a program (argv, never a shell string; argv[0] a bare name from the allow-list: ' +
        `${allowed.join(', ')}) in the workspace, inside a bubblewrap sandbox: no network, no secrets in the ` +
        `environment, only the workspace writable, at most ${limits.maxProcesses} processes, ${limits.memoryBytes} ` +
        `bytes of address space, ${limits.timeoutMs / 1000} s and ${limits.maxOutputBytes} bytes of output. ` +
        'A non-zero exit is a normal result; a refusal or a hit limit is an error (with the partial result).',
      inputSchema: {
        argv: z.array(z.string().max(100_000)).min(1).max(1000),
        timeout_seconds: z
          .number()
          .positive()
          .optional()
          .describe(`default and maximum ${limits.timeoutMs / 1000} (SANDBOX_TIMEOUT_SECONDS)`),
      },
      outputSchema: RunResult,
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
      _meta: Capabilities('process.exec'),
    },
    (args, extra) =>
      guarded(async () => {
        const timeoutMs = Math.min(limits.timeoutMs, Math.round((args.timeout_seconds ?? Infinity) * 1000));
        const progressToken = extra._meta?.progressToken;
        let ticks = 0;
        const onTick =
          progressToken === undefined
            ? undefined
            : () =>
                void extra
                  .sendNotification({
                    method: 'notifications/progress',
                    params: { progressToken, progress: ++ticks, message: `running ${args.argv[0]} (${ticks} s)` },
                  })
                  .catch(() => undefined);
        const result = await runSandboxed(args.argv, {
          root,
          allowed,
          sandbox: await sandbox(),
          allowUnsandboxed: options.allowUnsandboxed ?? false,
          limits: { ...limits, timeoutMs },
          env,
          signal: extra.signal,
          onTick,
        });
        const structured = { ...result };
        if (!result.limit) return ok(structured);
        return fail(`${limitMessage(result, limits, timeoutMs)}\n\n${result.output}`, structured);
      }),
  );

  const git = async (gitArgs: string[]): Promise<{ output: string; truncated: boolean }> => {
    const gitDir = await lstat(path.join(root, '.git')).catch(() => undefined);
    if (!gitDir?.isDirectory()) {
      throw new ToolError(
        'the workspace root has no .git directory (a .git file or symlink is refused) [rule: git-dir]',
      );
    }
    const exe = resolveProgram('git', env, root);
    if (!exe) throw new ToolError('git was not found on the server PATH');
    // Explicit --git-dir/--work-tree: a core.worktree written into .git/config cannot point git at /etc.
    const location = [`--git-dir=${path.join(root, '.git')}`, `--work-tree=${root}`];
    const raw = await runOnHost(exe, [...location, ...(await gitSafetyFlags(exe, root)), ...gitArgs], {
      cwd: root,
      env: gitEnv(root),
      timeoutMs: GIT_TIMEOUT_MS,
      maxOutputBytes: limits.maxOutputBytes,
    });
    if (raw.timedOut) throw new ToolError(`git ${gitArgs[0]} timed out after ${GIT_TIMEOUT_MS / 1000} s`);
    if (raw.exitCode !== 0 && !raw.outputExceeded) {
      throw new ToolError(`git ${gitArgs[0]} failed (exit ${raw.exitCode}): ${raw.output.trim()}`);
    }
    return { output: raw.output, truncated: raw.truncated };
  };

  server.registerTool(
    'git_status',
    {
      title: 'Git status',
      description:
        'Shows `git status --porcelain=v1 --branch` of the workspace (untracked files listed individually). Repository ' +
        'config cannot run code here (fsmonitor, hooks, filters and pagers are disabled).',
      inputSchema: {},
      outputSchema: { output: z.string(), truncated: z.boolean(), clean: z.boolean() },
      annotations: { readOnlyHint: true, openWorldHint: false },
      _meta: Capabilities('vcs.status'),
    },
    () =>
      guarded(async () => {
        const { output, truncated } = await git([
          'status',
          '--porcelain=v1',
          '--branch',
          '--untracked-files=all',
          '--ignore-submodules=all',
        ]);
        const clean = !truncated && output.split('\n').filter((l) => l && !l.startsWith('##')).length === 0;
        return ok({ output, truncated, clean });
      }),
  );

  server.registerTool(
    'git_diff',
    {
      title: 'Git diff',
      description:
        'Shows `git diff` of the working tree against the index, or of the index against HEAD with staged: true. ' +
        'External diff drivers and textconv are disabled; output is capped (`truncated`).',
      inputSchema: { staged: z.boolean().optional() },
      outputSchema: { diff: z.string(), truncated: z.boolean() },
      annotations: { readOnlyHint: true, openWorldHint: false },
      _meta: Capabilities('vcs.diff'),
    },
    (args) =>
      guarded(async () => {
        const { output, truncated } = await git([
          'diff',
          ...(args.staged ? ['--cached'] : []),
          '--no-ext-diff',
          '--no-textconv',
          '--no-color',
          '--ignore-submodules=all',
        ]);
        return ok({ diff: output, truncated });
      }),
  );

  return server;
}

// ---------------------------------------------------------------------------------------------------------------
// Edits

interface Edit {
  old_text: string;
  new_text: string;
}

/** The patched text, or for each edit that does not apply how often its old_text was found. */
function applyEdits(text: string, edits: readonly Edit[]): string | { index: number; found: number }[] {
  let current = text;
  const problems: { index: number; found: number }[] = [];
  edits.forEach((edit, index) => {
    const found = count(current, edit.old_text);
    if (found !== 1) {
      problems.push({ index, found });
      return;
    }
    const at = current.indexOf(edit.old_text);
    current = current.slice(0, at) + edit.new_text + current.slice(at + edit.old_text.length);
  });
  return problems.length > 0 ? problems : current;
}

/** Undoes applied edits in reverse; undefined if some new_text is not there exactly once. */
function undoEdits(text: string, edits: readonly Edit[]): string | undefined {
  let current = text;
  for (const edit of [...edits].reverse()) {
    if (!edit.new_text || count(current, edit.new_text) !== 1) return undefined;
    const at = current.indexOf(edit.new_text);
    current = current.slice(0, at) + edit.old_text + current.slice(at + edit.new_text.length);
  }
  return current;
}

// ---------------------------------------------------------------------------------------------------------------
// Search

async function searchText(
  root: string,
  args: { pattern: string; path?: string; regex?: boolean; max_results?: number },
): Promise<CallToolResult> {
  const max = args.max_results ?? 100;
  let re: RegExp | undefined;
  if (args.regex) {
    try {
      re = new RegExp(args.pattern);
    } catch (err) {
      throw new ToolError(`invalid regular expression: ${(err as Error).message}`);
    }
  }
  const start = await resolveExisting(root, args.path ?? '', 'any');
  const deadline = performance.now() + SEARCH_BUDGET_MS;
  const matches: { path: string; line: number; text: string }[] = [];
  let filesScanned = 0;
  let filesSkipped = 0;
  let truncated = false;
  // A catastrophic regex cannot hang the server: matching runs in a vm context with the remaining time budget.
  const context = vm.createContext({ re, lines: [] as string[], max: 0, out: [] as number[] });
  const matcher = new vm.Script(
    'out = []; for (let i = 0; i < lines.length && out.length < max; i++) { if (re.test(lines[i])) out.push(i); }',
  );

  const files: string[] = [];
  const queue: { real: string; rel: string }[] = [];
  if (start.stat.isFile()) files.push(start.rel);
  else queue.push({ real: start.real, rel: start.rel });

  const scan = async (rel: string): Promise<boolean> => {
    if (matches.length >= max || filesScanned >= MAX_SEARCH_FILES || performance.now() > deadline) return false;
    let data: Buffer;
    try {
      const { handle, stat } = await openForRead(root, rel);
      try {
        if (stat.size > MAX_SEARCH_FILE_BYTES) {
          filesSkipped++;
          return true;
        }
        data = await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch {
      filesSkipped++;
      return true;
    }
    const text = decodeText(data);
    if (text === undefined) {
      filesSkipped++;
      return true;
    }
    filesScanned++;
    const lines = text.split('\n');
    let hits: number[];
    if (re) {
      Object.assign(context, { lines, max: max - matches.length, out: [] });
      try {
        matcher.runInContext(context, { timeout: Math.max(1, Math.round(deadline - performance.now())) });
      } catch {
        throw new ToolError(
          `regular expression took longer than the ${SEARCH_BUDGET_MS / 1000} s search budget (catastrophic backtracking?)`,
        );
      }
      hits = context.out as number[];
    } else {
      hits = [];
      for (let i = 0; i < lines.length && matches.length + hits.length < max; i++) {
        if (lines[i]!.includes(args.pattern)) hits.push(i);
      }
    }
    for (const i of hits) matches.push({ path: rel, line: i + 1, text: lines[i]!.slice(0, MAX_MATCH_LINE_CHARS) });
    return true;
  };

  for (const rel of files) if (!(await scan(rel))) truncated = true;
  while (queue.length > 0 && !truncated) {
    const dir = queue.shift()!;
    const names = (await readdir(dir.real, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
    for (const d of names) {
      if (d.name === '.git' || d.name === 'node_modules') continue;
      const rel = path.join(dir.rel, d.name);
      if (d.isDirectory()) queue.push({ real: path.join(dir.real, d.name), rel });
      else if (d.isFile() && !(await scan(rel))) {
        truncated = true;
        break;
      }
    }
  }
  if (matches.length >= max) truncated = true;
  return ok({ matches, truncated, filesScanned, filesSkipped });
}

// ---------------------------------------------------------------------------------------------------------------
// Commands and git

function limitMessage(result: { limit: string | null }, limits: SandboxLimits, timeoutMs: number): string {
  switch (result.limit) {
    case 'time':
      return `time limit: the command was killed after ${timeoutMs / 1000} s`;
    case 'output':
      return `output limit: the command was killed after ${limits.maxOutputBytes} bytes of output (SANDBOX_MAX_OUTPUT_BYTES)`;
    case 'processes':
      return `process limit: the command tried to run more than ${limits.maxProcesses} processes (SANDBOX_MAX_PROCESSES) and was stopped`;
    case 'memory':
      return `memory limit: the command ran out of its ${limits.memoryBytes} bytes of address space (SANDBOX_MEMORY_BYTES)`;
    case 'file-size':
      return `file-size limit: the command tried to write a file over ${limits.maxFileBytes} bytes`;
    case 'cancelled':
      return 'cancelled: the command was killed because the request was cancelled';
    default:
      return 'limit reached';
  }
}

/** Host git must not run code from the repository's config: no global/system config, no pager, no prompts. */
function gitEnv(root: string): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/bin:/bin',
    HOME: root,
    LANG: 'C.UTF-8',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_CEILING_DIRECTORIES: path.dirname(root),
    GIT_TERMINAL_PROMPT: '0',
    GIT_OPTIONAL_LOCKS: '0',
    GIT_PAGER: 'cat',
  };
}

/**
 * `-c` flags that override anything in .git/config (which a command in the sandbox can write) that would execute code
 * during status/diff: fsmonitor, hooks (post-index-change), pager, external diff, and every filter driver the config
 * names (filter names are arbitrary, so they are read from the config first; reading config runs nothing).
 */
async function gitSafetyFlags(exe: string, root: string): Promise<string[]> {
  const flags = ['core.fsmonitor=false', 'core.hooksPath=/dev/null', 'core.pager=cat', 'diff.external=', 'gc.auto=0'];
  const names = await runOnHost(exe, ['config', '--list', '--name-only', '-z'], {
    cwd: root,
    env: gitEnv(root),
    timeoutMs: GIT_TIMEOUT_MS,
    maxOutputBytes: MiB,
  });
  const filters = new Set<string>();
  for (const name of names.output.split('\0')) {
    const match = /^filter\.(.+)\.[^.]+$/.exec(name.trim());
    if (match?.[1]) filters.add(match[1]);
  }
  for (const f of filters) {
    flags.push(`filter.${f}.clean=`, `filter.${f}.smudge=`, `filter.${f}.process=`, `filter.${f}.required=false`);
  }
  return flags.flatMap((flag) => ['-c', flag]);
}
