/**
 * A task's workspace, durable and portable: any execution worker can serve any step of any task, and the loss of a
 * worker loses nothing that was recorded.
 *
 * What is durable (in the blob store, referenced by the workspace until its task cleans it up):
 * - the base: a git bundle of the commit the workspace was cloned at;
 * - the head: after every change, a snapshot commit of the whole working tree (tracked and new files; ignored files
 *   are not kept), chained on the previous one, and a bundle of base..head.
 * The workflow carries a WorkspaceRef (ids and digests, never bytes) and passes it to every activity.
 *
 * A worker's disk is only a cache: `materialize` brings the local copy to the ref's head before an activity uses it,
 * cloning the base bundle on a worker that has never seen the workspace, fetching the head bundle when the head is
 * newer than the copy, and resetting a copy whose files differ from the head (left over from an attempt that died
 * between its change and its record). So a step is applied to the recorded state, and its effect counts once: in the
 * snapshot its record names.
 */
import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { addBlobRef, blobStoreOf, releaseBlobRefs } from '../../common/blob-store/index.js';
import type { Db } from '../../common/db.js';
import type { WorkspaceRef } from '../../workflows/execution/definitions.js';

const exec = promisify(execFile);

/** Snapshot commits are the platform's, not a person's: fixed identity, no hooks, no signing, no detached-HEAD advice. */
const GIT_ENV = {
  GIT_AUTHOR_NAME: 'agent-agency',
  GIT_AUTHOR_EMAIL: 'agency@localhost',
  GIT_COMMITTER_NAME: 'agent-agency',
  GIT_COMMITTER_EMAIL: 'agency@localhost',
};
const HEAD_REF = 'refs/agency/head';
/** Written in a local copy once it is complete; its mtime is the copy's last use (see sweepIdleWorkspaces). */
const READY = path.join('.git', 'agency-ready');

async function git(cwd: string, args: string[]): Promise<string> {
  const { stdout } = await exec('git', ['-c', 'advice.detachedHead=false', ...args], {
    cwd,
    env: { ...process.env, ...GIT_ENV },
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout.trim();
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** The blob owner that keeps a workspace's bundles until its task is done. */
function owner(ws: Pick<WorkspaceRef, 'id'>) {
  return { kind: 'workspace', id: ws.id };
}

export interface Workspaces {
  /** Where this worker keeps its copy of `ws`. */
  dirOf(ws: Pick<WorkspaceRef, 'id'>): string;
  /** A new workspace `id`, cloned from `source` (a git repository path); its base bundle stored. Idempotent per id. */
  create(tenantId: string, id: string, source: string): Promise<{ workdir: string; ref: WorkspaceRef }>;
  /** This worker's copy of the workspace, at the ref's head (see the module comment). */
  materialize(ws: WorkspaceRef, beat?: () => void): Promise<string>;
  /** Records the working tree as the new head (unchanged tree: the same ref). */
  snapshot(ws: WorkspaceRef, workdir: string, label: string): Promise<WorkspaceRef>;
  /** Removes this worker's copy and releases the workspace's bundles. Safe to call twice. */
  release(ws: Pick<WorkspaceRef, 'id' | 'tenantId'>): Promise<void>;
}

export function createWorkspaces(db: Db, workspacesDir: string): Workspaces {
  const dirOf = (ws: Pick<WorkspaceRef, 'id'>) => path.join(workspacesDir, ws.id.replace(/[^A-Za-z0-9_.-]/g, '_'));

  /** Streams a bundle into the blob store (never whole in memory) and references it from the workspace. */
  async function storeBundle(ws: Pick<WorkspaceRef, 'id' | 'tenantId'>, file: string): Promise<string> {
    const ref = await blobStoreOf(db).put(ws.tenantId, createReadStream(file), {
      mediaType: 'application/x-git-bundle',
    });
    await addBlobRef(db, ws.tenantId, ref.sha256, owner(ws));
    return ref.sha256;
  }

  async function withTempFile<T>(fn: (file: string) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'agency-bundle-'));
    try {
      return await fn(path.join(dir, 'b.bundle'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Runs `fn` with a blob written to a temporary file (git reads bundles from files). */
  function withBlobFile<T>(tenantId: string, sha256: string, fn: (file: string) => Promise<T>): Promise<T> {
    return withTempFile(async (file) => {
      await pipeline(await blobStoreOf(db).get(tenantId, sha256), createWriteStream(file));
      return fn(file);
    });
  }

  return {
    dirOf,

    async create(tenantId, id, source) {
      const workdir = dirOf({ id });
      if (!(await exists(path.join(workdir, READY)))) {
        await rm(workdir, { recursive: true, force: true });
        await mkdir(workspacesDir, { recursive: true });
        await exec('git', ['clone', '--quiet', '--no-hardlinks', source, workdir]);
        await writeFile(path.join(workdir, READY), id);
      }
      const baseCommit = await git(workdir, ['rev-parse', 'HEAD']);
      const baseBundle = await withTempFile(async (file) => {
        await git(workdir, ['bundle', 'create', '--quiet', file, 'HEAD']);
        return storeBundle({ id, tenantId }, file);
      });
      return { workdir, ref: { id, tenantId, baseCommit, baseBundle, head: baseCommit, version: 0 } };
    },

    async materialize(ws, beat = () => {}) {
      const workdir = dirOf(ws);
      const ready = path.join(workdir, READY);
      if (!(await exists(ready))) {
        await rm(workdir, { recursive: true, force: true });
        await mkdir(workspacesDir, { recursive: true });
        await withBlobFile(ws.tenantId, ws.baseBundle, (file) =>
          exec('git', ['-c', 'advice.detachedHead=false', 'clone', '--quiet', file, workdir]),
        );
        await writeFile(ready, ws.id);
        beat();
      }
      const now = new Date();
      await utimes(ready, now, now);
      if (ws.headBundle) {
        const known = await git(workdir, ['cat-file', '-e', `${ws.head}^{commit}`]).then(
          () => true,
          () => false,
        );
        if (!known) {
          await withBlobFile(ws.tenantId, ws.headBundle, (file) =>
            git(workdir, ['fetch', '--quiet', file, `${HEAD_REF}:${HEAD_REF}`]),
          );
          beat();
        }
      }
      // The copy is at the head when its files are: otherwise put them back (files added since are removed).
      await git(workdir, ['add', '--all']);
      const tree = await git(workdir, ['write-tree']);
      if (tree !== (await git(workdir, ['rev-parse', `${ws.head}^{tree}`]))) {
        await git(workdir, ['read-tree', '--reset', '-u', ws.head]);
        await git(workdir, ['clean', '-fdq', '-e', '.git']);
      }
      return workdir;
    },

    async snapshot(ws, workdir, label) {
      await git(workdir, ['add', '--all']);
      const tree = await git(workdir, ['write-tree']);
      if (tree === (await git(workdir, ['rev-parse', `${ws.head}^{tree}`]))) return ws;
      const head = await git(workdir, ['commit-tree', tree, '-p', ws.head, '-m', `${label} (workspace ${ws.id})`]);
      await git(workdir, ['update-ref', HEAD_REF, head]);
      const headBundle = await withTempFile(async (file) => {
        await git(workdir, ['bundle', 'create', '--quiet', file, HEAD_REF, `^${ws.baseCommit}`]);
        return storeBundle(ws, file);
      });
      return { ...ws, head, headBundle, version: ws.version + 1 };
    },

    async release(ws) {
      await rm(dirOf(ws), { recursive: true, force: true });
      await releaseBlobRefs(db, ws.tenantId, owner(ws));
    },
  };
}

/**
 * Removes this worker's copies not used for `idleMs` (copies of workspaces served here once, then by other workers or
 * finished elsewhere: the task's clean-up runs on one worker). Returns the directories removed.
 */
export async function sweepIdleWorkspaces(workspacesDir: string, idleMs: number): Promise<string[]> {
  const entries = await readdir(workspacesDir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of entries) {
    const dir = path.join(workspacesDir, name);
    const used = await stat(path.join(dir, READY)).catch(() => stat(dir).catch(() => undefined));
    if (used && Date.now() - used.mtimeMs > idleMs) {
      await rm(dir, { recursive: true, force: true });
      removed.push(dir);
    }
  }
  return removed;
}
