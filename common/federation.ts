/**
 * Federated learning's records in PostgreSQL (migrations/0009_federation.sql): participants per tenant, campaigns and
 * who opted in, per-tenant privacy budgets, rounds with their recorded selection, and privacy spending.
 *
 * Whose budget a round spends: every tenant with an opted-in participant among the round's candidates, for its own
 * data. Under Poisson sampling every candidate is exposed to the round's (amplified) cost whether drawn or not, so the
 * spend is charged before the draw and to candidates, not only to the drawn. beginRound records the selection and the
 * spending in one transaction keyed by (campaign, round): a retry or a second attempt after a worker died finds the
 * round already recorded and returns it, so nothing is drawn or spent twice. A round that would take any tenant past
 * its (epsilon, delta) is refused before anything is recorded.
 */
import type { PoolClient } from 'pg';
import { z } from 'zod';
import { inTransaction } from './blob-store/catalog.js';
import type { BlobRef } from './blob-store/index.js';
import type { Db } from './db.js';

export const FederationIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and -, at most 63, starting with a letter or digit');

export const ParticipantInputSchema = z.strictObject({
  id: FederationIdSchema,
  display_name: z.string().min(1).max(200),
  data_source: z
    .string()
    .min(1)
    .max(1024)
    .meta({ description: 'where the participant worker finds its data (a description, never the data itself)' }),
});
export type ParticipantInput = z.infer<typeof ParticipantInputSchema>;

export const ParticipantStatusSchema = z.enum(['active', 'suspended', 'retired']);

export const BudgetInputSchema = z.strictObject({
  epsilon: z.number().positive().max(1000),
  delta: z.number().gt(0).lt(1),
});

export interface Participant {
  id: string;
  tenantId: string;
  displayName: string;
  dataSource: string;
  status: 'active' | 'suspended' | 'retired';
  createdBy: string;
  createdAt: Date;
}

export interface Campaign {
  id: string;
  tenantId: string;
  modelName: string;
  config: Record<string, unknown>;
  status: 'running' | 'paused' | 'stopped' | 'completed' | 'failed';
  reason: string | null;
  publicKey: BlobRef | null;
  model: BlobRef | null;
  roundsDone: number;
  result: Record<string, unknown> | null;
  createdBy: string;
  createdAt: Date;
}

export interface CampaignMember {
  participantId: string;
  tenantId: string;
  status: 'invited' | 'opted_in' | 'withdrawn';
}

export interface RoundRecord {
  campaignId: string;
  round: number;
  status: 'training' | 'aggregated' | 'completed' | 'failed';
  candidates: string[];
  selected: string[];
  sampling: 'poisson' | 'full';
  q: number;
  accountedQ: number;
  contributors: number | null;
  aggregate: BlobRef | null;
  model: BlobRef | null;
  metrics: Record<string, unknown> | null;
  reason: string | null;
}

export interface Budget {
  tenantId: string;
  epsilon: number;
  delta: number;
}

type Row = Record<string, unknown>;

const participantOf = (r: Row): Participant => ({
  id: r.id as string,
  tenantId: r.tenant_id as string,
  displayName: r.display_name as string,
  dataSource: r.data_source as string,
  status: r.status as Participant['status'],
  createdBy: r.created_by as string,
  createdAt: r.created_at as Date,
});

const campaignOf = (r: Row): Campaign => ({
  id: r.id as string,
  tenantId: r.tenant_id as string,
  modelName: r.model_name as string,
  config: r.config as Record<string, unknown>,
  status: r.status as Campaign['status'],
  reason: (r.reason as string | null) ?? null,
  publicKey: (r.public_key as BlobRef | null) ?? null,
  model: (r.model as BlobRef | null) ?? null,
  roundsDone: r.rounds_done as number,
  result: (r.result as Record<string, unknown> | null) ?? null,
  createdBy: r.created_by as string,
  createdAt: r.created_at as Date,
});

const roundOf = (r: Row): RoundRecord => ({
  campaignId: r.campaign_id as string,
  round: r.round as number,
  status: r.status as RoundRecord['status'],
  candidates: r.candidates as string[],
  selected: r.selected as string[],
  sampling: r.sampling as RoundRecord['sampling'],
  q: r.q as number,
  accountedQ: r.accounted_q as number,
  contributors: (r.contributors as number | null) ?? null,
  aggregate: (r.aggregate as BlobRef | null) ?? null,
  model: (r.model as BlobRef | null) ?? null,
  metrics: (r.metrics as Record<string, unknown> | null) ?? null,
  reason: (r.reason as string | null) ?? null,
});

// ---- participants

export async function insertParticipant(
  db: Db,
  tenantId: string,
  createdBy: string,
  p: ParticipantInput,
): Promise<Participant | undefined> {
  const { rows } = await db.query(
    `INSERT INTO federation_participants (id, tenant_id, display_name, data_source, created_by)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING *`,
    [p.id, tenantId, p.display_name, p.data_source, createdBy],
  );
  return rows[0] ? participantOf(rows[0] as Row) : undefined;
}

export async function listParticipants(db: Db, tenantId: string): Promise<Participant[]> {
  const { rows } = await db.query(`SELECT * FROM federation_participants WHERE tenant_id = $1 ORDER BY id`, [tenantId]);
  return (rows as Row[]).map(participantOf);
}

/** Any tenant's participant (for the workers and for naming one in a campaign); the API filters by tenant. */
export async function getParticipant(db: Db, id: string): Promise<Participant | undefined> {
  const { rows } = await db.query(`SELECT * FROM federation_participants WHERE id = $1`, [id]);
  return rows[0] ? participantOf(rows[0] as Row) : undefined;
}

export async function setParticipantStatus(
  db: Db,
  tenantId: string,
  id: string,
  status: Participant['status'],
): Promise<Participant | undefined> {
  const { rows } = await db.query(
    `UPDATE federation_participants SET status = $3 WHERE tenant_id = $1 AND id = $2 RETURNING *`,
    [tenantId, id, status],
  );
  return rows[0] ? participantOf(rows[0] as Row) : undefined;
}

// ---- budgets

export async function setBudget(
  db: Db,
  tenantId: string,
  by: string,
  b: { epsilon: number; delta: number },
): Promise<Budget> {
  await db.query(
    `INSERT INTO federation_budgets (tenant_id, epsilon, delta, updated_by) VALUES ($1, $2, $3, $4)
     ON CONFLICT (tenant_id) DO UPDATE SET epsilon = $2, delta = $3, updated_by = $4, updated_at = now()`,
    [tenantId, b.epsilon, b.delta, by],
  );
  return { tenantId, ...b };
}

export async function getBudget(db: Db | PoolClient, tenantId: string): Promise<Budget | undefined> {
  const { rows } = await db.query(`SELECT tenant_id, epsilon, delta FROM federation_budgets WHERE tenant_id = $1`, [
    tenantId,
  ]);
  const r = rows[0] as Row | undefined;
  return r ? { tenantId, epsilon: r.epsilon as number, delta: r.delta as number } : undefined;
}

export interface Spend {
  campaignId: string;
  round: number;
  orders: number[];
  rdp: number[];
  q: number;
  noiseMultiplier: number;
}

/** Every spending row of the tenant, oldest first. */
export async function listSpend(db: Db | PoolClient, tenantId: string): Promise<Spend[]> {
  const { rows } = await db.query(
    `SELECT campaign_id, round, orders, rdp, q, noise_multiplier FROM federation_budget_spend
      WHERE tenant_id = $1 ORDER BY recorded_at, campaign_id, round`,
    [tenantId],
  );
  return (rows as Row[]).map((r) => ({
    campaignId: r.campaign_id as string,
    round: r.round as number,
    orders: r.orders as number[],
    rdp: r.rdp as number[],
    q: r.q as number,
    noiseMultiplier: r.noise_multiplier as number,
  }));
}

// ---- campaigns

export async function insertCampaign(
  db: Db,
  c: { id: string; tenantId: string; modelName: string; config: Record<string, unknown>; createdBy: string },
  participants: readonly Participant[],
): Promise<Campaign | undefined> {
  return inTransaction(db, async (client) => {
    const { rows } = await client.query(
      `INSERT INTO federation_campaigns (id, tenant_id, model_name, config, created_by)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING *`,
      [c.id, c.tenantId, c.modelName, JSON.stringify(c.config), c.createdBy],
    );
    if (!rows[0]) return undefined;
    for (const p of participants) {
      // The owner's own participants take part at once; another tenant's wait for that tenant to opt in.
      const own = p.tenantId === c.tenantId;
      await client.query(
        `INSERT INTO federation_campaign_participants (campaign_id, participant_id, tenant_id, status, decided_by, decided_at)
         VALUES ($1, $2, $3, $4, $5, $6)`,
        [c.id, p.id, p.tenantId, own ? 'opted_in' : 'invited', own ? c.createdBy : null, own ? new Date() : null],
      );
    }
    return campaignOf(rows[0] as Row);
  });
}

export async function getCampaign(db: Db | PoolClient, id: string): Promise<Campaign | undefined> {
  const { rows } = await db.query(`SELECT * FROM federation_campaigns WHERE id = $1`, [id]);
  return rows[0] ? campaignOf(rows[0] as Row) : undefined;
}

/** Campaigns the tenant owns or has a participant invited to or opted into. */
export async function campaignsVisibleTo(db: Db, tenantId: string): Promise<Campaign[]> {
  const { rows } = await db.query(
    `SELECT * FROM federation_campaigns c
      WHERE c.tenant_id = $1
         OR EXISTS (SELECT 1 FROM federation_campaign_participants m WHERE m.campaign_id = c.id AND m.tenant_id = $1)
      ORDER BY c.created_at DESC LIMIT 200`,
    [tenantId],
  );
  return (rows as Row[]).map(campaignOf);
}

export async function campaignMembers(db: Db | PoolClient, campaignId: string): Promise<CampaignMember[]> {
  const { rows } = await db.query(
    `SELECT participant_id, tenant_id, status FROM federation_campaign_participants WHERE campaign_id = $1
      ORDER BY participant_id`,
    [campaignId],
  );
  return (rows as Row[]).map((r) => ({
    participantId: r.participant_id as string,
    tenantId: r.tenant_id as string,
    status: r.status as CampaignMember['status'],
  }));
}

/** The participant's tenant decides: opted_in or withdrawn. Undefined when the participant was not invited. */
export async function decideMembership(
  db: Db,
  campaignId: string,
  participantId: string,
  tenantId: string,
  by: string,
  status: 'opted_in' | 'withdrawn',
): Promise<CampaignMember | undefined> {
  const { rows } = await db.query(
    `UPDATE federation_campaign_participants SET status = $4, decided_by = $5, decided_at = now()
      WHERE campaign_id = $1 AND participant_id = $2 AND tenant_id = $3 RETURNING participant_id, tenant_id, status`,
    [campaignId, participantId, tenantId, status, by],
  );
  const r = rows[0] as Row | undefined;
  return r
    ? { participantId: r.participant_id as string, tenantId: r.tenant_id as string, status: r.status as 'opted_in' }
    : undefined;
}

export async function updateCampaign(
  db: Db,
  id: string,
  patch: Partial<{
    status: Campaign['status'];
    reason: string | null;
    publicKey: BlobRef;
    model: BlobRef;
    result: Record<string, unknown>;
  }>,
): Promise<void> {
  const sets: string[] = ['updated_at = now()'];
  const values: unknown[] = [id];
  const put = (col: string, v: unknown): void => {
    values.push(v);
    sets.push(`${col} = $${values.length}`);
  };
  if (patch.status) put('status', patch.status);
  if (patch.reason !== undefined) put('reason', patch.reason);
  if (patch.publicKey) put('public_key', JSON.stringify(patch.publicKey));
  if (patch.model) put('model', JSON.stringify(patch.model));
  if (patch.result) put('result', JSON.stringify(patch.result));
  await db.query(`UPDATE federation_campaigns SET ${sets.join(', ')} WHERE id = $1`, values);
}

// ---- rounds

export interface Selection {
  selected: string[];
  sampling: 'poisson' | 'full';
  q: number;
  /** The sampling rate the accountant is given: q for a Poisson draw, 1 for anything clamped or not random. */
  accountedQ: number;
}

export interface RoundCost {
  orders: number[];
  rdp: number[];
}

export class RoundRefused extends Error {
  override name = 'RoundRefused';
}

export interface BeginRoundDeps {
  /** Draws the selection among the candidates (called once, only when the round is not yet recorded). */
  select(candidates: readonly string[]): Selection;
  /** The round's RDP cost for one candidate at the accounted sampling rate. */
  cost(accountedQ: number): RoundCost;
  /** (epsilon at delta) of a tenant's summed RDP curve. */
  epsilon(orders: number[], rdp: number[], delta: number): number;
  noiseMultiplier: number;
}

/**
 * Records round `round` of the campaign: candidates (opted-in, active participants), the selection, and one spend row
 * per candidate tenant, or returns the round as recorded before (a retry). Throws RoundRefused when a tenant has no
 * budget or would exceed it; nothing is recorded then.
 */
export async function beginRound(
  db: Db,
  campaignId: string,
  round: number,
  deps: BeginRoundDeps,
): Promise<{ round: RoundRecord; tenants: { tenantId: string; epsilonAfter: number }[]; recordedBefore: boolean }> {
  return inTransaction(db, async (client) => {
    // One round at a time per campaign: a concurrent second attempt waits here and then sees the first's rows.
    await client.query(`SELECT id FROM federation_campaigns WHERE id = $1 FOR UPDATE`, [campaignId]);
    const existing = await client.query(`SELECT * FROM federation_rounds WHERE campaign_id = $1 AND round = $2`, [
      campaignId,
      round,
    ]);
    if (existing.rows[0]) return { round: roundOf(existing.rows[0] as Row), tenants: [], recordedBefore: true };
    const { rows: members } = await client.query(
      `SELECT m.participant_id, m.tenant_id FROM federation_campaign_participants m
         JOIN federation_participants p ON p.id = m.participant_id
        WHERE m.campaign_id = $1 AND m.status = 'opted_in' AND p.status = 'active' ORDER BY m.participant_id`,
      [campaignId],
    );
    const candidates = (members as Row[]).map((m) => m.participant_id as string);
    const tenantIds = [...new Set((members as Row[]).map((m) => m.tenant_id as string))].sort();
    const selection = deps.select(candidates);
    const cost = deps.cost(selection.accountedQ);
    // Budgets locked in a fixed order, so rounds of two campaigns spending the same tenants serialise, not deadlock.
    const tenants: { tenantId: string; epsilonAfter: number }[] = [];
    for (const tenantId of tenantIds) {
      const { rows } = await client.query(
        `SELECT epsilon, delta FROM federation_budgets WHERE tenant_id = $1 FOR UPDATE`,
        [tenantId],
      );
      const b = rows[0] as Row | undefined;
      if (!b)
        throw new RoundRefused(`tenant ${tenantId} has no privacy budget: set one with PUT /api/v1/federation/budgets`);
      const sum = summedRdp(await listSpend(client, tenantId), cost.orders);
      const after = deps.epsilon(
        cost.orders,
        sum.map((v, i) => v + cost.rdp[i]!),
        b.delta as number,
      );
      if (!(after <= (b.epsilon as number))) {
        throw new RoundRefused(
          `round ${round} would take tenant ${tenantId} to epsilon ${after.toFixed(3)} (delta ${String(b.delta)}), over its budget of ${String(b.epsilon)}`,
        );
      }
      tenants.push({ tenantId, epsilonAfter: after });
    }
    const { rows } = await client.query(
      `INSERT INTO federation_rounds (campaign_id, round, candidates, selected, sampling, q, accounted_q)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
      [
        campaignId,
        round,
        JSON.stringify(candidates),
        JSON.stringify(selection.selected),
        selection.sampling,
        selection.q,
        selection.accountedQ,
      ],
    );
    for (const t of tenants) {
      await client.query(
        `INSERT INTO federation_budget_spend (campaign_id, round, tenant_id, orders, rdp, q, noise_multiplier)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [campaignId, round, t.tenantId, cost.orders, cost.rdp, selection.accountedQ, deps.noiseMultiplier],
      );
    }
    return { round: roundOf(rows[0] as Row), tenants, recordedBefore: false };
  });
}

/** The tenant's RDP summed over its rows at `orders` (rows recorded at other orders are refused: one accountant). */
export function summedRdp(rows: readonly Spend[], orders: readonly number[]): number[] {
  const sum = orders.map(() => 0);
  for (const r of rows) {
    if (r.orders.length !== orders.length || r.orders.some((o, i) => o !== orders[i]))
      throw new Error(`spend of ${r.campaignId} round ${r.round} was recorded at other RDP orders`);
    r.rdp.forEach((v, i) => (sum[i]! += v));
  }
  return sum;
}

export async function getRound(db: Db, campaignId: string, round: number): Promise<RoundRecord | undefined> {
  const { rows } = await db.query(`SELECT * FROM federation_rounds WHERE campaign_id = $1 AND round = $2`, [
    campaignId,
    round,
  ]);
  return rows[0] ? roundOf(rows[0] as Row) : undefined;
}

export async function listRounds(db: Db, campaignId: string): Promise<RoundRecord[]> {
  const { rows } = await db.query(`SELECT * FROM federation_rounds WHERE campaign_id = $1 ORDER BY round`, [
    campaignId,
  ]);
  return (rows as Row[]).map(roundOf);
}

/** The next round number: one after the highest recorded (completed or not). */
export async function nextRoundNumber(db: Db, campaignId: string): Promise<number> {
  const { rows } = await db.query(
    `SELECT COALESCE(MAX(round), 0) + 1 AS next FROM federation_rounds WHERE campaign_id = $1`,
    [campaignId],
  );
  return Number((rows[0] as Row).next);
}

/** The aggregate the decryptor may decrypt: recorded once per round (a retry records the same again). */
export async function recordAggregate(
  db: Db,
  campaignId: string,
  round: number,
  aggregate: BlobRef,
  contributors: number,
): Promise<void> {
  await db.query(
    `UPDATE federation_rounds SET aggregate = $3, contributors = $4, status = 'aggregated'
      WHERE campaign_id = $1 AND round = $2 AND status IN ('training', 'aggregated')`,
    [campaignId, round, JSON.stringify(aggregate), contributors],
  );
}

export async function completeRound(
  db: Db,
  campaignId: string,
  round: number,
  model: BlobRef,
  metrics: Record<string, unknown>,
): Promise<void> {
  await inTransaction(db, async (client) => {
    const { rowCount } = await client.query(
      `UPDATE federation_rounds SET status = 'completed', model = $3, metrics = $4, finished_at = now()
        WHERE campaign_id = $1 AND round = $2 AND status <> 'completed'`,
      [campaignId, round, JSON.stringify(model), JSON.stringify(metrics)],
    );
    // Only the first completion moves the campaign on (a retried activity finds the round completed).
    if (rowCount)
      await client.query(
        `UPDATE federation_campaigns SET model = $2, rounds_done = GREATEST(rounds_done, $3), updated_at = now()
          WHERE id = $1`,
        [campaignId, JSON.stringify(model), round],
      );
  });
}

export async function failRound(db: Db, campaignId: string, round: number, reason: string): Promise<void> {
  await db.query(
    `UPDATE federation_rounds SET status = 'failed', reason = $3, finished_at = now()
      WHERE campaign_id = $1 AND round = $2 AND status <> 'completed'`,
    [campaignId, round, reason],
  );
}
