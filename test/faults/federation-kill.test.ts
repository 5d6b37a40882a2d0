/**
 * A federation worker process SIGKILLed in the middle of a round: the round is recorded (selection and privacy spent)
 * by the first worker, which dies at once; a new worker takes the round's remaining activities (the one in flight is
 * retried after its heartbeat times out). The round completes, and the budget is spent exactly once.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import type { Client } from '@temporalio/client';
import { loadConfig } from '../../common/config.js';
import type { Db } from '../../common/db.js';
import { getRound } from '../../common/federation.js';
import { federationCampaignWorkflow } from '../../workflows/index.js';
import { eventually, killHard, spawnWorkerProcess, testEnv } from '../helpers/stack.js';
import {
  campaignStart,
  recordCampaign,
  simSource,
  smallCampaign,
  suffix,
  useFederationStack,
} from '../helpers/federation.js';

const env = testEnv({ WORKER_QUEUES: 'federation' });
const config = loadConfig(env);
const tenant = `fedk-${suffix()}`;
const ps = [0, 1, 2].map((i) => ({ id: `k${i}-${suffix()}`, source: simSource(i, 3) }));

describe('a federation worker killed in the middle of a round', () => {
  const children: ChildProcess[] = [];
  let client: Client;
  let db: Db;
  useFederationStack((stack) => ({ db, client } = stack), config, tenant, ps, ['orchestration']);
  afterAll(async () => {
    await Promise.all(children.map(killHard));
  });

  it('when a new worker starts, then the round completes and the privacy budget is spent once', async () => {
    // Three local epochs: the round spends seconds in training, after the first worker recorded it.
    const c = smallCampaign({ participants: ps.map((p) => p.id), mode: 'plaintext', local: { epochs: 3 } });
    await recordCampaign(db, tenant, c);
    const first = spawnWorkerProcess(env);
    children.push(first);
    const handle = await client.workflow.start(federationCampaignWorkflow, campaignStart(config, c));
    const recorded = await eventually(() => getRound(db, c.id, 1), {
      timeoutMs: 60_000,
      intervalMs: 20,
      what: 'round 1 to be recorded',
    });
    await killHard(first);
    expect(recorded.status).toBe('training');

    const second = spawnWorkerProcess(env);
    children.push(second);
    const status = await handle.result();
    expect(status.status).toBe('completed');
    const round = await getRound(db, c.id, 1);
    expect(round?.status).toBe('completed');
    expect(round?.contributors).toBe(3);
    // The selection is the one recorded before the kill: the retry did not draw again.
    expect(round?.selected).toEqual(recorded.selected);
    const { rows } = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM federation_budget_spend WHERE campaign_id = $1 AND tenant_id = $2`,
      [c.id, tenant],
    );
    expect(rows[0]?.n).toBe('1');
    const { rows: audits } = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM audit_events WHERE tenant_id = $1 AND action = 'federation.round_started' AND subject = $2`,
      [tenant, `${c.id}/1`],
    );
    expect(audits[0]?.n).toBe('1');
  }, 120_000);
});
