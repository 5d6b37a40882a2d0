/**
 * Key custody, checked on credentials rather than on a setting: the decryptor pool runs as its own user (uid 4101)
 * and keeps the campaign's CKKS secret key in a file of mode 0600 that this user owns; the aggregator (the federation
 * pool) runs as another user (uid 4102) with no FEDERATION_KEY_DIR in its environment, and a process with its
 * credentials is refused when it opens the key file. The key is not in PostgreSQL either: neither the blob store nor
 * any table holds its bytes. An encrypted round runs end to end across the three processes.
 * Needs root (to start processes as other users); skipped otherwise, as the private-disk tests are.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@temporalio/client';
import { loadConfig, PROJECT_ROOT } from '../../common/config.js';
import type { Db } from '../../common/db.js';
import { getRound } from '../../common/federation.js';
import { federationCampaignWorkflow } from '../../workflows/index.js';
import { killHard, testEnv } from '../helpers/stack.js';
import {
  campaignStart,
  recordCampaign,
  simSource,
  smallCampaign,
  suffix,
  useFederationStack,
} from '../helpers/federation.js';

const DECRYPTOR_UID = 4101;
const AGGREGATOR_UID = 4102;
const isRoot = process.getuid?.() === 0;

/** A directory the given user owns (its HOME and AGENCY_HOME). */
function homeFor(uid: number): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `agency-uid${uid}-`));
  chownSync(dir, uid, uid);
  return dir;
}

function spawnAs(uid: number, env: Record<string, string>): ChildProcess {
  const home = homeFor(uid);
  return spawn(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'workers', 'main.ts')], {
    cwd: PROJECT_ROOT,
    uid,
    gid: uid,
    env: { PATH: process.env.PATH ?? '', HOME: home, AGENCY_HOME: home, TMPDIR: home, ...env },
    stdio: ['ignore', 'ignore', process.env.TEST_LOG_LEVEL ? 'inherit' : 'ignore'],
  });
}

function uidOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Uid:'))!;
  return Number(line.split(/\s+/)[1]); // real uid
}

describe.runIf(isRoot)('the custody of a campaign’s secret key', () => {
  const base = testEnv();
  const keyDir = path.join(homeFor(DECRYPTOR_UID), 'federation-keys');
  const config = loadConfig(base);
  const tenant = `fedkey-${suffix()}`;
  const ps = [0, 1].map((i) => ({ id: `kc${i}-${suffix()}`, source: simSource(i, 2) }));
  const children: ChildProcess[] = [];
  let decryptor: ChildProcess;
  let aggregator: ChildProcess;
  let client: Client;
  let db: Db;
  beforeAll(() => {
    decryptor = spawnAs(DECRYPTOR_UID, { ...base, WORKER_QUEUES: 'decryptor', FEDERATION_KEY_DIR: keyDir });
    aggregator = spawnAs(AGGREGATOR_UID, { ...base, WORKER_QUEUES: 'federation' });
    children.push(decryptor, aggregator);
  });
  useFederationStack((stack) => ({ db, client } = stack), config, tenant, ps, ['orchestration']);
  afterAll(async () => {
    await Promise.all(children.map(killHard));
  });

  it('when an encrypted round runs, then only the decryptor’s user can read the key, and the aggregator has no way to it', async () => {
    const c = smallCampaign({ participants: ps.map((p) => p.id), mode: 'encrypted', min_participants: 2 });
    await recordCampaign(db, tenant, c);
    const status = await client.workflow.execute(federationCampaignWorkflow, campaignStart(config, c));
    expect(status.status).toBe('completed');
    expect((await getRound(db, c.id, 1))?.status).toBe('completed');

    // The processes run as the users they were given.
    expect(uidOf(decryptor.pid!)).toBe(DECRYPTOR_UID);
    expect(uidOf(aggregator.pid!)).toBe(AGGREGATOR_UID);
    // The key file: the decryptor's, mode 0600.
    const keyFile = path.join(keyDir, `${c.id}.sk`);
    const st = statSync(keyFile);
    expect(st.uid).toBe(DECRYPTOR_UID);
    expect(st.mode & 0o777).toBe(0o600);
    // The aggregator's credentials are refused by the kernel.
    const attempt = spawnSync(process.execPath, ['-e', `require('fs').readFileSync(${JSON.stringify(keyFile)})`], {
      uid: AGGREGATOR_UID,
      gid: AGGREGATOR_UID,
      encoding: 'utf8',
    });
    expect(attempt.status).not.toBe(0);
    expect(attempt.stderr).toMatch(/EACCES/);
    // No setting of the aggregator's process names the key directory.
    const environ = readFileSync(`/proc/${aggregator.pid!}/environ`, 'utf8').split('\0');
    expect(environ.filter((v) => v.startsWith('FEDERATION_KEY_DIR='))).toEqual([]);
    expect(environ.some((v) => v.includes(keyDir))).toBe(false);
    // Nor is the key anywhere the aggregator's database role reads: not a blob, not in a table's text.
    const secret = readFileSync(keyFile);
    const sha = createHash('sha256').update(secret).digest('hex');
    const { rows } = await db.query(`SELECT 1 FROM blobs WHERE sha256 = $1`, [sha]);
    expect(rows).toEqual([]);
    const { rows: campaigns } = await db.query<{ t: string }>(
      `SELECT row_to_json(c)::text AS t FROM federation_campaigns c WHERE id = $1`,
      [c.id],
    );
    expect(campaigns[0]!.t).not.toContain(secret.subarray(0, 32).toString('base64'));
    expect(campaigns[0]!.t).not.toContain(keyDir);
  }, 120_000);
});
