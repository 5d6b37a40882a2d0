/**
 * The federation pool's side of a round (queue agency-federation): record the selection and the privacy spent, check
 * and sum the participants' updates (partial sums in parallel for large rounds, then one combine), apply the noised
 * average, evaluate on the held-out split, record the model version. This pool holds no secret key: in encrypted
 * mode it adds ciphertexts and checks only their structure (count, parameters, size); the norm and finiteness of an
 * encrypted update were checked by its participant before encryption. In plaintext mode it checks everything.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { appendAuditEvent } from '../../common/audit.js';
import type { BlobRef } from '../../common/blob-store/index.js';
import type { Db } from '../../common/db.js';
import {
  beginRound,
  completeRound,
  failRound,
  getCampaign,
  getParticipant,
  nextRoundNumber,
  recordAggregate,
  RoundRefused,
  updateCampaign,
  type Campaign,
} from '../../common/federation.js';
import { registerModelVersion } from '../../common/models.js';
import {
  campaignWorkflowId,
  type CampaignConfig,
  type RoundMetrics,
  type UpdateRef,
} from '../../workflows/federation/definitions.js';
import { budgetView, epsilonOf, roundCost, selectParticipants } from './budget.js';
import { getBytes, getFloat32, getFloat64, keepForCampaign, putBytes, putFloats } from './blobs.js';
import { loadMnist, splitTrainTest, subset, type Dataset } from './data.js';
import { addGaussianNoise, allFinite, cryptoNoise, l2Norm, noiseStd } from './dp.js';
import { addScaled, evaluate, initParams, paramCount, toOnnx } from './model.js';
import { aggregateCiphertexts, validateUpdate } from './secure-agg.js';

export interface RoundDeps {
  db: Db;
}

export interface SelectedParticipant {
  participantId: string;
  tenantId: string;
}

export interface BegunRound {
  selected: SelectedParticipant[];
  candidates: number;
  sampling: 'poisson' | 'full';
  q: number;
  accountedQ: number;
  /** The averaging denominator: q·candidates for an unclamped Poisson draw (fixed, as DP-FedAvg's analysis needs). */
  denominator: number;
  global: BlobRef;
  publicKey?: BlobRef;
  epsilon: Record<string, number>;
}

export interface PartialSum {
  sum?: BlobRef;
  format: 'plain' | 'ckks';
  count: number;
  rejected: { participantId: string; reason: string }[];
}

/** A norm above C by more than float rounding: the participant did not clip (plaintext mode). */
const NORM_SLACK = 1 + 1e-4;

let heldOut: { key: string; data: Dataset } | undefined;
function heldOutSplit(ev: CampaignConfig['evaluation']): Dataset {
  const key = JSON.stringify(ev);
  if (heldOut?.key !== key) {
    const { test } = splitTrainTest(loadMnist(), { testFraction: ev.test_fraction, seed: ev.seed });
    const data =
      ev.limit && ev.limit < test.n
        ? subset(
            test,
            Uint32Array.from({ length: ev.limit }, (_, i) => i),
          )
        : test;
    heldOut = { key, data };
  }
  return heldOut.data;
}

async function epsilonOfRound(db: Db, campaignId: string, round: number): Promise<Record<string, number>> {
  const { rows } = await db.query<{ tenant_id: string }>(
    `SELECT tenant_id FROM federation_budget_spend WHERE campaign_id = $1 AND round = $2`,
    [campaignId, round],
  );
  const views = await Promise.all(rows.map((r) => budgetView(db, r.tenant_id)));
  return Object.fromEntries(views.map((v) => [v.tenantId, v.spent]));
}

async function campaignOrFail(db: Db, id: string): Promise<Campaign> {
  const c = await getCampaign(db, id);
  if (!c) throw ApplicationFailure.nonRetryable(`no campaign ${id}`, 'UnknownCampaign');
  return c;
}

function plainProblem(v: Float32Array, expected: number, clipNorm: number): string | undefined {
  if (v.length !== expected) return `wrong shape: ${v.length} parameters, expected ${expected}`;
  if (!allFinite(v)) return 'not finite (NaN or infinity)';
  const norm = l2Norm(v);
  if (norm > clipNorm * NORM_SLACK) return `L2 norm ${norm.toPrecision(4)} over the clip norm ${clipNorm}`;
  return undefined;
}

/**
 * Structure only (a keyless aggregator cannot see norms): header, parameters, ciphertext count, sizes, one
 * contributor, and each ciphertext loaded against the context with its level and scale checked (validateUpdate).
 */
async function encryptedProblem(bytes: Uint8Array, expected: number): Promise<string | undefined> {
  try {
    await validateUpdate(bytes, { length: expected });
    return undefined;
  } catch (err) {
    return `bad ciphertext: ${(err as Error).message}`;
  }
}

export function createRoundActivities({ db }: RoundDeps) {
  // Keyed by action and subject: an activity retried (or re-run after its worker died) records its event once.
  const audit = (tenantId: string, action: string, subject: string, payload: Record<string, unknown>) =>
    appendAuditEvent(db, {
      tenantId,
      actor: 'worker:federation',
      action,
      subject,
      payload,
      idempotencyKey: `${action}:${subject}`,
    });

  return {
    /** The campaign's first global model (seeded), unless it has one. Idempotent. */
    async federationInitModel(input: { campaignId: string; config: CampaignConfig }): Promise<BlobRef> {
      const c = await campaignOrFail(db, input.campaignId);
      if (c.model) return c.model;
      const ref = await putFloats(db, c.tenantId, initParams(input.config.model, input.config.init_seed));
      await keepForCampaign(db, ref, c.id);
      await updateCampaign(db, c.id, { model: ref });
      return ref;
    },

    /**
     * Records the round (selection and spending, once) or refuses it before it starts (BudgetExceeded). A retry or
     * a second attempt after a worker died returns the round as first recorded.
     */
    async federationBeginRound(input: {
      campaignId: string;
      round: number;
      config: CampaignConfig;
    }): Promise<BegunRound> {
      const { config } = input;
      const c = await campaignOrFail(db, input.campaignId);
      if (!c.model) throw ApplicationFailure.nonRetryable('the campaign has no global model yet', 'NoModel');
      let begun;
      try {
        begun = await beginRound(db, c.id, input.round, {
          select: (candidates) => selectParticipants(candidates, config.sampling, config.max_participants),
          cost: (q) => roundCost(q, config.noise_multiplier),
          epsilon: epsilonOf,
          noiseMultiplier: config.noise_multiplier,
        });
      } catch (err) {
        if (err instanceof RoundRefused) {
          await audit(c.tenantId, 'federation.round_refused', `${c.id}/${input.round}`, { reason: err.message });
          throw ApplicationFailure.nonRetryable(err.message, 'BudgetExceeded');
        }
        throw err;
      }
      const r = begun.round;
      const selected: SelectedParticipant[] = [];
      for (const id of r.selected) {
        const p = await getParticipant(db, id);
        if (p) selected.push({ participantId: id, tenantId: p.tenantId });
      }
      // Recorded before (a retry): the tenants' epsilon as it stands, from the spending rows.
      const epsilon = begun.recordedBefore
        ? await epsilonOfRound(db, c.id, input.round)
        : Object.fromEntries(begun.tenants.map((t) => [t.tenantId, t.epsilonAfter]));
      await audit(c.tenantId, 'federation.round_started', `${c.id}/${input.round}`, {
        selected: r.selected,
        candidates: r.candidates.length,
        sampling: r.sampling,
        q: r.q,
        accounted_q: r.accountedQ,
        epsilon_after: epsilon,
      });
      const clamped = r.accountedQ === 1 && r.sampling === 'poisson';
      return {
        selected,
        candidates: r.candidates.length,
        sampling: r.sampling,
        q: r.q,
        accountedQ: r.accountedQ,
        denominator: Math.max(1, r.sampling === 'poisson' && !clamped ? r.q * r.candidates.length : r.selected.length),
        global: c.model,
        ...(c.publicKey ? { publicKey: c.publicKey } : {}),
        epsilon,
      };
    },

    /** Checks and sums a slice of the round's updates. A rejected update is audited and left out. */
    async federationSum(input: {
      campaignId: string;
      round: number;
      config: CampaignConfig;
      updates: UpdateRef[];
    }): Promise<PartialSum> {
      const { config } = input;
      const c = await campaignOrFail(db, input.campaignId);
      const expected = paramCount(config.model);
      const rejected: PartialSum['rejected'] = [];
      const reject = async (u: UpdateRef, reason: string) => {
        rejected.push({ participantId: u.participantId, reason });
        await audit(c.tenantId, 'federation.update_rejected', `${c.id}/${input.round}/${u.participantId}`, {
          participant: u.participantId,
          participant_tenant: u.tenantId,
          reason,
        });
      };
      const ctx = Context.current();
      if (config.mode === 'plaintext') {
        const sum = new Float64Array(expected);
        let count = 0;
        for (const u of input.updates) {
          ctx.heartbeat({ at: u.participantId });
          const v = u.format === 'plain' ? await getFloat32(db, u.blob) : undefined;
          const problem = v ? plainProblem(v, expected, config.clip_norm) : `a ${u.format} update in plaintext mode`;
          if (problem || !v) {
            await reject(u, problem ?? 'unreadable');
            continue;
          }
          for (let i = 0; i < expected; i++) sum[i]! += v[i]!;
          count++;
        }
        return { sum: await putFloats(db, c.tenantId, sum), format: 'plain', count, rejected };
      }
      const accepted: Buffer[] = [];
      for (const u of input.updates) {
        ctx.heartbeat({ at: u.participantId });
        const bytes = u.format === 'ckks' ? await getBytes(db, u.blob) : undefined;
        const problem = bytes ? await encryptedProblem(bytes, expected) : `a ${u.format} update in encrypted mode`;
        if (problem || !bytes) await reject(u, problem ?? 'unreadable');
        else accepted.push(bytes);
      }
      if (!accepted.length) return { format: 'ckks', count: 0, rejected };
      const sum = await aggregateCiphertexts(accepted, { length: expected });
      return {
        sum: await putBytes(db, c.tenantId, sum, 'application/x-agency-ckks'),
        format: 'ckks',
        count: accepted.length,
        rejected,
      };
    },

    /**
     * Adds the partial sums and records the aggregate with its contributor count: what the decryptor may decrypt. Below
     * `min_participants` contributors the round fails (BelowMinimum). In plaintext mode the aggregator, the first to
     * see the sum, adds the central noise here.
     */
    async federationCombine(input: {
      campaignId: string;
      round: number;
      config: CampaignConfig;
      partials: PartialSum[];
    }): Promise<{ aggregate: BlobRef; contributors: number }> {
      const { config } = input;
      const c = await campaignOrFail(db, input.campaignId);
      const contributors = input.partials.reduce((s, p) => s + p.count, 0);
      if (contributors < config.min_participants)
        throw ApplicationFailure.nonRetryable(
          `only ${contributors} valid update(s) reached the aggregate; the campaign needs at least ${config.min_participants}`,
          'BelowMinimum',
        );
      const refs = input.partials.filter((p) => p.sum && p.count > 0).map((p) => p.sum!);
      let aggregate: BlobRef;
      if (config.mode === 'plaintext') {
        const sum = new Float64Array(paramCount(config.model));
        for (const ref of refs) (await getFloat64(db, ref)).forEach((v, i) => (sum[i]! += v));
        // Plaintext mode has no decryptor: the aggregator sees every update and adds the noise (central or not).
        const noised =
          config.noise === 'central'
            ? addGaussianNoise(sum, noiseStd(config.noise_multiplier, config.clip_norm), cryptoNoise())
            : sum;
        aggregate = await putFloats(db, c.tenantId, Float64Array.from(noised));
      } else {
        aggregate =
          refs.length === 1
            ? refs[0]!
            : await putBytes(
                db,
                c.tenantId,
                await aggregateCiphertexts(await Promise.all(refs.map((r) => getBytes(db, r))), {
                  length: paramCount(config.model),
                }),
                'application/x-agency-ckks',
              );
      }
      await recordAggregate(db, c.id, input.round, aggregate, contributors);
      return { aggregate, contributors };
    },

    /** global + server_lr · (noised sum / denominator), evaluated on the held-out split, recorded as the round's model. */
    async federationApplyRound(input: {
      campaignId: string;
      round: number;
      config: CampaignConfig;
      begun: BegunRound;
      noisedSum: BlobRef;
      metrics: Omit<RoundMetrics, 'accuracy' | 'loss' | 'testSamples'>;
    }): Promise<RoundMetrics> {
      const { config, begun } = input;
      const c = await campaignOrFail(db, input.campaignId);
      const global = await getFloat32(db, begun.global);
      const sum = await getFloat64(db, input.noisedSum);
      if (sum.length !== global.length)
        throw ApplicationFailure.nonRetryable('aggregate has the wrong length', 'BadAggregate');
      const next = addScaled(global, sum, config.server_lr / begun.denominator);
      const test = heldOutSplit(config.evaluation);
      const ev = evaluate(config.model, next, test);
      const model = await putFloats(db, c.tenantId, next);
      await keepForCampaign(db, model, c.id);
      const metrics: RoundMetrics = { ...input.metrics, accuracy: ev.accuracy, loss: ev.loss, testSamples: test.n };
      await completeRound(db, c.id, input.round, model, { ...metrics });
      await audit(c.tenantId, 'federation.round_completed', `${c.id}/${input.round}`, {
        accuracy: ev.accuracy,
        contributors: metrics.contributors,
        rejected: metrics.rejected.length,
      });
      return metrics;
    },

    async federationFailRound(input: { campaignId: string; round: number; reason: string }): Promise<void> {
      const c = await campaignOrFail(db, input.campaignId);
      await failRound(db, c.id, input.round, input.reason);
      await audit(c.tenantId, 'federation.round_failed', `${c.id}/${input.round}`, { reason: input.reason });
    },

    /** The campaign's end: status, and the final model exported to ONNX (M1's builder) beside its parameters. */
    async federationFinishCampaign(input: {
      campaignId: string;
      config: CampaignConfig;
      status: 'completed' | 'stopped' | 'failed';
      reason?: string;
      history: RoundMetrics[];
    }): Promise<Record<string, unknown>> {
      const c = await campaignOrFail(db, input.campaignId);
      const result: Record<string, unknown> = { rounds: input.history.length, last: input.history.at(-1) ?? null };
      if (c.model) {
        const params = await getFloat32(db, c.model);
        const onnx = await putBytes(db, c.tenantId, toOnnx(input.config.model, params), 'application/onnx');
        await keepForCampaign(db, onnx, c.id);
        Object.assign(result, { model: c.model, onnx });
        const registered = await registerInModels(db, c, onnx, input.history.at(-1));
        if (registered) result.registry = registered;
      }
      await updateCampaign(db, c.id, { status: input.status, reason: input.reason ?? null, result });
      await audit(c.tenantId, `federation.campaign_${input.status}`, c.id, { reason: input.reason ?? null, ...result });
      return result;
    },

    /** What a scheduled run needs: the campaign's configuration and its next round (none once it has ended). */
    async federationNextRound(input: {
      campaignId: string;
    }): Promise<{ round: number; config: CampaignConfig; publicKey?: BlobRef } | { ended: string }> {
      const c = await campaignOrFail(db, input.campaignId);
      const config = c.config as CampaignConfig;
      if (c.status !== 'running') return { ended: `the campaign is ${c.status}` };
      const next = await nextRoundNumber(db, c.id);
      if (next > config.rounds) return { ended: `round limit ${config.rounds} reached` };
      return { round: next, config, ...(c.publicKey ? { publicKey: c.publicKey } : {}) };
    },

    async federationSetStatus(input: {
      campaignId: string;
      status: Campaign['status'];
      reason?: string;
    }): Promise<void> {
      await updateCampaign(db, input.campaignId, { status: input.status, reason: input.reason ?? null });
    },
  };
}

/** Registers the final model (ONNX) as a version in the model registry (common/models.ts); idempotent there. */
async function registerInModels(
  db: Db,
  c: Campaign,
  onnx: BlobRef,
  last: RoundMetrics | undefined,
): Promise<Record<string, unknown>> {
  const config = c.config as CampaignConfig;
  const version = await registerModelVersion(db, {
    tenantId: c.tenantId,
    name: c.modelName,
    artifact: onnx,
    provenance: {
      by: { kind: 'workflow', workflowId: campaignWorkflowId(c.id), workflowType: 'federationCampaignWorkflow' },
      data: { dataset: 'mnist', campaignId: c.id, rounds: c.roundsDone, mode: config.mode, model: config.model },
    },
    metrics:
      last && last.contributors > 0 ? { accuracy: last.accuracy, loss: last.loss, test_samples: last.testSamples } : {},
    createdBy: 'worker:federation',
  });
  return { name: version.name, version: version.version, status: version.status };
}

export type RoundActivities = ReturnType<typeof createRoundActivities>;
