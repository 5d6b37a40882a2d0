/**
 * Repositories on the execution pool: fetch a task's registered repository at its ref into a bundle in the blob store
 * (the task's source from then on: no worker needs the repository or its credentials again), and deliver an accepted
 * result as a branch pushed to it. The secret is read here, by its reference, at clone and push time
 * (common/repositories.ts gitAccess), and never returned, logged or put in an error.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { appendAuditEvent, taskAudit } from '../../common/audit.js';
import { addBlobRef, blobStoreOf } from '../../common/blob-store/index.js';
import type { RootsByTenant } from '../../common/config.js';
import type { Db } from '../../common/db.js';
import type { Logger } from '../../common/logger.js';
import { gitAccess, redactUrl, RepositoryRefused, rootsFor, runGit } from '../../common/repositories.js';
import type { WorkspaceRef } from '../../workflows/execution/definitions.js';
import type { DeliveryOutcome, RepositorySource, SourceSnapshot, TaskRef } from '../../workflows/task/definitions.js';
import { activityLogger } from '../logging.js';
import type { Workspaces } from './workspace.js';

const GIT_IDENTITY = {
  GIT_AUTHOR_NAME: 'agent-agency',
  GIT_AUTHOR_EMAIL: 'agency@localhost',
  GIT_COMMITTER_NAME: 'agent-agency',
  GIT_COMMITTER_EMAIL: 'agency@localhost',
};

/** The branch a task's result is delivered on. */
export const deliveryBranch = (taskId: string): string => `agency/${taskId}`;

function refused(err: unknown, type: string): never {
  if (err instanceof RepositoryRefused) throw ApplicationFailure.nonRetryable(err.message, type);
  throw err;
}

export function createRepositoryActivities({
  db,
  fileRoots,
  workspaces,
  log,
  env = process.env,
}: {
  db: Db;
  fileRoots: RootsByTenant;
  workspaces: Workspaces;
  log: Logger;
  env?: NodeJS.ProcessEnv;
}) {
  const actor = 'worker:execution';
  return {
    /**
     * Fetches the repository at `repo.ref` and stores the commit as a bundle in the tenant's blob store. A refused
     * URL (a file:// path outside the tenant's roots), a missing secret or a failed fetch fails the task with a
     * message that names neither the secret nor URL credentials.
     */
    async fetchRepository(task: TaskRef, repo: RepositorySource): Promise<SourceSnapshot> {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'agency-fetch-'));
      try {
        const access = await gitAccess(repo, rootsFor(fileRoots, task.tenantId), env);
        try {
          const work = path.join(dir, 'repo');
          await runGit(dir, ['init', '--quiet', work], access);
          await runGit(work, ['fetch', '--quiet', '--no-tags', '--', access.url, repo.ref], access);
          await runGit(
            work,
            ['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', 'FETCH_HEAD'],
            access,
          );
          const commit = await runGit(work, ['rev-parse', 'HEAD'], access);
          const file = path.join(dir, 'source.bundle');
          await runGit(work, ['bundle', 'create', '--quiet', file, 'HEAD'], access);
          const blob = await blobStoreOf(db).put(task.tenantId, createReadStream(file), {
            mediaType: 'application/x-git-bundle',
          });
          await addBlobRef(db, task.tenantId, blob.sha256, { kind: 'task-source', id: task.executionKey });
          await appendAuditEvent(db, {
            ...taskAudit(task, actor),
            action: 'repository.fetched',
            subject: repo.id,
            idempotencyKey: `${task.executionKey}/repository-fetched`,
            payload: { repository: repo.id, url: redactUrl(repo.url), ref: repo.ref, commit },
          });
          activityLogger(log, task).info({ repository: repo.id, ref: repo.ref, commit }, 'repository fetched');
          return {
            kind: 'bundle',
            tenantId: task.tenantId,
            bundle: blob.sha256,
            commit,
            repository: repo.id,
            ref: repo.ref,
          };
        } finally {
          await access.dispose();
        }
      } catch (err) {
        return refused(err, 'RepositoryRefused');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },

    /**
     * Delivers the workspace's final state as one commit on top of its base commit (the repository's commit the task
     * started from), with a message naming the task and its verdicts, pushed as agency/<task id> (forced: the branch
     * is the task's own, and a retried push puts the same tree there again).
     */
    async deliverBranch(
      task: TaskRef,
      repo: RepositorySource,
      workspace: WorkspaceRef,
      message: string,
    ): Promise<DeliveryOutcome> {
      try {
        const workdir = await workspaces.materialize(workspace);
        const access = await gitAccess(repo, rootsFor(fileRoots, task.tenantId), env);
        try {
          const tree = await runGit(workdir, ['rev-parse', `${workspace.head}^{tree}`], access);
          const commit = await runGit(
            workdir,
            ['commit-tree', tree, '-p', workspace.baseCommit, '-m', message],
            access,
            GIT_IDENTITY,
          );
          const branch = deliveryBranch(task.taskId);
          await runGit(
            workdir,
            ['-c', 'core.hooksPath=/dev/null', 'push', '--quiet', '--', access.url, `+${commit}:refs/heads/${branch}`],
            access,
          );
          await appendAuditEvent(db, {
            ...taskAudit(task, actor),
            action: 'repository.delivered',
            subject: repo.id,
            idempotencyKey: `${task.executionKey}/repository-delivered/${commit}`,
            payload: { repository: repo.id, url: redactUrl(repo.url), branch, commit },
          });
          activityLogger(log, task).info({ repository: repo.id, branch, commit }, 'result delivered');
          return { repository: repo.id, branch, commit };
        } finally {
          await access.dispose();
        }
      } catch (err) {
        return refused(err, 'DeliveryFailed');
      }
    },
  };
}
