/**
 * A task's source as a local directory on this worker: the deprecated local path as it is, or a fetched repository's
 * bundle (from the blob store, the tenant's) cloned once per worker into a cache keyed by tenant and commit. Planning
 * reads the working spec from it, the tool coordinator the base files, the execution pool clones its workspace from
 * it. No credentials are needed here: the bundle was fetched by the execution pool (fetchRepository).
 */
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { blobStoreOf } from '../common/blob-store/index.js';
import type { Db } from '../common/db.js';
import type { WorkspaceSource } from '../workflows/task/definitions.js';

const exec = promisify(execFile);
const READY = path.join('.git', 'agency-source-ready');

export function sourceCacheDir(): string {
  return path.join(os.tmpdir(), 'agency-sources');
}

export async function localSource(db: Db, source: WorkspaceSource, cacheDir = sourceCacheDir()): Promise<string> {
  if (typeof source === 'string') return source;
  const dir = path.join(cacheDir, `${source.tenantId}-${source.commit}`.replace(/[^A-Za-z0-9_.-]/g, '_'));
  if (
    await stat(path.join(dir, READY)).then(
      () => true,
      () => false,
    )
  )
    return dir;
  await mkdir(cacheDir, { recursive: true });
  const tmp = await mkdtemp(path.join(cacheDir, '.tmp-'));
  try {
    const bundle = path.join(tmp, 'b.bundle');
    await pipeline(await blobStoreOf(db).get(source.tenantId, source.bundle), createWriteStream(bundle));
    const work = path.join(tmp, 'repo');
    await exec('git', ['-c', 'advice.detachedHead=false', 'clone', '--quiet', bundle, work]);
    await exec('git', ['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', source.commit], {
      cwd: work,
    });
    await writeFile(path.join(work, READY), source.commit);
    await rename(work, dir).catch(async (err: NodeJS.ErrnoException) => {
      // Another activity on this worker made it first.
      if (
        !(await stat(path.join(dir, READY)).then(
          () => true,
          () => false,
        ))
      )
        throw err;
    });
    return dir;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
