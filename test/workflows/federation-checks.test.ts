/**
 * What the aggregator refuses and what the budget refuses, on the real stack (simulation mode, plaintext DP-only
 * mode where the aggregator sees every update, and encrypted mode where it checks structure only): poisoned updates (NaN, wrong shape, norm far over C) are rejected,
 * audited and never aggregated; a campaign whose next round would exceed a tenant's budget is refused before it starts.
 */
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Client } from '@temporalio/client';
import { computeEpsilon } from '../../activities/federation/accountant.js';
import { queryAuditEvents } from '../../common/audit.js';
import type { Db } from '../../common/db.js';
import { getCampaign, getRound, listSpend } from '../../common/federation.js';
import { federationCampaignWorkflow } from '../../workflows/index.js';
import type { CampaignConfig } from '../../workflows/federation/definitions.js';
import { testConfig } from '../helpers/stack.js';
import {
  campaignStart,
  giveBudget,
  recordCampaign,
  registerParticipants,
  simSource,
  smallCampaign,
  useFederationStack,
  startParticipants,
  suffix,
} from '../helpers/federation.js';

const config = testConfig({ FEDERATION_KEY_DIR: path.join(os.tmpdir(), `agency-fedkeys-${suffix()}`) });
const tenant = `fedc-${suffix()}`;
const honest = [0, 1].map((i) => ({ id: `h${i}-${suffix()}`, source: simSource(i, 5) }));
const poisoned = (['nan', 'shape', 'norm'] as const).map((kind, i) => ({
  id: `bad-${kind}-${suffix()}`,
  kind,
  source: simSource(i + 2, 5, `&poison=${kind}`),
}));

describe('the checks of a federated round', () => {
  let client: Client;
  let db: Db;
  useFederationStack(
    (stack) => ({ db, client } = stack),
    config,
    tenant,
    [...honest, ...poisoned],
    ['orchestration', 'federation', 'decryptor'],
    { budget: false },
  );

  const run = (c: CampaignConfig) => client.workflow.execute(federationCampaignWorkflow, campaignStart(config, c));

  it('when updates are NaN, the wrong shape or far over the clip norm, then each is rejected, audited and left out of the aggregate', async () => {
    await giveBudget(db, tenant);
    const c = smallCampaign({ participants: [...honest, ...poisoned].map((p) => p.id), mode: 'plaintext' });
    await recordCampaign(db, tenant, c);
    const status = await run(c);
    expect(status.status).toBe('completed');
    const round = await getRound(db, c.id, 1);
    expect(round?.status).toBe('completed');
    expect(round?.contributors).toBe(2);
    const rejected = (round?.metrics as { rejected: { participantId: string; reason: string }[] }).rejected;
    const reasonOf = (id: string) => rejected.find((r) => r.participantId === id)?.reason;
    expect(reasonOf(poisoned[0]!.id)).toMatch(/not finite/);
    expect(reasonOf(poisoned[1]!.id)).toMatch(/wrong shape: 7840 parameters, expected 7850/);
    expect(reasonOf(poisoned[2]!.id)).toMatch(/L2 norm .* over the clip norm 5/);
    const { items } = await queryAuditEvents(db, {
      tenantId: tenant,
      action: 'federation.update_rejected',
      limit: 100,
    });
    for (const p of poisoned) {
      const event = items.find((e) => e.subject === `${c.id}/1/${p.id}`);
      expect(event?.actor, p.kind).toBe('worker:federation');
      expect(event?.payload.reason, p.kind).toBe(reasonOf(p.id));
    }
    // Still a working model: the poisoned updates did not reach it.
    expect((round?.metrics as { accuracy: number }).accuracy).toBeGreaterThan(0.5);
  });

  it('when the next round would exceed the budget, then it is refused before it starts and the campaign ends on the budget', async () => {
    const t2 = `fedb-${suffix()}`;
    const ps = honest.map((p) => ({ id: `${p.id}-b`, source: p.source }));
    await registerParticipants(db, t2, ps);
    const more = await startParticipants(config, db, ps);
    try {
      const z = 0.8;
      const one = computeEpsilon({ noiseMultiplier: z, sampleRate: 1, steps: 1, delta: 1e-5 }).epsilon;
      const two = computeEpsilon({ noiseMultiplier: z, sampleRate: 1, steps: 2, delta: 1e-5 }).epsilon;
      // Room for one round, not two.
      await giveBudget(db, t2, (one + two) / 2, 1e-5);
      const c = smallCampaign({ participants: ps.map((p) => p.id), mode: 'plaintext', noise_multiplier: z, rounds: 5 });
      await recordCampaign(db, t2, c);
      const status = await run(c);
      expect(status.status, status.reason).toBe('completed');
      expect(status.reason).toMatch(/privacy budget: round 2 would take tenant .* over its budget/);
      expect((await getRound(db, c.id, 1))?.status).toBe('completed');
      expect(await getRound(db, c.id, 2)).toBeUndefined();
      const spend = await listSpend(db, t2);
      expect(spend.map((s) => s.round)).toEqual([1]);
      expect((await getCampaign(db, c.id))?.status).toBe('completed');
    } finally {
      await more.stop();
    }
  });
  it('when an encrypted update is malformed, then the keyless aggregator rejects it on structure and audits it', async () => {
    const t3 = `fede-${suffix()}`;
    const ps = [
      ...honest.map((p) => ({ id: `${p.id}-e`, source: p.source })),
      { id: `${poisoned[1]!.id}-e`, source: poisoned[1]!.source },
    ];
    await registerParticipants(db, t3, ps);
    await giveBudget(db, t3);
    const more = await startParticipants(config, db, ps);
    try {
      const c = smallCampaign({ participants: ps.map((p) => p.id), mode: 'encrypted' });
      await recordCampaign(db, t3, c);
      expect((await run(c)).status).toBe('completed');
      const round = await getRound(db, c.id, 1);
      expect(round?.contributors).toBe(2);
      const rejected = (round?.metrics as { rejected: { participantId: string; reason: string }[] }).rejected;
      expect(rejected).toEqual([
        { participantId: ps[2]!.id, reason: expect.stringMatching(/^bad ciphertext: /) as unknown },
      ]);
      const { items } = await queryAuditEvents(db, { tenantId: t3, action: 'federation.update_rejected', limit: 10 });
      expect(items.map((e) => e.subject)).toEqual([`${c.id}/1/${ps[2]!.id}`]);
    } finally {
      await more.stop();
    }
  });
});
