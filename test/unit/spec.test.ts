import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadWorkingSpec, parseSpecDocument, SpecSyntaxError } from '../../activities/planning/spec-loader.js';
import {
  crossFieldErrors,
  GateSchema,
  parseWorkingSpec,
  StrictWorkingSpecSchema,
  WorkingSpecSchema,
  type WorkingSpec,
} from '../../workflows/task/spec.js';

const NOW = '2030-06-01T12:00:00Z';

/** A complete tier-1 spec: every CAWS field, as a document would carry it. */
function tier1(): Record<string, unknown> {
  return {
    id: 'FEAT-0042',
    title: 'Rotate signing keys without downtime',
    risk_tier: 1,
    mode: 'feature',
    change_budget: { max_files: 10, max_loc: 400 },
    blast_radius: { modules: ['auth', 'audit'], data_migration: true },
    operational_rollback_slo: '5m',
    scope: { in: ['common/keys/', 'migrations/'], out: ['node_modules/'] },
    invariants: ['a verdict signed before rotation still verifies'],
    acceptance: [
      { id: 'A1', given: 'a key older than 90 days', when: 'rotation runs', then: 'a new key signs new verdicts' },
      { id: 'A2', given: 'an old verdict', when: 'it is verified', then: 'the retired key verifies it' },
    ],
    non_functional: { a11y: [], perf: { api_p95_ms: 250 }, security: ['private keys never leave the key store'] },
    contracts: [{ type: 'openapi', path: 'api/openapi.yaml' }],
    waiver_ids: ['WV-0001'],
    observability: { logs: ['keys.rotated'], metrics: ['agent_agency_audit_events_total'], traces: [] },
    migrations: ['add key_versions table'],
    rollback: ['re-enable the previous key'],
    experiment_mode: false,
    human_override: {
      approved_by: 'alice',
      reason: 'coverage tooling cannot see the native module',
      waived_requirements: ['coverage'],
      expiry_date: '2030-07-01',
    },
    ai_assessment: { confidence_level: 8, uncertainty_areas: ['key store latency'], recommended_pairing: true },
    steps: [{ kind: 'write_file', path: 'common/keys/rotate.ts', content: 'export {};\n' }],
    gates: [
      { name: 'tests', run: ['npm', 'test'] },
      { name: 'coverage', kind: 'coverage', run: ['npm', 'run', 'cov'], report: 'coverage/coverage-summary.json' },
    ],
  };
}

function errorsOf(raw: unknown, opts: { strict?: boolean; now?: string } = {}): string[] {
  const result = parseWorkingSpec(raw, { now: NOW, ...opts });
  return result.ok ? [] : result.errors;
}

describe('parseWorkingSpec', () => {
  it('when a tier-1 spec carries every CAWS field, then it is valid with no warnings and keeps every field', () => {
    const result = parseWorkingSpec(tier1(), { now: NOW });
    expect(result).toMatchObject({ ok: true, warnings: [] });
    if (!result.ok) return;
    const spec: WorkingSpec = result.spec;
    expect(spec.risk_tier).toBe(1);
    expect(spec.blast_radius).toEqual({ modules: ['auth', 'audit'], data_migration: true });
    expect(spec.contracts).toEqual([{ type: 'openapi', path: 'api/openapi.yaml' }]);
    expect(spec.observability?.traces).toEqual([]);
    expect(spec.human_override?.waived_requirements).toEqual(['coverage']);
    expect(spec.ai_assessment).toEqual({
      confidence_level: 8,
      uncertainty_areas: ['key store latency'],
      recommended_pairing: true,
    });
    expect(spec.gates[1]).toMatchObject({ kind: 'coverage', report: 'coverage/coverage-summary.json' });
  });

  it('when the minimal fields of today are given, then defaults fill the lists and the new fields stay absent', () => {
    const result = parseWorkingSpec(
      { id: 'FIX-1', title: 'Fix the greeting text', risk_tier: 3, mode: 'fix', scope: { in: ['src/'] } },
      { now: NOW },
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.spec).toEqual({
      id: 'FIX-1',
      title: 'Fix the greeting text',
      risk_tier: 3,
      mode: 'fix',
      scope: { in: ['src/'], out: [] },
      invariants: [],
      acceptance: [],
      steps: [],
      gates: [],
    });
  });

  it('when tier 1 lacks contracts, observability, rollback and security, then each is an error at its path', () => {
    const spec = tier1();
    delete spec.contracts;
    delete spec.observability;
    spec.rollback = [];
    spec.non_functional = { perf: {} };
    expect(errorsOf(spec)).toEqual([
      'contracts: risk tier 1 needs at least one contract',
      'observability: risk tier 1 needs observability (logs, metrics or traces)',
      'rollback: risk tier 1 needs at least one rollback step',
      'non_functional.security: risk tier 1 needs at least one security entry',
    ]);
  });

  it('when tier 1 observability lists nothing, then it counts as absent', () => {
    const spec = { ...tier1(), observability: { logs: [], metrics: [], traces: [] } };
    expect(errorsOf(spec)).toEqual(['observability: risk tier 1 needs observability (logs, metrics or traces)']);
  });

  it('when tier 2 has no contracts, then the error names tier 2; tier 3 needs none', () => {
    const base = { id: 'FEAT-7', title: 'Add a settings endpoint', mode: 'feature', scope: { in: ['api/'] } };
    expect(errorsOf({ ...base, risk_tier: 2 })).toEqual(['contracts: risk tier 2 needs at least one contract']);
    expect(errorsOf({ ...base, risk_tier: 2, contracts: [] })).toEqual([
      'contracts: risk tier 2 needs at least one contract',
    ]);
    expect(errorsOf({ ...base, risk_tier: 3 })).toEqual([]);
  });

  it('when experiment mode is asked for above tier 3, then it is an error', () => {
    const spec = { ...tier1(), experiment_mode: true };
    expect(errorsOf(spec)).toEqual(['experiment_mode: only allowed at risk tier 3 (this spec is tier 1)']);
  });

  it('when experiment mode at tier 3 has no override expiry, or one in the past, then it is an error', () => {
    const base = {
      id: 'UI-3',
      title: 'Try a new dashboard layout',
      risk_tier: 3,
      mode: 'feature',
      scope: { in: ['ui/'] },
      experiment_mode: true,
    };
    expect(errorsOf(base)).toEqual([
      'human_override.expiry_date: experiment mode needs a human override with an expiry date',
    ]);
    const past = { ...base, human_override: { approved_by: 'bob', reason: 'trial', expiry_date: '2030-06-01' } };
    expect(errorsOf(past)).toEqual([
      'human_override.expiry_date: experiment mode needs a future expiry; 2030-06-01 has passed',
    ]);
    const atNow = { ...base, human_override: { approved_by: 'bob', reason: 'trial', expiry_date: NOW } };
    expect(errorsOf(atNow)).toHaveLength(1);
    const future = { ...base, human_override: { approved_by: 'bob', reason: 'trial', expiry_date: '2030-06-02' } };
    expect(errorsOf(future)).toEqual([]);
  });

  it('when fields break their own rules, then every message is "path: message" with the exact path', () => {
    const spec = {
      ...tier1(),
      id: 'feat-1',
      title: 'short',
      risk_tier: 4,
      mode: 'rewrite',
      operational_rollback_slo: 'soon',
      acceptance: [{ id: 'AC-1', given: 'g', when: 'w', then: 't' }],
      contracts: [{ type: 'soap', path: '/etc/passwd' }],
      waiver_ids: ['W1'],
      ai_assessment: { confidence_level: 11 },
    };
    const errors = errorsOf(spec);
    expect(errors).toEqual(
      expect.arrayContaining([
        'id: ids look like FEAT-0042',
        'title: at least 10 characters',
        'risk_tier: risk_tier is 1, 2 or 3 (1 is the most critical)',
        'operational_rollback_slo: a duration such as 5m, 30s, 2h or 1d',
        'acceptance.0.id: ids look like A1',
        'contracts.0.path: must be a path inside the workspace (relative, without "..")',
        'waiver_ids.0: waiver ids look like WV-0001',
      ]),
    );
    expect(errors.some((e) => e.startsWith('mode: '))).toBe(true);
    expect(errors.some((e) => e.startsWith('contracts.0.type: '))).toBe(true);
    expect(errors.some((e) => e.startsWith('ai_assessment.confidence_level: '))).toBe(true);
    for (const e of errors) expect(e).toMatch(/^[a-z_]+(\.[a-z_0-9]+)*: \S/);
  });

  it('when required fields are absent, then each is reported as required', () => {
    expect(errorsOf({ scope: {} })).toEqual([
      'id: required',
      'title: required',
      'risk_tier: required',
      'mode: required',
      'scope.in: required',
    ]);
  });

  it('when ids repeat among acceptance criteria or gates, then the repeat is an error naming the first', () => {
    const spec = tier1();
    spec.acceptance = [
      { id: 'A1', given: 'g', when: 'w', then: 't' },
      { id: 'A1', given: 'g', when: 'w', then: 't' },
    ];
    spec.gates = [
      { name: 'lint', run: ['eslint', '.'] },
      { name: 'lint', run: ['eslint', 'src'] },
    ];
    expect(errorsOf(spec)).toEqual([
      'acceptance.1.id: duplicate id A1 (also acceptance.0.id)',
      'gates.1.name: duplicate gate name lint (also gates.0.name)',
    ]);
  });

  it('when unknown keys appear at several levels, then lenient mode warns and drops them', () => {
    const spec = {
      ...tier1(),
      status: 'draft',
      scope: { in: ['src/'], extra: true },
      acceptance: [{ id: 'A1', given: 'g', when: 'w', then: 't', note: 'n' }],
      non_functional: { security: ['s'], reliability: ['r'] },
    };
    const result = parseWorkingSpec(spec, { now: NOW });
    expect(result.ok).toBe(true);
    expect(result.warnings.sort()).toEqual([
      'acceptance.0.note: unknown key (ignored)',
      'non_functional.reliability: unknown key (ignored)',
      'scope.extra: unknown key (ignored)',
      'status: unknown key (ignored)',
    ]);
    if (!result.ok) return;
    expect(result.spec.scope).toEqual({ in: ['src/'], out: [] });
    expect('status' in result.spec).toBe(false);
  });

  it('when unknown keys appear in strict mode, then they are errors', () => {
    const spec = { ...tier1(), status: 'draft', scope: { in: ['src/'], extra: true } };
    const result = parseWorkingSpec(spec, { now: NOW, strict: true });
    expect(result).toEqual({
      ok: false,
      errors: ['scope.extra: unknown key', 'status: unknown key'],
      warnings: [],
    });
  });

  it('when a step or gate has an unknown key, then it is an error even in lenient mode', () => {
    const spec = {
      ...tier1(),
      steps: [{ kind: 'command', run: ['make'], timeout_second: 5 }],
      gates: [{ name: 'tests', run: ['npm', 'test'], retries: 2 }],
    };
    expect(errorsOf(spec)).toEqual([
      'steps.0.timeout_second: unknown key (steps and gates accept no unknown keys)',
      'gates.0.retries: unknown key (steps and gates accept no unknown keys)',
    ]);
  });

  it('when optional fields are written as null, then they count as absent', () => {
    const result = parseWorkingSpec(
      { ...tier1(), human_override: null, ai_assessment: null, change_budget: null, experiment_mode: null },
      { now: NOW },
    );
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.spec.human_override).toBeUndefined();
  });

  it('when a coverage gate names no report, then a warning says it will fail', () => {
    const spec = { ...tier1(), gates: [{ name: 'coverage', run: ['npm', 'run', 'cov'] }] };
    const result = parseWorkingSpec(spec, { now: NOW });
    expect(result.ok).toBe(true);
    expect(result.warnings).toEqual([
      'gates.0.report: a coverage gate without a report path has no measurement and will fail',
    ]);
  });

  it('when an unknown key is not a plain identifier, then its path segment is quoted', () => {
    const result = parseWorkingSpec({ ...tier1(), '': 1, scope: { in: ['a'], 'my key': 2 } }, { now: NOW });
    expect(result.warnings.sort()).toEqual(['[""]: unknown key (ignored)', 'scope["my key"]: unknown key (ignored)']);
  });

  it('when the document is not a mapping or now is not ISO, then the error says so', () => {
    expect(errorsOf(null)).toEqual(['(spec): a working spec is a mapping of fields, got null']);
    expect(errorsOf(['a'])).toEqual(['(spec): a working spec is a mapping of fields, got a list']);
    expect(errorsOf(tier1(), { now: 'June 1, 2030' })).toEqual(['(now): "June 1, 2030" is not an ISO date-time']);
  });

  it('when given arbitrary JSON values, then it never throws and always answers with messages', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.boolean(), (value, strict) => {
        const result = parseWorkingSpec(value, { now: NOW, strict });
        const messages = result.ok ? result.warnings : result.errors;
        for (const m of messages) expect(m).toMatch(/^(\(spec\)|[A-Za-z_[]).*?: \S/s);
        return result.ok === false || typeof result.spec.id === 'string';
      }),
      { numRuns: 300 },
    );
  });

  it('when a valid spec gains arbitrary unknown top-level keys, then lenient mode accepts it with one warning each', () => {
    const known = new Set(Object.keys(WorkingSpecSchema.shape));
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.string({ minLength: 1 }).filter((k) => !known.has(k) && k !== '__proto__'),
          fc.jsonValue(),
          { maxKeys: 5 },
        ),
        (extra) => {
          const result = parseWorkingSpec({ ...extra, ...tier1() }, { now: NOW });
          expect(result.ok).toBe(true);
          expect(result.warnings).toHaveLength(Object.keys(extra).length);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('spec schemas for JSON validation', () => {
  it('when the API validates a spec with WorkingSpecSchema, then unknown keys are dropped and the strict twin rejects them', () => {
    const raw = { id: 'FIX-9', title: 'A title long enough', risk_tier: 3, mode: 'fix', scope: { in: ['a'] }, x: 1 };
    const lenient = WorkingSpecSchema.safeParse(raw);
    expect(lenient.success && !('x' in lenient.data)).toBe(true);
    expect(StrictWorkingSpecSchema.safeParse(raw).success).toBe(false);
  });

  it('when crossFieldErrors is applied to a schema-valid tier-2 spec without contracts, then it reports the tier rule', () => {
    const spec = WorkingSpecSchema.parse({
      id: 'FEAT-9',
      title: 'A title long enough',
      risk_tier: 2,
      mode: 'feature',
      scope: { in: ['a'] },
    });
    expect(crossFieldErrors(spec, NOW)).toEqual(['contracts: risk tier 2 needs at least one contract']);
  });

  it('when a gate names a kind or a report, then both are checked', () => {
    expect(GateSchema.safeParse({ name: 'cov', run: ['x'], kind: 'coverage', report: 'coverage/c.json' }).success).toBe(
      true,
    );
    expect(GateSchema.safeParse({ name: 'cov', run: ['x'], kind: 'speed' }).success).toBe(false);
    expect(GateSchema.safeParse({ name: 'cov', run: ['x'], report: '../outside.json' }).success).toBe(false);
  });
});

describe('spec documents', () => {
  const YAML_SPEC = `# working spec
id: FIX-12
title: Fix the greeting text
risk_tier: 3
mode: fix
scope:
  in: [src/]
steps:
  - kind: replace
    path: src/greet.ts
    find: Helo
    replace: Hello
`;

  it('when the document is YAML, then it loads into a valid spec', () => {
    const result = loadWorkingSpec(YAML_SPEC, '.caws/working-spec.yaml', { now: NOW });
    expect(result.ok).toBe(true);
    if (result.ok)
      expect(result.spec.steps).toEqual([{ kind: 'replace', path: 'src/greet.ts', find: 'Helo', replace: 'Hello' }]);
  });

  it('when the document is JSON, then it loads the same as YAML', () => {
    const json = JSON.stringify(tier1());
    const fromJson = loadWorkingSpec(json, 'spec.json', { now: NOW });
    const fromPretty = loadWorkingSpec(JSON.stringify(tier1(), null, 2), 'spec.json', { now: NOW });
    expect(fromJson.ok).toBe(true);
    expect(fromPretty).toEqual(fromJson);
    expect(parseSpecDocument('{"a":1,"b":[true,null,"x\\/y"]}', 'x.json')).toEqual({ a: 1, b: [true, null, 'x/y'] });
  });

  it('when the YAML has a syntax error, then SpecSyntaxError gives the source, line and column', () => {
    const broken = 'id: FIX-12\ntitle: Fix the greeting text\nscope:\n  in: [src/\nmode: fix\n';
    let error: unknown;
    try {
      parseSpecDocument(broken, '.caws/working-spec.yaml');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SpecSyntaxError);
    const e = error as SpecSyntaxError;
    expect(e.source).toBe('.caws/working-spec.yaml');
    expect(e.line).toBe(5);
    expect(e.column).toBe(1);
    expect(e.message).toMatch(/^\.caws\/working-spec\.yaml, line 5, column 1: not valid YAML or JSON: /);
  });

  it('when the JSON is malformed, then the error points at the bad character', () => {
    expect(() => parseSpecDocument('{\n  "id": "FIX-1",,\n}', 'spec.json')).toThrow(/^spec\.json, line 2, column 17: /);
  });

  it('when keys repeat or several documents are present, then it is a syntax error', () => {
    expect(() => parseSpecDocument('id: A-1\nid: A-2\n', 's.yaml')).toThrow(/line 2, column 1: .*unique/);
    expect(() => parseSpecDocument('id: A-1\n---\nid: A-2\n', 's.yaml')).toThrow(/more than one/);
  });

  it('when loadWorkingSpec meets a syntax error, then it answers with that one error instead of throwing', () => {
    const result = loadWorkingSpec('scope: [a', 'w.yaml', { now: NOW });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors).toEqual([expect.stringMatching(/^w\.yaml, line \d+, column \d+: /)]);
  });

  it('when aliases would expand without bound, then the document is refused', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 12; i++) {
      const prev = String.fromCharCode(97 + i);
      const next = String.fromCharCode(98 + i);
      bomb.push(`${next}: &${next} [${Array(10).fill(`*${prev}`).join(', ')}]`);
    }
    expect(() => parseSpecDocument(bomb.join('\n'), 'bomb.yaml')).toThrow(SpecSyntaxError);
  });

  it('when the loader is strict, then unknown keys in the document are errors', () => {
    const result = loadWorkingSpec(`${YAML_SPEC}status: draft\n`, 'w.yaml', { now: NOW, strict: true });
    expect(result).toEqual({ ok: false, errors: ['status: unknown key'], warnings: [] });
  });
});
