/**
 * Portable workspaces (activities/execution/workspace.ts) against the real blob store in PostgreSQL: two workspace
 * directories stand for two workers' disks.
 */
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkspaces, sweepIdleWorkspaces, type Workspaces } from '../../activities/execution/workspace.js';
import { createDb, type Db } from '../../common/db.js';
import { randomUUID } from 'node:crypto';
import { sampleRepo, testConfig } from '../helpers/stack.js';

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

describe('a portable workspace', () => {
  let db: Db;
  let diskA: string;
  let diskB: string;
  let a: Workspaces;
  let b: Workspaces;
  beforeAll(async () => {
    db = createDb(testConfig().DATABASE_URL);
    diskA = await mkdtemp(path.join(os.tmpdir(), 'agency-disk-a-'));
    diskB = await mkdtemp(path.join(os.tmpdir(), 'agency-disk-b-'));
    a = createWorkspaces(db, diskA);
    b = createWorkspaces(db, diskB);
  });
  afterAll(async () => {
    await db?.end();
    await rm(diskA, { recursive: true, force: true });
    await rm(diskB, { recursive: true, force: true });
  });

  it('when changed on one worker, then another rebuilds it at the recorded head from the blob store alone, and a release drops its references', async () => {
    const source = await sampleRepo();
    const { workdir, ref } = await a.create('default', `ws-${randomUUID()}`, source);
    expect(ref.head).toBe(ref.baseCommit);
    await writeFile(path.join(workdir, 'new.txt'), 'one\n');
    const first = await a.snapshot(ref, workdir, 'step 0');
    expect(first.version).toBe(1);
    expect(first.headBundle).toMatch(/^[0-9a-f]{64}$/);
    // An unchanged tree records nothing new.
    expect(await a.snapshot(first, workdir, 'step 1')).toEqual(first);
    await writeFile(path.join(workdir, 'new.txt'), 'two\n');
    const second = await a.snapshot(first, workdir, 'step 2');

    // The source repository is gone: worker B rebuilds from the bundles only.
    await rm(source, { recursive: true, force: true });
    const copy = await b.materialize(second);
    expect(await readFile(path.join(copy, 'new.txt'), 'utf8')).toBe('two\n');
    // Brought back to an earlier head, and forward again, from what it has.
    expect(await readFile(path.join(await b.materialize(first), 'new.txt'), 'utf8')).toBe('one\n');
    expect(await readFile(path.join(await b.materialize(second), 'new.txt'), 'utf8')).toBe('two\n');

    const refs = () =>
      db.query(`SELECT sha256 FROM blob_refs WHERE owner_kind = 'workspace' AND owner_id = $1`, [ref.id]);
    expect((await refs()).rowCount).toBe(3);
    await b.release(second);
    expect(await exists(copy)).toBe(false);
    expect((await refs()).rowCount).toBe(0);
  });

  it('when a copy holds changes that were never recorded (a crash between a change and its record), then it is put back to the head first', async () => {
    const { workdir, ref } = await a.create('default', `ws-${randomUUID()}`, await sampleRepo());
    await writeFile(path.join(workdir, 'recorded.txt'), 'kept\n');
    const head = await a.snapshot(ref, workdir, 'step 0');
    await writeFile(path.join(workdir, 'recorded.txt'), 'half-done\n');
    await writeFile(path.join(workdir, 'stray.txt'), 'lost with the crash\n');
    await a.materialize(head);
    expect(await readFile(path.join(workdir, 'recorded.txt'), 'utf8')).toBe('kept\n');
    expect(await exists(path.join(workdir, 'stray.txt'))).toBe(false);
  });

  it('when a copy has not been used for the idle time, then the sweep removes it and leaves the others', async () => {
    const disk = await mkdtemp(path.join(os.tmpdir(), 'agency-disk-sweep-'));
    const ws = createWorkspaces(db, disk);
    const old = await ws.create('default', `ws-${randomUUID()}`, await sampleRepo());
    const fresh = await ws.create('default', `ws-${randomUUID()}`, await sampleRepo());
    const longAgo = new Date(Date.now() - 3 * 3_600_000);
    await utimes(path.join(old.workdir, '.git', 'agency-ready'), longAgo, longAgo);
    expect(await sweepIdleWorkspaces(disk, 3_600_000)).toEqual([old.workdir]);
    expect(await exists(fresh.workdir)).toBe(true);
    // Used again: materialize rebuilds it.
    expect(await exists(path.join(await ws.materialize(old.ref), '.git'))).toBe(true);
    await rm(disk, { recursive: true, force: true });
  });
});
