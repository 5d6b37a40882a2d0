/**
 * federatedRoundWorkflow end to end on the real stack (simulation mode: three participants, seeded MNIST shards of
 * 200 digits each, softmax regression): encrypted with the noise added by the decryptor; a drop-out left out; a round
 * below the minimum failed with its reason.
 */
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@temporalio/client';
import type { Db } from '../../common/db.js';
import { getCampaign, getRound, listSpend } from '../../common/federation.js';
import { getBytes, putBytes } from '../../activities/federation/blobs.js';
import { createDecryptorActivities } from '../../activities/federation/decryptor.js';
import { paramCount } from '../../activities/federation/model.js';
import { encryptUpdate } from '../../activities/federation/secure-agg.js';
import { federationCampaignWorkflow } from '../../workflows/index.js';
import { roundWorkflowId } from '../../workflows/federation/definitions.js';
import { testConfig } from '../helpers/stack.js';
import {
  campaignStart,
  recordCampaign,
  registerParticipants,
  simSource,
  smallCampaign,
  suffix,
  useFederationStack,
} from '../helpers/federation.js';

const config = testConfig({ FEDERATION_KEY_DIR: path.join(os.tmpdir(), `agency-fedkeys-${suffix()}`) });
const tenant = `fed-${suffix()}`;
const ids = [0, 1, 2].map((i) => `p${i}-${suffix()}`);
const absent = `gone-${suffix()}`;

/** One participant's update, encrypted with the campaign's public key and stored as a participant stores it. */
async function encryptedUpdateOf(campaignId: string): Promise<unknown> {
  const campaign = await getCampaign(db, campaignId);
  const publicKey = await getBytes(db, campaign!.publicKey!);
  const update = Float32Array.from({ length: paramCount('softmax') }, (_, i) => (i % 7) / 1000);
  const { bytes } = await encryptUpdate(publicKey, update, { clipNorm: 5 });
  return putBytes(db, tenant, bytes, 'application/x-agency-ckks');
}

let db: Db;

describe('a federated round', () => {
  let client: Client;
  useFederationStack(
    (stack) => ({ db, client } = stack),
    config,
    tenant,
    ids.map((id, i) => ({ id, source: simSource(i, 3) })),
    ['orchestration', 'federation', 'decryptor'],
    { blobStore: true },
  );
  beforeAll(async () => {
    // `absent` is registered but no worker serves its queue: a drop-out.
    await registerParticipants(db, tenant, [{ id: absent, source: simSource(0, 3) }]);
  });

  it('when three participants train under encryption, then the global model improves and the round is recorded with its spending', async () => {
    const c = smallCampaign({ participants: ids, mode: 'encrypted', min_participants: 3 });
    await recordCampaign(db, tenant, c);
    const status = await client.workflow.execute(federationCampaignWorkflow, campaignStart(config, c));
    expect(status.status).toBe('completed');
    const round = await getRound(db, c.id, 1);
    expect(round?.status).toBe('completed');
    expect(round?.selected.sort()).toEqual([...ids].sort());
    expect(round?.contributors).toBe(3);
    const metrics = round?.metrics as { accuracy: number; testSamples: number };
    expect(metrics.testSamples).toBe(400);
    // From zero weights (10% at best) to a real classifier after one noised round on 600 digits.
    expect(metrics.accuracy).toBeGreaterThan(0.5);
    const spend = (await listSpend(db, tenant)).filter((s) => s.campaignId === c.id);
    expect(spend).toHaveLength(1);
    const campaign = await getCampaign(db, c.id);
    expect(campaign?.status).toBe('completed');
    expect(campaign?.result).toHaveProperty('onnx');
    expect(campaign?.result).toMatchObject({ registry: { name: 'digits', status: 'registered' } });
  });

  it('when a selected participant never answers, then it is left out at the deadline and the round proceeds with the rest', async () => {
    const c = smallCampaign({
      participants: [...ids, absent],
      mode: 'plaintext',
      min_participants: 2,
      round_deadline: '6s',
    });
    await recordCampaign(db, tenant, c);
    await client.workflow.execute(federationCampaignWorkflow, campaignStart(config, c));
    const round = await getRound(db, c.id, 1);
    expect(round?.status).toBe('completed');
    expect(round?.selected).toContain(absent);
    expect(round?.contributors).toBe(3);
    expect((round?.metrics as { missing: string[] }).missing).toEqual([absent]);
  });

  it('when fewer than the minimum answer, then the round fails with a reason that says so', async () => {
    const c = smallCampaign({
      participants: [ids[0]!, absent],
      mode: 'plaintext',
      min_participants: 2,
      round_deadline: '4s',
    });
    await recordCampaign(db, tenant, c);
    await client.workflow.execute(federationCampaignWorkflow, campaignStart(config, c));
    const err: unknown = await client.workflow
      .getHandle(roundWorkflowId(c.id, 1))
      .result()
      .catch((e: unknown) => e as Error & { cause?: Error & { type?: string } });
    expect(err).toBeInstanceOf(Error);
    const cause = (err as { cause?: Error & { type?: string } }).cause;
    expect(cause?.type).toBe('BelowMinimum');
    expect(cause?.message).toMatch(/only 1 of 2 selected participant\(s\) answered .* at least 2; missing: gone-/);
    const round = await getRound(db, c.id, 1);
    expect(round?.status).toBe('failed');
    expect(round?.reason).toBe(cause?.message);
    expect(round?.aggregate).toBeNull();
  });
  it('when the decryptor is asked for anything but a recorded aggregate of at least min contributors, then it refuses', async () => {
    const c = smallCampaign({ participants: ids, mode: 'encrypted', min_participants: 3 });
    await recordCampaign(db, tenant, c);
    await client.workflow.execute(federationCampaignWorkflow, campaignStart(config, c));
    const decryptor = createDecryptorActivities({ db, keyDir: config.FEDERATION_KEY_DIR! });
    const refused = (e: unknown): { type?: string; message: string } => e as { type?: string; message: string };
    // No round 2 was recorded: nothing to decrypt.
    const none = await decryptor
      .federationDecrypt({ campaignId: c.id, round: 2 })
      .then((): { type?: string; message: string } => ({ message: 'decrypted' }), refused);
    expect(none).toMatchObject({ type: 'UnknownRound' });
    // One participant's own update, recorded as if it were the aggregate: one contributor, under the minimum.
    const single = await encryptedUpdateOf(c.id);
    await db.query(
      `UPDATE federation_rounds SET aggregate = $3, contributors = 1 WHERE campaign_id = $1 AND round = $2`,
      [c.id, 1, JSON.stringify(single)],
    );
    const few = await decryptor
      .federationDecrypt({ campaignId: c.id, round: 1 })
      .then((): { type?: string; message: string } => ({ message: 'decrypted' }), refused);
    expect(few.type).toBe('DecryptRefused');
    expect(few.message).toMatch(/1 contributors; at least 3/);
    // The same update with a forged count in the record: the ciphertext's own header still says one.
    await db.query(`UPDATE federation_rounds SET contributors = 3 WHERE campaign_id = $1 AND round = 1`, [c.id]);
    const forged = await decryptor
      .federationDecrypt({ campaignId: c.id, round: 1 })
      .then((): { type?: string; message: string } => ({ message: 'decrypted' }), refused);
    expect(forged.message).toMatch(/aggregate of 1 updates; at least 3 required/);
  });

  it('when a round has more participants than a batch, then training fans out to child workflows and the sum to partial sums', async () => {
    const c = smallCampaign({ participants: ids, mode: 'plaintext', fanout_batch: 2, aggregation_batch: 2 });
    await recordCampaign(db, tenant, c);
    await client.workflow.execute(federationCampaignWorkflow, campaignStart(config, c));
    const round = await getRound(db, c.id, 1);
    expect(round?.status).toBe('completed');
    expect(round?.contributors).toBe(3);
    const history = await client.workflow.getHandle(roundWorkflowId(c.id, 1)).fetchHistory();
    const children = history.events?.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes) ?? [];
    expect(children.map((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowType?.name)).toEqual([
      'federationTrainingBatchWorkflow',
      'federationTrainingBatchWorkflow',
    ]);
    const sums = history.events?.filter(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'federationSum',
    );
    expect(sums).toHaveLength(2);
  });
});
