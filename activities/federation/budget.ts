/**
 * Privacy budgets from the spending records: a tenant's RDP is the sum over its rows (one per campaign round it was a
 * candidate in), converted once to epsilon at its budget's delta (Balle et al. 2020, accountant.ts). Summing RDP,
 * rather than epsilons, is what composition allows and is much tighter.
 */
import { randomInt } from 'node:crypto';
import { getBudget, listSpend, summedRdp, type Selection } from '../../common/federation.js';
import type { Db } from '../../common/db.js';
import { DEFAULT_ORDERS, epsilonFromRdp, rdpSubsampledGaussian } from './accountant.js';

export interface BudgetView {
  tenantId: string;
  epsilon: number | null;
  delta: number | null;
  spent: number;
  rounds: number;
}

export async function budgetView(db: Db, tenantId: string): Promise<BudgetView> {
  const [budget, rows] = await Promise.all([getBudget(db, tenantId), listSpend(db, tenantId)]);
  const spent =
    budget && rows.length ? epsilonFromRdp(DEFAULT_ORDERS, summedRdp(rows, DEFAULT_ORDERS), budget.delta).epsilon : 0;
  return { tenantId, epsilon: budget?.epsilon ?? null, delta: budget?.delta ?? null, spent, rounds: rows.length };
}

export function roundCost(accountedQ: number, noiseMultiplier: number): { orders: number[]; rdp: number[] } {
  const orders = [...DEFAULT_ORDERS];
  return { orders, rdp: rdpSubsampledGaussian({ sampleRate: accountedQ, noiseMultiplier, steps: 1, orders }) };
}

export function epsilonOf(orders: number[], rdp: number[], delta: number): number {
  return epsilonFromRdp(orders, rdp, delta).epsilon;
}

const UNIT = 2 ** 32;

/**
 * The round's selection. Poisson: each candidate joins independently with probability q, drawn from the CSPRNG (a
 * participant cannot predict it); analysed at q. A draw cut down to max_participants, and `full` participation, are
 * accounted at q = 1. An empty draw stays empty (the round then fails below its minimum; it was still accounted).
 */
export function selectParticipants(
  candidates: readonly string[],
  sampling: { kind: 'poisson'; q: number } | { kind: 'full' },
  maxParticipants?: number,
): Selection {
  if (sampling.kind === 'full') {
    const clamped = maxParticipants !== undefined && candidates.length > maxParticipants;
    const selected = clamped ? [...candidates].slice(0, maxParticipants) : [...candidates];
    return { selected, sampling: 'full', q: 1, accountedQ: 1 };
  }
  let selected = candidates.filter(() => randomInt(0, UNIT) < sampling.q * UNIT);
  let accountedQ = sampling.q;
  if (maxParticipants !== undefined && selected.length > maxParticipants) {
    selected = selected.slice(0, maxParticipants);
    accountedQ = 1;
  }
  return { selected, sampling: 'poisson', q: sampling.q, accountedQ };
}
