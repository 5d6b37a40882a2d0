/**
 * Repositories as a tenant's resources (migrations/0006_repositories.sql): what a task may clone and where its result
 * may be pushed. A task names a repository by id; another tenant's is not found.
 *
 * The trust boundary:
 * - URLs are https://, ssh:// or file://. A file:// path must lie under a root the operator configured for the tenant
 *   (REPOSITORY_FILE_ROOTS), after realpath (symlinks and `..` resolved), at registration and again at clone and push
 *   time; its git directory may not point elsewhere (a `.git` file, `commondir`, or object alternates outside the root).
 * - Credentials are by reference (auth_secret_ref: an environment variable of the execution workers, as tool servers'):
 *   the secret is read in the activity at clone/push time and handed to git through its environment only
 *   (GIT_CONFIG_* for an https Authorization header, a 0600 key file for ssh), never on a command line, in the
 *   database, in a workflow's history or in a log. Errors are scrubbed of the secret and of URL credentials.
 * - The deprecated `workspace` (a local path) is allowed only under LOCAL_WORKSPACE_ROOTS for the tenant.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { z } from 'zod';
import type { RootsByTenant } from './config.js';
import type { Db } from './db.js';
import { GitRefSchema, RepositoryIdSchema, type RepositorySource } from '../workflows/task/definitions.js';
import { GateCommandsSchema, type GateCommands } from './gate-commands.js';

const exec = promisify(execFile);

export { RepositoryIdSchema };

const SECRET_REF = /^[A-Z][A-Z0-9_]{0,127}$/;

/** The URL of a repository: https://, ssh:// or file://, with no password (credentials go by reference). */
const RepositoryUrlSchema = z
  .string()
  .max(2048)
  .superRefine((raw, ctx) => {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected an https://, ssh:// or file:// URL' });
      return;
    }
    if (!['https:', 'ssh:', 'file:'].includes(url.protocol))
      ctx.addIssue({ code: 'custom', message: 'expected an https://, ssh:// or file:// URL' });
    if (url.password || (url.protocol === 'https:' && url.username))
      ctx.addIssue({
        code: 'custom',
        message: 'credentials do not go in the URL: name the secret that holds them in auth_secret_ref',
      });
    if (url.protocol === 'file:' && url.host && url.host !== 'localhost')
      ctx.addIssue({ code: 'custom', message: 'a file:// URL names a path on the workers (no host)' });
    if ((url.protocol === 'https:' || url.protocol === 'ssh:') && !url.host)
      ctx.addIssue({ code: 'custom', message: 'expected a host' });
  });

/** A repository as an admin registers it (POST /api/v1/repositories). */
export const RepositoryInputSchema = z
  .object({
    id: RepositoryIdSchema,
    url: RepositoryUrlSchema,
    default_ref: GitRefSchema.default('main'),
    auth_secret_ref: z
      .string()
      .regex(SECRET_REF, 'the name of an environment variable of the execution workers (A-Z, 0-9, _), not a secret')
      .optional(),
    deliver_branch: z.boolean().default(false),
    /** Commands of the gates the tier policy requires (common/gate-commands.ts), by kind. */
    gates: GateCommandsSchema.default({}),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.auth_secret_ref && r.url.startsWith('file:'))
      ctx.addIssue({ code: 'custom', path: ['auth_secret_ref'], message: 'a file:// repository takes no credentials' });
  });
export type RepositoryInput = z.infer<typeof RepositoryInputSchema>;

export interface Repository {
  tenantId: string;
  id: string;
  url: string;
  defaultRef: string;
  authSecretRef: string | null;
  deliverBranch: boolean;
  /** Commands of the gates the tier policy requires, by kind. */
  gates: GateCommands;
  createdBy: string;
  createdAt: string;
}

interface Row {
  tenant_id: string;
  id: string;
  url: string;
  default_ref: string;
  auth_secret_ref: string | null;
  deliver_branch: boolean;
  gates: GateCommands | null;
  created_by: string;
  created_at: Date;
}

const fromRow = (r: Row): Repository => ({
  tenantId: r.tenant_id,
  id: r.id,
  url: r.url,
  defaultRef: r.default_ref,
  authSecretRef: r.auth_secret_ref,
  deliverBranch: r.deliver_branch,
  gates: r.gates ?? {},
  createdBy: r.created_by,
  createdAt: r.created_at.toISOString(),
});

export async function listRepositories(db: Db, tenantId: string): Promise<Repository[]> {
  const { rows } = await db.query<Row>('SELECT * FROM repositories WHERE tenant_id = $1 ORDER BY id', [tenantId]);
  return rows.map(fromRow);
}

export async function getRepository(db: Db, tenantId: string, id: string): Promise<Repository | undefined> {
  const { rows } = await db.query<Row>('SELECT * FROM repositories WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
  return rows[0] && fromRow(rows[0]);
}

/** Inserts a tenant's repository; undefined when the id is taken in that tenant. */
export async function insertRepository(
  db: Db,
  tenantId: string,
  createdBy: string,
  r: RepositoryInput & { url: string },
): Promise<Repository | undefined> {
  const { rows } = await db.query<Row>(
    `INSERT INTO repositories (tenant_id, id, url, default_ref, auth_secret_ref, deliver_branch, gates, created_by)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING RETURNING *`,
    [
      tenantId,
      r.id,
      r.url,
      r.default_ref,
      r.auth_secret_ref ?? null,
      r.deliver_branch,
      JSON.stringify(r.gates ?? {}),
      createdBy,
    ],
  );
  return rows[0] && fromRow(rows[0]);
}

export async function deleteRepository(db: Db, tenantId: string, id: string): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM repositories WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
  return (rowCount ?? 0) > 0;
}

// ---- roots -------------------------------------------------------------------------------------------------------

/** The roots configured for a tenant (its own and "*"). */
export function rootsFor(roots: RootsByTenant, tenantId: string): string[] {
  return [...(roots[tenantId] ?? []), ...(roots['*'] ?? [])];
}

const within = (p: string, root: string): boolean => p === root || p.startsWith(root.endsWith('/') ? root : root + '/');

/** The real path of `p` when it (after realpath) lies under one of the roots (also resolved); else undefined. */
export async function realPathUnder(p: string, roots: string[]): Promise<string | undefined> {
  const real = await realpath(p).catch(() => undefined);
  if (real === undefined) return undefined;
  for (const root of roots) {
    const realRoot = await realpath(root).catch(() => undefined);
    if (realRoot && within(real, realRoot)) return real;
  }
  return undefined;
}

/**
 * For the deprecated `workspace`: its real path when it lies under one of the roots. A path that does not exist is
 * checked as written, normalised (`..` resolved): the task then fails at clone time, as before.
 */
export async function localWorkspaceUnder(p: string, roots: string[]): Promise<string | undefined> {
  const real = await realPathUnder(p, roots);
  if (real) return real;
  const exists = await stat(p).then(
    () => true,
    () => false,
  );
  if (exists) return undefined;
  const normal = path.resolve(p);
  for (const root of roots) {
    const realRoot = await realpath(root).catch(() => path.resolve(root));
    if (within(normal, realRoot) || within(normal, path.resolve(root))) return normal;
  }
  return undefined;
}

/** A file:// URL's path (undefined for other schemes). */
export function fileUrlPath(url: string): string | undefined {
  return url.startsWith('file:') ? fileURLToPath(new URL(url)) : undefined;
}

/**
 * A file:// repository confined to the roots: its real path, and its git directory neither a `.git` file, a
 * `commondir` nor object alternates that lead out of the roots. Throws RepositoryRefused naming the reason.
 */
export async function confineFileRepository(url: string, roots: string[]): Promise<string> {
  const p = fileUrlPath(url);
  if (p === undefined) throw new RepositoryRefused(`${redactUrl(url)} is not a file:// URL`);
  if (!roots.length)
    throw new RepositoryRefused('no file:// roots are configured for this tenant (REPOSITORY_FILE_ROOTS)');
  const real = await realPathUnder(p, roots);
  if (!real) {
    const exists = await stat(p).then(
      () => true,
      () => false,
    );
    throw new RepositoryRefused(
      exists
        ? `${p} leads outside the file:// roots configured for this tenant (symlinks and .. are resolved)`
        : `${p} does not exist`,
    );
  }
  const dotGit = path.join(real, '.git');
  const info = await stat(dotGit).catch(() => undefined);
  const gitDirs: string[] = [];
  if (info?.isFile()) {
    throw new RepositoryRefused(`${p}: a .git file (a link to a git directory elsewhere) is not accepted`);
  } else if (info?.isDirectory()) {
    gitDirs.push(dotGit);
  } else {
    gitDirs.push(real); // a bare repository
  }
  for (const dir of gitDirs) {
    const checkInside = async (target: string, what: string) => {
      if (!(await realPathUnder(target, roots)))
        throw new RepositoryRefused(`${p}: its ${what} lead outside the file:// roots configured for this tenant`);
    };
    if (!(await realPathUnder(dir, roots))) await checkInside(dir, 'git directory');
    const common = await readFile(path.join(dir, 'commondir'), 'utf8').catch(() => undefined);
    if (common !== undefined) await checkInside(path.resolve(dir, common.trim()), 'commondir');
    const objects = path.join(dir, 'objects');
    const alternates = await readFile(path.join(objects, 'info', 'alternates'), 'utf8').catch(() => undefined);
    for (const line of (alternates ?? '').split('\n').map((l) => l.trim())) {
      if (line && !line.startsWith('#')) await checkInside(path.resolve(objects, line), 'object alternates');
    }
  }
  return real;
}

export class RepositoryRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RepositoryRefused';
  }
}

// ---- git with credentials ----------------------------------------------------------------------------------------

/** A URL without user info (user names, passwords, tokens), for messages and records. */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.username || url.password) {
      url.username = '';
      url.password = '';
    }
    return url.toString();
  } catch {
    return raw.replace(/\/\/[^@/]*@/, '//');
  }
}

/** Text with every secret and every URL's user info replaced. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join('[redacted]');
  return out.replace(/([a-z][a-z0-9+.-]*:\/\/)[^@\s/]*@/gi, '$1[redacted]@');
}

export interface GitAccess {
  /** Environment for git (credentials, protocol allow-list, no prompts). */
  env: NodeJS.ProcessEnv;
  /** Values to scrub from anything git says. */
  secrets: string[];
  /** What to give git: the URL, or for file:// the real path re-confined to the roots. */
  url: string;
  dispose(): Promise<void>;
}

/**
 * What git needs to reach a repository: the secret read from the worker's environment by its name (a missing one is a
 * RepositoryRefused naming the variable, never a value), a file:// URL re-checked against the roots, and only the
 * repository's protocol allowed (no ext::, no submodule redirects to other transports).
 */
export async function gitAccess(
  repo: RepositorySource,
  fileRoots: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<GitAccess> {
  const scheme = new URL(repo.url).protocol.replace(':', '');
  const base: NodeJS.ProcessEnv = {
    ...env,
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '/bin/false',
    SSH_ASKPASS: '/bin/false',
    GIT_ALLOW_PROTOCOL: scheme,
    GIT_CONFIG_NOSYSTEM: '1',
  };
  let url = repo.url;
  const cleanups: (() => Promise<void>)[] = [];
  const secrets: string[] = [];
  if (scheme === 'file') {
    // The real path itself (git's local transport): what was checked is what git opens.
    url = await confineFileRepository(repo.url, fileRoots);
  } else if (repo.authSecretRef) {
    const secret = env[repo.authSecretRef];
    if (!secret) {
      throw new RepositoryRefused(
        `the secret ${repo.authSecretRef} (repository ${repo.id}) is not set on the execution workers`,
      );
    }
    secrets.push(secret);
    if (scheme === 'https') {
      // An Authorization header: "Bearer <token>" or "Basic <base64>", as tool servers' auth_secret_ref holds.
      const header = /^[A-Za-z]+ \S/.test(secret) ? secret : `Bearer ${secret}`;
      secrets.push(header);
      Object.assign(base, {
        GIT_CONFIG_COUNT: '1',
        GIT_CONFIG_KEY_0: 'http.extraHeader',
        GIT_CONFIG_VALUE_0: `Authorization: ${header}`,
      });
    } else {
      // ssh: the secret is a private key; a 0600 file for this command only.
      const dir = await mkdtemp(path.join(os.tmpdir(), 'agency-ssh-'));
      const key = path.join(dir, 'id');
      await writeFile(key, secret.endsWith('\n') ? secret : `${secret}\n`, { mode: 0o600 });
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      base.GIT_SSH_COMMAND = `ssh -i ${key} -o IdentitiesOnly=yes -o BatchMode=yes`;
    }
  }
  return {
    env: base,
    secrets,
    url,
    dispose: async () => {
      for (const c of cleanups) await c();
    },
  };
}

/** Runs git; a failure's message names the command (URL redacted) and git's stderr, scrubbed of the secrets. */
export async function runGit(
  cwd: string,
  args: string[],
  access: Pick<GitAccess, 'env' | 'secrets'>,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<string> {
  try {
    const { stdout } = await exec('git', args, {
      cwd,
      env: { ...access.env, ...extraEnv },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 10 * 60_000,
    });
    return stdout.trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const said = scrub((e.stderr || e.message).trim().slice(-2000), access.secrets);
    const shown = args.map((a) => scrub(redactUrl(a), access.secrets)).join(' ');
    // The network or the server failing for now is retried (Temporal's retry policy); anything else is the request's.
    // No cause attached: git's raw error is not scrubbed of the secrets.
    // eslint-disable-next-line preserve-caught-error
    if (TRANSIENT_GIT_FAILURE.test(said)) throw new Error(`git ${shown} failed for now: ${said}`);
    throw new RepositoryRefused(`git ${shown} failed: ${said}`);
  }
}

/** What git prints when the network or the remote is down for now, not when the request is wrong. */
export const TRANSIENT_GIT_FAILURE =
  /Could not resolve host|Connection (timed out|refused|reset)|Operation timed out|returned error: 5\d\d|early EOF|RPC failed|Failed to connect/i;
