import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import {
  DEFAULT_TIER_POLICY,
  effectiveBudget,
  evaluateGates,
  gateKind,
  gatesPassed,
  isWaiverActive,
  planGates,
  requiredGateKinds,
  resolveTierPolicy,
  trustScore,
  WaiverSchema,
  waiverInactiveReason,
  type GateMeasurement,
  type RegisteredGate,
  type Waiver,
} from '../../workflows/task/policy.js';
import { WorkingSpecSchema, type WorkingSpec } from '../../workflows/task/spec.js';

const NOW = '2030-06-01T12:00:00Z';

function spec(extra: Record<string, unknown> = {}): WorkingSpec {
  return WorkingSpecSchema.parse({
    id: 'FEAT-1',
    title: 'A change under policy',
    risk_tier: 3,
    mode: 'feature',
    scope: { in: ['src/'] },
    waiver_ids: ['WV-0001', 'WV-0002'],
    ...extra,
  });
}

function waiver(extra: Partial<Waiver> = {}): Waiver {
  return {
    id: 'WV-0001',
    gates: ['coverage'],
    reason: 'the native module is not instrumented',
    impact_level: 'medium',
    approved_by: 'alice',
    expires_at: '2030-06-30T00:00:00Z',
    status: 'active',
    mitigation: 'manual tests of the native paths',
    created_at: '2030-05-15T00:00:00Z',
    ...extra,
  };
}

const coverage = (value: number): GateMeasurement => ({
  gate: 'coverage',
  kind: 'coverage',
  passed: true,
  value,
  evidence: 'coverage/coverage-summary.json',
});

describe('tier policy', () => {
  it('when no overrides are given, then the CAWS table applies', () => {
    expect(resolveTierPolicy()).toEqual({
      1: {
        minBranchCoverage: 0.9,
        minMutationScore: 0.7,
        contractsRequired: true,
        manualReviewRequired: true,
        requiredGates: ['tests', 'coverage', 'mutation'],
        maxFiles: 25,
        maxLoc: 1000,
      },
      2: {
        minBranchCoverage: 0.8,
        minMutationScore: 0.5,
        contractsRequired: true,
        manualReviewRequired: false,
        requiredGates: ['tests', 'coverage', 'mutation'],
        maxFiles: 50,
        maxLoc: 2000,
      },
      3: {
        minBranchCoverage: 0.7,
        minMutationScore: 0.3,
        contractsRequired: false,
        manualReviewRequired: false,
        requiredGates: ['tests', 'coverage', 'mutation'],
        maxFiles: 100,
        maxLoc: 5000,
      },
    });
  });

  it('when a policy file overrides one field of one tier, then only that field changes', () => {
    const policy = resolveTierPolicy({ 2: { minBranchCoverage: 0.85 } });
    expect(policy[2]).toEqual({ ...DEFAULT_TIER_POLICY[2], minBranchCoverage: 0.85 });
    expect(policy[1]).toEqual(DEFAULT_TIER_POLICY[1]);
    expect(Object.isFrozen(policy[2])).toBe(true);
  });

  it('when an override is out of range, then resolving it throws naming the field', () => {
    expect(() => resolveTierPolicy({ 1: { minBranchCoverage: 90 } })).toThrow(ZodError);
    expect(() => resolveTierPolicy({ 1: { maxFiles: 0 } })).toThrow(/maxFiles/);
  });
});

describe('waivers', () => {
  it('when a waiver is active, unexpired and names the gate, then it is active for that gate only', () => {
    expect(WaiverSchema.safeParse(waiver()).success).toBe(true);
    expect(isWaiverActive(waiver(), 'coverage', NOW)).toBe(true);
    expect(isWaiverActive(waiver(), 'mutation', NOW)).toBe(false);
  });

  it('when a waiver has passed its expiry, then it is not active even if its status still says active', () => {
    expect(isWaiverActive(waiver(), 'coverage', '2030-06-30T00:00:00Z')).toBe(false);
    expect(waiverInactiveReason(waiver(), 'coverage', '2030-07-01T00:00:00Z')).toBe(
      'WV-0001 expired at 2030-06-30T00:00:00Z',
    );
  });

  it('when a waiver is marked expired or revoked, then it is not active', () => {
    expect(isWaiverActive(waiver({ status: 'expired' }), 'coverage', NOW)).toBe(false);
    expect(waiverInactiveReason(waiver({ status: 'revoked' }), 'coverage', NOW)).toBe('WV-0001 is revoked');
  });

  it('when a waiver spans more than 90 days, then the schema rejects it and it is never active', () => {
    const long = waiver({ created_at: '2030-03-01T00:00:00Z', expires_at: '2030-06-30T00:00:00Z' });
    const parsed = WaiverSchema.safeParse(long);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues).toEqual([
      expect.objectContaining({ path: ['expires_at'], message: 'at most 90 days after created_at' }),
    ]);
    expect(isWaiverActive(long, 'coverage', NOW)).toBe(false);
    const exactly90 = waiver({ created_at: '2030-04-01T00:00:00Z', expires_at: '2030-06-30T00:00:00Z' });
    expect(WaiverSchema.safeParse(exactly90).success).toBe(true);
  });

  it('when a waiver is malformed, then the schema names each problem', () => {
    const parsed = WaiverSchema.safeParse({
      ...waiver(),
      id: 'W-1',
      gates: [],
      expires_at: 'soon',
      budget_delta: { max_files: 5 },
    });
    const paths = parsed.error?.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['id', 'gates', 'expires_at']));
  });

  it('when a waiver carries a budget delta without naming the budget gate, then the schema rejects it', () => {
    const parsed = WaiverSchema.safeParse(waiver({ budget_delta: { max_files: 5 } }));
    expect(parsed.error?.issues.map((i) => i.message)).toEqual(['a waiver with a budget_delta names the budget gate']);
  });
});

describe('effective budget', () => {
  const budgetWaiver = (extra: Partial<Waiver> = {}): Waiver =>
    waiver({ id: 'WV-0002', gates: ['budget'], budget_delta: { max_files: 5, max_loc: 300 }, ...extra });

  it('when the spec declares a budget, then it is the base', () => {
    const s = spec({ change_budget: { max_files: 7, max_loc: 70 } });
    expect(effectiveBudget(3, s, [], NOW)).toEqual({ max_files: 7, max_loc: 70, source: 'spec', waivers: [] });
  });

  it('when the spec declares none, then the tier default is the base', () => {
    expect(effectiveBudget(1, spec(), [], NOW)).toEqual({ max_files: 25, max_loc: 1000, source: 'tier', waivers: [] });
    const policy = resolveTierPolicy({ 1: { maxFiles: 30 } });
    expect(effectiveBudget(1, spec(), [], NOW, policy).max_files).toBe(30);
  });

  it('when active budget waivers apply, then their deltas add up; inactive ones add nothing', () => {
    const second = budgetWaiver({ id: 'WV-0003', budget_delta: { max_loc: 100 } });
    const revoked = budgetWaiver({ id: 'WV-0004', status: 'revoked' });
    const s = spec({ waiver_ids: ['WV-0002', 'WV-0003', 'WV-0004'] });
    expect(effectiveBudget(2, s, [budgetWaiver(), second, revoked], NOW)).toEqual({
      max_files: 55,
      max_loc: 2400,
      source: 'tier',
      waivers: ['WV-0002', 'WV-0003'],
    });
  });

  it('when a budget waiver is not listed in the spec waiver_ids, then it does not apply', () => {
    expect(effectiveBudget(2, spec({ waiver_ids: [] }), [budgetWaiver()], NOW).max_files).toBe(50);
  });
});

describe('gate evaluation', () => {
  it('when branch coverage is 0.899 at tier 1, then it fails; at 0.90 it passes', () => {
    const opts = { tier: 1 as const, waivers: [], spec: spec(), now: NOW };
    expect(evaluateGates([coverage(0.899)], opts)).toEqual([
      {
        gate: 'coverage',
        status: 'fail',
        reason: 'branch coverage 0.899 < 0.9 (coverage/coverage-summary.json)',
        threshold: 0.9,
        value: 0.899,
      },
    ]);
    expect(evaluateGates([coverage(0.9)], opts)[0]).toMatchObject({ status: 'pass', threshold: 0.9, value: 0.9 });
  });

  it('when coverage and mutation sit at each tier boundary, then the tier thresholds decide', () => {
    const cases: [1 | 2 | 3, number, number][] = [
      [1, 0.9, 0.7],
      [2, 0.8, 0.5],
      [3, 0.7, 0.3],
    ];
    for (const [tier, cov, mut] of cases) {
      const opts = { tier, waivers: [], spec: spec(), now: NOW };
      const mutation = (value: number): GateMeasurement => ({
        gate: 'mutation',
        kind: 'mutation',
        value,
        evidence: '',
      });
      expect(evaluateGates([coverage(cov), mutation(mut)], opts).map((e) => e.status)).toEqual(['pass', 'pass']);
      expect(evaluateGates([coverage(cov - 0.001), mutation(mut - 0.001)], opts).map((e) => e.status)).toEqual([
        'fail',
        'fail',
      ]);
    }
  });

  it('when tests, lint and types report pass or fail, then the verdict follows', () => {
    const results = evaluateGates(
      [
        { gate: 'tests', kind: 'tests', passed: true, evidence: 'log:1' },
        { gate: 'lint', kind: 'lint', passed: false, evidence: 'log:2' },
        { gate: 'types', kind: 'types', evidence: 'log:3' },
      ],
      { tier: 3, waivers: [], spec: spec(), now: NOW },
    );
    expect(results).toEqual([
      { gate: 'tests', status: 'pass', reason: 'passed (log:1)' },
      { gate: 'lint', status: 'fail', reason: 'failed (log:2)' },
      { gate: 'types', status: 'fail', reason: 'no result (log:3)' },
    ]);
    expect(gatesPassed(results)).toBe(false);
  });

  it('when the coverage report is missing, then the gate fails', () => {
    const missing: GateMeasurement = { gate: 'coverage', kind: 'coverage', missing: true, evidence: 'no report' };
    const [result] = evaluateGates([missing], { tier: 2, waivers: [], spec: spec(), now: NOW });
    expect(result).toEqual({ gate: 'coverage', status: 'fail', reason: 'input missing (no report)' });
  });

  it('when the coverage report is missing and an active waiver covers the gate, then the gate is waived', () => {
    const missing: GateMeasurement = { gate: 'coverage', kind: 'coverage', missing: true, evidence: 'no report' };
    const [result] = evaluateGates([missing], { tier: 2, waivers: [waiver()], spec: spec(), now: NOW });
    expect(result?.status).toBe('waived');
    expect(result?.reason).toBe(
      'input missing (no report); waived by WV-0001 (approved by alice, until 2030-06-30T00:00:00Z)',
    );
  });

  it('when the waiver has expired or the spec does not list it, then the missing report still fails', () => {
    const missing: GateMeasurement = { gate: 'coverage', kind: 'coverage', missing: true, evidence: '' };
    const late = '2030-07-01T00:00:00Z';
    expect(evaluateGates([missing], { tier: 2, waivers: [waiver()], spec: spec(), now: late })[0]?.status).toBe('fail');
    const unlisted = spec({ waiver_ids: [] });
    expect(evaluateGates([missing], { tier: 2, waivers: [waiver()], spec: unlisted, now: NOW })[0]?.status).toBe(
      'fail',
    );
  });

  it('when the spec declares a gate that was never measured, then it fails as missing', () => {
    const s = spec({ gates: [{ name: 'unit', kind: 'tests', run: ['npm', 'test'] }] });
    expect(evaluateGates([], { tier: 3, waivers: [], spec: s, now: NOW })).toEqual([
      { gate: 'unit', status: 'fail', reason: 'input missing (the spec declares it; not run)' },
    ]);
  });

  it('when a waiver, a human override and experiment mode all cover a gate, then the waiver is named', () => {
    const override = {
      approved_by: 'carol',
      reason: 'trial of a new layout',
      waived_requirements: ['coverage'],
      expiry_date: '2030-06-15',
    };
    const s = spec({ experiment_mode: true, human_override: override });
    const opts = { tier: 3 as const, spec: s, now: NOW };
    expect(evaluateGates([coverage(0.1)], { ...opts, waivers: [waiver()] })[0]?.reason).toContain('waived by WV-0001');
    expect(evaluateGates([coverage(0.1)], { ...opts, waivers: [] })[0]?.reason).toContain(
      'waived by human override (approved by carol, until 2030-06-15): trial of a new layout',
    );
    const experimentOnly = spec({ experiment_mode: true, human_override: { ...override, waived_requirements: [] } });
    expect(evaluateGates([coverage(0.1)], { ...opts, spec: experimentOnly, waivers: [] })[0]).toMatchObject({
      status: 'waived',
      reason: expect.stringContaining('relaxed by experiment mode (tier 3, until 2030-06-15)') as string,
    });
  });

  it('when the human override has expired, then it waives nothing', () => {
    const s = spec({
      human_override: { approved_by: 'c', reason: 'r', waived_requirements: ['coverage'], expiry_date: '2030-05-31' },
    });
    expect(evaluateGates([coverage(0.1)], { tier: 3, waivers: [], spec: s, now: NOW })[0]?.status).toBe('fail');
  });

  it('when experiment mode is on, then it never relaxes mandatory gates nor applies above tier 3', () => {
    const s = spec({
      experiment_mode: true,
      human_override: { approved_by: 'c', reason: 'r', waived_requirements: [], expiry_date: '2030-06-15' },
    });
    const tests: GateMeasurement = { gate: 'tests', kind: 'tests', passed: false, evidence: '' };
    expect(evaluateGates([tests], { tier: 3, waivers: [], spec: s, now: NOW })[0]?.status).toBe('fail');
    expect(evaluateGates([coverage(0.1)], { tier: 2, waivers: [], spec: s, now: NOW })[0]?.status).toBe('fail');
  });

  it('when a waiver names a mandatory gate, then it is waived and the reason says the gate is mandatory', () => {
    const w = waiver({ gates: ['lint'] });
    const lint: GateMeasurement = { gate: 'lint', kind: 'lint', passed: false, evidence: '' };
    expect(evaluateGates([lint], { tier: 1, waivers: [w], spec: spec(), now: NOW })[0]).toMatchObject({
      status: 'waived',
      reason: expect.stringContaining('(mandatory gate); waived by WV-0001') as string,
    });
  });

  it('when a coverage value is not a fraction, or the command failed, then the gate fails', () => {
    const opts = { tier: 3 as const, waivers: [], spec: spec(), now: NOW };
    expect(evaluateGates([coverage(85)], opts)[0]?.status).toBe('fail');
    expect(evaluateGates([coverage(Number.NaN)], opts)[0]?.status).toBe('fail');
    expect(evaluateGates([{ ...coverage(0.95), passed: false }], opts)[0]?.status).toBe('fail');
  });

  it('when a gate declares no kind, then its name decides the kind', () => {
    expect(gateKind({ name: 'lint' })).toBe('lint');
    expect(gateKind({ name: 'e2e' })).toBe('custom');
    expect(gateKind({ name: 'unit', kind: 'tests' })).toBe('tests');
  });

  it('when any measurement is missing and nothing waives it, then it never passes', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...(['tests', 'lint', 'types', 'coverage', 'mutation', 'contracts', 'custom'] as const)),
        fc.constantFrom(1 as const, 2 as const, 3 as const),
        fc.option(fc.boolean(), { nil: undefined }),
        fc.option(fc.double(), { nil: undefined }),
        (kind, tier, passed, value) => {
          const [result] = evaluateGates([{ gate: 'g', kind, passed, value, missing: true, evidence: '' }], {
            tier,
            waivers: [],
            spec: spec(),
            now: NOW,
          });
          return result?.status === 'fail';
        },
      ),
    );
  });
});

describe('trust score', () => {
  it('when components are given, then the score is the weighted sum with each component shown', () => {
    const t = trustScore({ coverage: 0.9, mutation: 0.7, contracts: true, a11y: 1, perf: 0.5 });
    expect(t.score).toBe(0.83); // 0.27 + 0.21 + 0.2 + 0.1 + 0.05
    expect(t.pass).toBe(true);
    expect(t.components.coverage).toEqual({ value: 0.9, weight: 0.3, weighted: expect.closeTo(0.27, 10) as number });
    expect(t.components.contracts).toEqual({ value: 1, weight: 0.2, weighted: 0.2 });
    expect(t.notes).toEqual([]);
  });

  it('when every component is exactly 0.8, then the score is 0.8 and passes', () => {
    const t = trustScore({ coverage: 0.8, mutation: 0.8, contracts: 0.8, a11y: 0.8, perf: 0.8 });
    expect(t.score).toBe(0.8);
    expect(t.pass).toBe(true);
  });

  it('when the score is just under 0.8, then it fails', () => {
    expect(trustScore({ coverage: 0.79, mutation: 0.8, contracts: 0.8, a11y: 0.8, perf: 0.8 }).pass).toBe(false);
  });

  it('when a component is missing or out of range, then it counts as 0 and a note says so', () => {
    const t = trustScore({ coverage: 1, mutation: 1.5, contracts: false });
    expect(t.score).toBe(0.3);
    expect(t.notes).toEqual([
      'mutation: 1.5 is not a fraction between 0 and 1, counted as 0',
      'a11y: missing, counted as 0',
      'perf: missing, counted as 0',
    ]);
  });

  it('when components are fractions, then the score stays within 0..1 and matches the weights', () => {
    const unit = fc.double({ min: 0, max: 1, noNaN: true });
    fc.assert(
      fc.property(unit, unit, unit, unit, unit, (coverage, mutation, contracts, a11y, perf) => {
        const { score } = trustScore({ coverage, mutation, contracts, a11y, perf });
        const expected = 0.3 * coverage + 0.3 * mutation + 0.2 * contracts + 0.1 * a11y + 0.1 * perf;
        return score >= 0 && score <= 1 && Math.abs(score - expected) < 1e-6;
      }),
    );
  });
});

describe('gates the tier policy requires', () => {
  const registered: RegisteredGate[] = [
    {
      kind: 'tests',
      run: ['node', '--test', '--test-reporter=junit', '--test-reporter-destination={out}/junit.xml'],
      source: 'repository',
    },
    { kind: 'coverage', run: ['npm', 'run', 'coverage'], report: 'lcov.info', source: 'tenant' },
  ];

  it('when the tier requires contracts, then contracts join tests, coverage and mutation; at tier 3 they do not', () => {
    expect(requiredGateKinds(1)).toEqual(['tests', 'coverage', 'mutation', 'contracts']);
    expect(requiredGateKinds(2)).toEqual(['tests', 'coverage', 'mutation', 'contracts']);
    expect(requiredGateKinds(3)).toEqual(['tests', 'coverage', 'mutation']);
    expect(requiredGateKinds(3, resolveTierPolicy({ 3: { requiredGates: ['tests'] } }))).toEqual(['tests']);
  });

  it('when the spec lists no gate, then the registered commands run for the required kinds', () => {
    const plan = planGates(3, spec(), registered);
    expect(plan.gates.map((p) => [p.gate.name, p.gate.kind, p.source])).toEqual([
      ['tests', 'tests', 'repository'],
      ['coverage', 'coverage', 'tenant'],
    ]);
    expect(plan.gates[1]!.gate.report).toBe('lcov.info');
    expect(plan.required).toEqual(['tests', 'coverage', 'mutation']);
  });

  it("when the spec declares a gate of a required kind, then the registered command replaces it; the spec's others stay", () => {
    const s = spec({
      gates: [
        { name: 'unit', kind: 'tests', run: ['true'] },
        { name: 'mutation', run: ['npx', 'stryker', 'run'] },
        { name: 'docs', kind: 'custom', run: ['make', 'docs'] },
      ],
    });
    const plan = planGates(3, s, registered);
    expect(plan.gates.map((p) => [p.gate.name, p.source, p.gate.run[0]])).toEqual([
      ['mutation', 'spec', 'npx'],
      ['docs', 'spec', 'make'],
      ['tests', 'repository', 'node'],
      ['coverage', 'tenant', 'npm'],
    ]);
  });

  it('when a required gate has no command anywhere, then it fails as missing unless a waiver covers it', () => {
    const s = spec({ risk_tier: 2 });
    const plan = planGates(2, s, registered);
    const measured: GateMeasurement[] = [
      { gate: 'tests', kind: 'tests', passed: true, evidence: 'junit.xml: 3 ran' },
      coverage(0.95),
    ];
    const opts = { tier: 2 as const, spec: s, now: NOW, gates: plan.gates.map((p) => p.gate), required: plan.required };
    const evaluations = evaluateGates(measured, { ...opts, waivers: [] });
    expect(evaluations.map((e) => [e.gate, e.status])).toEqual([
      ['tests', 'pass'],
      ['coverage', 'pass'],
      ['mutation', 'fail'],
      ['contracts', 'fail'],
    ]);
    expect(evaluations[3]!.reason).toContain('required by the tier 2 policy; no command for it');
    const waived = evaluateGates(measured, { ...opts, waivers: [waiver({ gates: ['contracts', 'mutation'] })] });
    expect(waived.slice(2).map((e) => e.status)).toEqual(['waived', 'waived']);
    // Without the plan (executions planned before required gates), nothing is added.
    expect(evaluateGates(measured, { tier: 2, spec: s, now: NOW, waivers: [] })).toHaveLength(2);
  });
});
