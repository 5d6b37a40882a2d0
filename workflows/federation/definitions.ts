/**
 * Federation's shapes, shared by the API, the workflows and the activities (workflow-safe: no Node imports).
 *
 * A campaign trains one model over rounds (DP-FedAvg). Two modes:
 *   encrypted  participants clip, check finiteness, encrypt with the campaign's CKKS public key; the federation pool
 *              adds ciphertexts holding no secret key and checks structure only; the decryptor (its own queue and
 *              key file) decrypts only a recorded aggregate of at least `min_participants` contributors.
 *   plaintext  DP only: participants send clipped plaintext updates; the aggregator checks everything (finite, shape,
 *              norm) and rejects what fails, audited, never aggregated.
 * Who adds the Gaussian noise (std z·C on the sum): `noise: 'central'` — whoever first sees the plaintext sum (the
 * decryptor in encrypted mode, the aggregator in plaintext mode) adds all of it; the guarantee then protects each
 * participant against everyone who sees the model or the metrics, but trusts that party. `noise: 'distributed'` —
 * each participant adds a share N(0, (z·C)²/min_participants) before encrypting, so even the decryptor only ever sees
 * a noised sum; each share covers the minimum, so a round that proceeds (≥ min answered) carries at least the full
 * noise despite drop-outs (more answering = more noise, never less).
 */
import { z } from 'zod';

export const FEDERATION_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const id = z.string().regex(FEDERATION_ID, 'lower-case letters, digits and -, at most 63');
const duration = z.string().regex(/^\d+(ms|s|m|h)$/, 'a duration such as 500ms, 30s, 5m or 2h');

export const HostDeferralSchema = z.strictObject({
  deferrable: z.boolean().default(true),
  priority: z.enum(['low', 'normal', 'high']).default('normal'),
  /** The longest wait (low priority waits all of it, normal half, high a fifth), never past the latest start. */
  max_delay: duration.default('2m'),
  check_interval: duration.refine((d) => !/^0+\D/.test(d), 'longer than 0').default('30s'),
  /** Local training's expected duration: training starts no later than the deadline minus this and 5 s. */
  expected_training: duration.default('30s'),
});

export const CampaignInputSchema = z.strictObject({
  id: id.optional().meta({ description: 'default: a random id' }),
  model: z.enum(['softmax', 'mlp']).default('softmax'),
  model_name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'a model name'),
  participants: z.array(id).min(1).max(10_000),
  mode: z.enum(['encrypted', 'plaintext']).default('encrypted'),
  noise: z.enum(['central', 'distributed']).default('central'),
  clip_norm: z.number().positive().max(1e6).default(1),
  noise_multiplier: z.number().positive().max(1000).default(1),
  sampling: z
    .discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('poisson'), q: z.number().gt(0).lte(1) }),
      z.strictObject({ kind: z.literal('full') }),
    ])
    .default({ kind: 'full' }),
  min_participants: z.number().int().min(1).max(10_000).default(2),
  /** A Poisson draw above this is cut down to it; such a round is accounted at q = 1. */
  max_participants: z.number().int().min(1).max(10_000).optional(),
  local: z
    .strictObject({
      epochs: z.number().int().min(1).max(100).default(1),
      batch_size: z.number().int().min(1).max(10_000).default(32),
      lr: z.number().positive().max(100).default(0.1),
    })
    .prefault({}),
  server_lr: z.number().positive().max(100).default(1),
  rounds: z.number().int().min(1).max(10_000).default(5),
  target_accuracy: z.number().gt(0).lte(1).optional(),
  round_deadline: duration.default('5m'),
  /** The held-out split the global model is evaluated on (MNIST, stratified, seeded; no participant trains on it). */
  evaluation: z
    .strictObject({
      seed: z.number().int().min(0).default(1),
      test_fraction: z.number().gt(0).lt(1).default(0.2),
      limit: z.number().int().min(10).max(10_000).optional(),
    })
    .prefault({}),
  init_seed: z.number().int().min(0).default(1),
  /** Updates per aggregation activity; more selected than this are summed in parallel partial sums, then combined. */
  aggregation_batch: z.number().int().min(1).max(2000).default(200),
  /** Selected participants per child workflow of a round: keeps each history far from Temporal's limits. */
  fanout_batch: z.number().int().min(1).max(1000).default(500),
  require_zkp: z.boolean().default(false),
  /** Load-aware scheduling of local training (workflows/scheduling/): wait while the participant's host is busy or hot. */
  host_deferral: HostDeferralSchema.prefault({}),
});
export type CampaignInput = z.input<typeof CampaignInputSchema>;
export type CampaignConfig = z.output<typeof CampaignInputSchema> & { id: string };

/** What a participant returns: references only, never the update itself. */
export interface UpdateRef {
  participantId: string;
  tenantId: string;
  format: 'plain' | 'ckks';
  blob: { tenantId: string; sha256: string; sizeBytes: number };
  /** Parameters in the update (plaintext) or slots used (ckks), for the aggregator's structure check. */
  length: number;
  ciphertexts: number;
  samples: number;
}

export interface RoundInput {
  campaignId: string;
  round: number;
  config: CampaignConfig;
}

export interface RoundMetrics {
  round: number;
  selected: number;
  answered: number;
  contributors: number;
  rejected: { participantId: string; reason: string }[];
  missing: string[];
  accuracy: number;
  loss: number;
  testSamples: number;
  epsilon: Record<string, number>;
  sampling: 'poisson' | 'full';
  accountedQ: number;
  /** Why the round failed (then nothing was aggregated). */
  failure?: string;
  /** Load-aware deferral of local training; absent in rounds recorded before it. */
  scheduling?: RoundScheduling;
}

/** One participant's deferral: each decision with the reading of its host behind it. */
export interface ParticipantDeferral {
  participantId: string;
  waitedMs: number;
  /** The reason of the decision that let it train (host-ok, max-delay, deadline, no-reading, not-deferrable). */
  reason: string;
  /** It started after its latest start for the round's deadline: it may miss the round, and this says so. */
  late: boolean;
  decisions: {
    at: string;
    action: 'run' | 'defer';
    reason: string;
    over: string[];
    reading: { host: string; load1: number; cores: number; cpuTempC: number | null } | null;
  }[];
}

export interface RoundScheduling {
  /** Participants whose training went through the deferral, and how many of them were held back (a timer). */
  checked: number;
  deferred: number;
  /** Participants that started late (deferred or not): they may have missed the round, never silently. */
  late: string[];
  /** The participants that waited, started late or read over a threshold (at most 100, the rest only counted). */
  decisions: ParticipantDeferral[];
}

export interface CampaignState {
  campaignId: string;
  config: CampaignConfig;
  round: number;
  status: 'running' | 'paused' | 'stopping' | 'stopped' | 'completed' | 'failed';
  history: RoundMetrics[];
  reason?: string;
  publicKey?: { tenantId: string; sha256: string; sizeBytes: number };
}

export interface CampaignStatus {
  campaignId: string;
  status: CampaignState['status'];
  round: number;
  participants: number;
  accuracy: { round: number; accuracy: number }[];
  epsilon: Record<string, number>;
  reason?: string;
}

export function campaignWorkflowId(campaignId: string): string {
  return `federation-${campaignId}`;
}

export function scheduleId(prefix: string, campaignId: string, name: string): string {
  return `${prefix}federation-${campaignId}-${name}`;
}

export function roundWorkflowId(campaignId: string, round: number): string {
  return `federation-${campaignId}-round-${round}`;
}

/** The participant's own queue (before TASK_QUEUE_PREFIX). */
export function participantQueue(participantId: string): string {
  return `agency-federation-${participantId}`;
}

export const ZKP_REFUSAL =
  'require_zkp: zero-knowledge proofs of update correctness are not provided by this platform; start the campaign without require_zkp (clipping and finiteness are checked in the participant worker, structure by the aggregator)';
