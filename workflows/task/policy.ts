/**
 * Tier policy, waivers, change budgets, gate evaluation and the trust score (CAWS). Workflow-safe and pure: zod only,
 * no clock (callers pass `now` as an ISO string), no I/O.
 *
 * These functions take data — the spec, stored waivers, measured reports — never a model's output: no model may change
 * budgets or waivers.
 *
 * Gate precedence when a gate fails: an active waiver for the gate, then a human override (spec.human_override with a
 * future expiry naming the gate), then experiment mode (tier 3 only, coverage and mutation only). A gate whose input is
 * missing fails unless waived; it never passes silently. Waivers and overrides name a gate by its name or by its kind.
 *
 * What the tier requires is measured whether or not the spec lists it (requiredGateKinds, planGates): its command comes
 * from the repository's registration or the tenant's default, and a required gate nothing measured fails unless waived.
 */
import { z } from 'zod';
import {
  GATE_KINDS,
  GateKindSchema,
  isoToMs,
  WaiverIdSchema,
  type Gate,
  type GateKind,
  type RiskTier,
  type WorkingSpec,
} from './spec.js';

export const RISK_TIERS: readonly RiskTier[] = [1, 2, 3];

export interface TierPolicy {
  /** Minimum branch coverage, a fraction 0..1. */
  minBranchCoverage: number;
  /** Minimum mutation score, a fraction 0..1. */
  minMutationScore: number;
  contractsRequired: boolean;
  manualReviewRequired: boolean;
  /**
   * The gates measured on every task of this tier whether or not the spec lists them (requiredGateKinds adds
   * `contracts` when contractsRequired). Their commands come from the repository's registration or the tenant's
   * default; a required gate with no command fails unless a waiver covers it.
   */
  requiredGates: readonly GateKind[];
  /** Default change budget when the spec declares none. */
  maxFiles: number;
  maxLoc: number;
}
export type TierPolicyTable = Readonly<Record<RiskTier, Readonly<TierPolicy>>>;

/** The CAWS defaults; a policy file overrides them through `resolveTierPolicy`. */
export const DEFAULT_TIER_POLICY: TierPolicyTable = Object.freeze({
  1: Object.freeze({
    minBranchCoverage: 0.9,
    minMutationScore: 0.7,
    contractsRequired: true,
    manualReviewRequired: true,
    requiredGates: Object.freeze(['tests', 'coverage', 'mutation'] as GateKind[]),
    maxFiles: 25,
    maxLoc: 1000,
  }),
  2: Object.freeze({
    minBranchCoverage: 0.8,
    minMutationScore: 0.5,
    contractsRequired: true,
    manualReviewRequired: false,
    requiredGates: Object.freeze(['tests', 'coverage', 'mutation'] as GateKind[]),
    maxFiles: 50,
    maxLoc: 2000,
  }),
  3: Object.freeze({
    minBranchCoverage: 0.7,
    minMutationScore: 0.3,
    contractsRequired: false,
    manualReviewRequired: false,
    requiredGates: Object.freeze(['tests', 'coverage', 'mutation'] as GateKind[]),
    maxFiles: 100,
    maxLoc: 5000,
  }),
});

const fraction = z.number().min(0).max(1);
export const TierPolicyOverrideSchema = z
  .object({
    minBranchCoverage: fraction,
    minMutationScore: fraction,
    contractsRequired: z.boolean(),
    manualReviewRequired: z.boolean(),
    requiredGates: z.array(GateKindSchema).max(GATE_KINDS.length),
    maxFiles: z.number().int().min(1),
    maxLoc: z.number().int().min(1),
  })
  .partial()
  .strict();
export const TierPolicyOverridesSchema = z
  .object({
    1: TierPolicyOverrideSchema.optional(),
    2: TierPolicyOverrideSchema.optional(),
    3: TierPolicyOverrideSchema.optional(),
  })
  .strict();
export type TierPolicyOverrides = Partial<Record<RiskTier, Partial<TierPolicy>>>;

/** The defaults with a policy file's overrides applied; invalid overrides throw a ZodError naming the field. */
export function resolveTierPolicy(overrides?: TierPolicyOverrides): TierPolicyTable {
  const checked = TierPolicyOverridesSchema.parse(overrides ?? {});
  const table = {} as Record<RiskTier, Readonly<TierPolicy>>;
  for (const tier of RISK_TIERS) table[tier] = Object.freeze({ ...DEFAULT_TIER_POLICY[tier], ...checked[tier] });
  return Object.freeze(table);
}

// ---------------------------------------------------------------------------------------------------------------------
// Waivers

export const MAX_WAIVER_DAYS = 90;
const DAY_MS = 24 * 60 * 60 * 1000;
/** The gate name a waiver lists to carry a budget delta. */
export const BUDGET_GATE = 'budget';

const isoDateTime = z.iso.datetime({ offset: true });

export const WaiverSchema = z
  .object({
    id: WaiverIdSchema,
    gates: z.array(z.string().min(1)).min(1, 'a waiver names at least one gate'),
    reason: z.string().min(1),
    impact_level: z.enum(['low', 'medium', 'high', 'critical']),
    approved_by: z.string().min(1),
    expires_at: isoDateTime,
    status: z.enum(['active', 'expired', 'revoked']),
    mitigation: z.string().min(1),
    budget_delta: z
      .object({ max_files: z.number().int().min(0).optional(), max_loc: z.number().int().min(0).optional() })
      .strict()
      .optional(),
    created_at: isoDateTime,
  })
  .strict()
  .superRefine((w, ctx) => {
    const created = Date.parse(w.created_at);
    const expires = Date.parse(w.expires_at);
    if (expires <= created) {
      ctx.addIssue({ code: 'custom', path: ['expires_at'], message: 'must be after created_at' });
    } else if (expires - created > MAX_WAIVER_DAYS * DAY_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['expires_at'],
        message: `at most ${MAX_WAIVER_DAYS} days after created_at`,
      });
    }
    if (w.budget_delta && !w.gates.includes(BUDGET_GATE)) {
      ctx.addIssue({
        code: 'custom',
        path: ['gates'],
        message: `a waiver with a budget_delta names the ${BUDGET_GATE} gate`,
      });
    }
  });
export type Waiver = z.infer<typeof WaiverSchema>;

/** Why a waiver does not cover `gate` at `now`, or undefined when it does. */
export function waiverInactiveReason(w: Waiver, gate: string, now: string): string | undefined {
  const nowMs = isoToMs(now);
  const created = isoToMs(w.created_at);
  const expires = isoToMs(w.expires_at);
  if (!w.gates.includes(gate)) return `${w.id} does not name ${gate}`;
  if (w.status !== 'active') return `${w.id} is ${w.status}`;
  if (Number.isNaN(nowMs)) return `now (${now}) is not an ISO date-time`;
  if (Number.isNaN(created) || Number.isNaN(expires)) return `${w.id} has no valid created_at/expires_at`;
  if (expires - created > MAX_WAIVER_DAYS * DAY_MS) return `${w.id} spans more than ${MAX_WAIVER_DAYS} days`;
  if (nowMs < created) return `${w.id} is not yet in force (created ${w.created_at})`;
  if (nowMs >= expires) return `${w.id} expired at ${w.expires_at}`;
  return undefined;
}

/** True when the waiver is active, names the gate, was created by `now` and expires after it (at most 90 days). */
export function isWaiverActive(w: Waiver, gate: string, now: string): boolean {
  return waiverInactiveReason(w, gate, now) === undefined;
}

/** The waivers that apply to this spec: those it lists in `waiver_ids` (a waiver is bound to specs by reference). */
function referencedWaivers(spec: WorkingSpec, waivers: readonly Waiver[]): Waiver[] {
  const ids = new Set(spec.waiver_ids ?? []);
  return waivers.filter((w) => ids.has(w.id));
}

// ---------------------------------------------------------------------------------------------------------------------
// Budget

export interface EffectiveBudget {
  max_files: number;
  max_loc: number;
  /** Where the base came from: the spec's change_budget, or the tier default. */
  source: 'spec' | 'tier';
  /** The active budget waivers whose deltas were added. */
  waivers: string[];
}

/**
 * The change budget: the spec's change_budget, else the tier default, plus the deltas of active budget waivers that the
 * spec lists in waiver_ids.
 */
export function effectiveBudget(
  tier: RiskTier,
  spec: WorkingSpec,
  waivers: readonly Waiver[],
  now: string,
  policy: TierPolicyTable = DEFAULT_TIER_POLICY,
): EffectiveBudget {
  const base = spec.change_budget
    ? { max_files: spec.change_budget.max_files, max_loc: spec.change_budget.max_loc, source: 'spec' as const }
    : { max_files: policy[tier].maxFiles, max_loc: policy[tier].maxLoc, source: 'tier' as const };
  const budget: EffectiveBudget = { ...base, waivers: [] };
  for (const w of referencedWaivers(spec, waivers)) {
    if (!w.budget_delta || !isWaiverActive(w, BUDGET_GATE, now)) continue;
    budget.max_files += w.budget_delta.max_files ?? 0;
    budget.max_loc += w.budget_delta.max_loc ?? 0;
    budget.waivers.push(w.id);
  }
  return budget;
}

// ---------------------------------------------------------------------------------------------------------------------
// Gates

/** One gate's measured result, from the gate's command and its report. */
export interface GateMeasurement {
  gate: string;
  kind: GateKind;
  /**
   * The gate's verdict: its command exited 0 and its report shows checks that ran and none that failed (runGate).
   * Required for tests, lint, types, contracts and custom gates.
   */
  passed?: boolean;
  /** The measured fraction (0..1) for coverage and mutation gates. */
  value?: number;
  /** True when the gate's input (command result or report) could not be obtained. */
  missing?: boolean;
  /** What the value rests on: a report path, a log reference, a parser's note. */
  evidence: string;
}

export interface GateEvaluation {
  gate: string;
  status: 'pass' | 'fail' | 'waived';
  reason: string;
  threshold?: number;
  value?: number;
}

/** Gates that must pass when present; experiment mode never relaxes them. */
export const MANDATORY_GATE_KINDS: readonly GateKind[] = ['tests', 'lint', 'types'];
/** The threshold gates experiment mode may relax (tier 3 only). */
const EXPERIMENT_RELAXES: readonly GateKind[] = ['coverage', 'mutation'];

/** A gate's kind: its declared kind, else its name when that names a kind, else custom. */
export function gateKind(gate: Pick<Gate, 'name' | 'kind'>): GateKind {
  if (gate.kind) return gate.kind;
  return (GATE_KINDS as readonly string[]).includes(gate.name) ? (gate.name as GateKind) : 'custom';
}

/** The gate kinds a tier's policy requires: its requiredGates, and contracts when contracts are required. */
export function requiredGateKinds(tier: RiskTier, policy: TierPolicyTable = DEFAULT_TIER_POLICY): GateKind[] {
  const p = policy[tier];
  const kinds = [...p.requiredGates];
  if (p.contractsRequired && !kinds.includes('contracts')) kinds.push('contracts');
  return kinds;
}

/** A gate command registered outside the spec: in the repository's registration, or as the tenant's default. */
export interface RegisteredGate {
  kind: GateKind;
  run: string[];
  /** The report's file name inside the gate's output directory (default by kind). */
  report?: string;
  timeout_seconds?: number;
  source: 'repository' | 'tenant';
}

/** A gate to run, with where its command came from. */
export interface PlannedGate {
  gate: Gate;
  source: 'spec' | 'repository' | 'tenant';
}

/**
 * The gates an execution runs: for each kind the tier requires, the registered command (the repository's, else the
 * tenant's default) in place of any gate of that kind the spec declares; with none registered, the spec's own gates
 * of that kind; the spec's other gates as declared. `required` lists the kinds the tier requires: evaluateGates fails
 * each that no measurement covers.
 */
export function planGates(
  tier: RiskTier,
  spec: Pick<WorkingSpec, 'gates'>,
  registered: readonly RegisteredGate[],
  policy: TierPolicyTable = DEFAULT_TIER_POLICY,
): { gates: PlannedGate[]; required: GateKind[] } {
  const required = requiredGateKinds(tier, policy);
  const byKind = new Map<GateKind, RegisteredGate>();
  for (const r of registered) if (!byKind.has(r.kind)) byKind.set(r.kind, r);
  const replaced = (g: Gate) => required.includes(gateKind(g)) && byKind.has(gateKind(g));
  const gates: PlannedGate[] = spec.gates.filter((g) => !replaced(g)).map((gate) => ({ gate, source: 'spec' }));
  for (const kind of required) {
    const r = byKind.get(kind);
    if (!r) continue;
    const gate: Gate = { name: kind, kind, run: [...r.run] };
    if (r.report) gate.report = r.report;
    if (r.timeout_seconds) gate.timeout_seconds = r.timeout_seconds;
    // A spec gate named like the kind (of another kind) keeps its name; the registered one is then named kind-required.
    if (gates.some((p) => p.gate.name === kind)) gate.name = `${kind}-required`;
    gates.push({ gate, source: r.source });
  }
  return { gates, required };
}

export interface EvaluateGatesOptions {
  tier: RiskTier;
  /**
   * The gate kinds the tier policy requires (planGates): each that no measurement covers fails as missing unless
   * waived. Absent (executions planned before required gates): only the declared gates count.
   */
  required?: readonly GateKind[];
  /** The gates that were to run (planGates); default the spec's. */
  gates?: readonly Gate[];
  /** Stored waivers; only those the spec lists in waiver_ids apply. */
  waivers: readonly Waiver[];
  spec: WorkingSpec;
  now: string;
  policy?: TierPolicyTable;
}

function judge(m: GateMeasurement, policy: Readonly<TierPolicy>): Omit<GateEvaluation, 'gate'> {
  const evidence = m.evidence ? ` (${m.evidence})` : '';
  if (m.missing) return { status: 'fail', reason: `input missing${evidence}` };
  if (m.kind === 'coverage' || m.kind === 'mutation') {
    const threshold = m.kind === 'coverage' ? policy.minBranchCoverage : policy.minMutationScore;
    const what = m.kind === 'coverage' ? 'branch coverage' : 'mutation score';
    if (m.passed === false) return { status: 'fail', reason: `the gate's command failed${evidence}`, threshold };
    if (m.value === undefined) return { status: 'fail', reason: `no ${what} measured${evidence}`, threshold };
    const value = m.value;
    if (!Number.isFinite(value) || value < 0 || value > 1) {
      return { status: 'fail', reason: `${what} ${value} is not a fraction between 0 and 1${evidence}`, threshold };
    }
    return value >= threshold
      ? { status: 'pass', reason: `${what} ${value} ≥ ${threshold}${evidence}`, threshold, value }
      : { status: 'fail', reason: `${what} ${value} < ${threshold}${evidence}`, threshold, value };
  }
  if (m.passed === true) return { status: 'pass', reason: `passed${evidence}` };
  if (m.passed === false) return { status: 'fail', reason: `failed${evidence}` };
  return { status: 'fail', reason: `no result${evidence}` };
}

/** The first exemption in precedence order that covers a failing gate, as a reason; undefined when none does. */
function exemption(
  gate: string,
  kind: GateKind,
  opts: EvaluateGatesOptions,
  applicable: readonly Waiver[],
): string | undefined {
  const names = [gate, kind];
  const nowMs = isoToMs(opts.now);
  const waiver = applicable.find((w) => names.some((n) => isWaiverActive(w, n, opts.now)));
  if (waiver) return `waived by ${waiver.id} (approved by ${waiver.approved_by}, until ${waiver.expires_at})`;

  const override = opts.spec.human_override;
  const overrideLive = override?.expiry_date !== undefined && isoToMs(override.expiry_date) > nowMs;
  if (override && overrideLive && names.some((n) => override.waived_requirements.includes(n))) {
    return `waived by human override (approved by ${override.approved_by}, until ${override.expiry_date}): ${override.reason}`;
  }
  if (opts.spec.experiment_mode && opts.tier === 3 && overrideLive && EXPERIMENT_RELAXES.includes(kind)) {
    return `relaxed by experiment mode (tier 3, until ${override?.expiry_date})`;
  }
  return undefined;
}

/**
 * Evaluates each measurement against the tier policy, plus a failing entry for every gate the spec declares but no
 * measurement covers. Failing gates may be waived (see the precedence above); nothing missing passes.
 */
export function evaluateGates(measurements: readonly GateMeasurement[], opts: EvaluateGatesOptions): GateEvaluation[] {
  const policy = (opts.policy ?? DEFAULT_TIER_POLICY)[opts.tier];
  const applicable = referencedWaivers(opts.spec, opts.waivers);
  const all: GateMeasurement[] = [...measurements];
  for (const gate of opts.gates ?? opts.spec.gates) {
    if (!all.some((m) => m.gate === gate.name)) {
      all.push({ gate: gate.name, kind: gateKind(gate), missing: true, evidence: 'the spec declares it; not run' });
    }
  }
  for (const kind of opts.required ?? []) {
    if (!all.some((m) => m.kind === kind)) {
      const evidence = `required by the tier ${opts.tier} policy; no command for it in the repository's registration, the tenant's default or the spec`;
      all.push({ gate: kind, kind, missing: true, evidence });
    }
  }
  return all.map((m) => {
    const verdict = judge(m, policy);
    const evaluation: GateEvaluation = { gate: m.gate, ...verdict };
    if (verdict.status !== 'fail') return evaluation;
    const exempt = exemption(m.gate, m.kind, opts, applicable);
    if (!exempt) return evaluation;
    const mandatory = MANDATORY_GATE_KINDS.includes(m.kind) ? ' (mandatory gate)' : '';
    return { ...evaluation, status: 'waived', reason: `${verdict.reason}${mandatory}; ${exempt}` };
  });
}

/** True when no gate failed (waived gates count as not failed). */
export function gatesPassed(evaluations: readonly GateEvaluation[]): boolean {
  return evaluations.every((e) => e.status !== 'fail');
}

// ---------------------------------------------------------------------------------------------------------------------
// Trust score

export const TRUST_WEIGHTS = Object.freeze({ coverage: 0.3, mutation: 0.3, contracts: 0.2, a11y: 0.1, perf: 0.1 });
export const TRUST_PASS_THRESHOLD = 0.8;
export type TrustComponentName = keyof typeof TRUST_WEIGHTS;

/** Each input is a fraction 0..1 (booleans count as 1 or 0); a missing or invalid input counts as 0 and is noted. */
export type TrustInputs = Partial<Record<TrustComponentName, number | boolean>>;

export interface TrustScore {
  /** Rounded to six decimals so that exact inputs at the threshold are not lost to floating point. */
  score: number;
  pass: boolean;
  components: Record<TrustComponentName, { value: number; weight: number; weighted: number }>;
  notes: string[];
}

/** Trust = 0.3·coverage + 0.3·mutation + 0.2·contracts + 0.1·a11y + 0.1·perf; passes at ≥ 0.8. */
export function trustScore(inputs: TrustInputs): TrustScore {
  const notes: string[] = [];
  const components = {} as TrustScore['components'];
  let sum = 0;
  for (const name of Object.keys(TRUST_WEIGHTS) as TrustComponentName[]) {
    const raw = inputs[name];
    let value = typeof raw === 'boolean' ? (raw ? 1 : 0) : raw;
    if (value === undefined) {
      notes.push(`${name}: missing, counted as 0`);
      value = 0;
    } else if (!Number.isFinite(value) || value < 0 || value > 1) {
      notes.push(`${name}: ${value} is not a fraction between 0 and 1, counted as 0`);
      value = 0;
    }
    const weight = TRUST_WEIGHTS[name];
    const weighted = weight * value;
    components[name] = { value, weight, weighted };
    sum += weighted;
  }
  const score = Math.round(sum * 1e6) / 1e6;
  return { score, pass: score >= TRUST_PASS_THRESHOLD, components, notes };
}
