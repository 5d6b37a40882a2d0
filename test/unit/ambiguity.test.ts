import { describe, expect, it } from 'vitest';
import { assessAmbiguity, inside, missingFromRequest } from '../../activities/planning/ambiguity.js';

const CLEAR_SPEC = {
  id: 'FEAT-0042',
  title: 'Add rate limiting to the login endpoint',
  risk_tier: 1,
  mode: 'feature',
  change_budget: { max_files: 3, max_loc: 200 },
  scope: { in: ['src/api/'], out: ['src/api/legacy/'] },
  acceptance: [{ id: 'A1', given: 'ten failed logins', when: 'an eleventh arrives', then: 'the API answers 429' }],
  steps: [
    { kind: 'write_file', path: 'src/api/rate-limit.ts', content: 'export const limit = 10;\n' },
    { kind: 'replace', path: 'src/api/login.ts', find: 'router.post(', replace: 'router.post(rateLimit, ' },
    { kind: 'command', run: ['npm', 'test'] },
  ],
};

const CLEAR = {
  title: 'Add rate limiting to the login endpoint',
  description: 'After ten failed logins from one IP within a minute, POST /login must answer 429 for five minutes.',
};

describe('assessAmbiguity', () => {
  it('when the task and spec are clear, then the score is zero and the task is not ambiguous', () => {
    const result = assessAmbiguity({ ...CLEAR, spec: CLEAR_SPEC });

    expect(result).toEqual({ method: 'heuristic', score: 0, reasons: [], ambiguous: false });
  });

  it('when there is no spec but the description states a checkable outcome, then it is not ambiguous', () => {
    expect(assessAmbiguity(CLEAR).ambiguous).toBe(false);
  });

  it('when the spec has no acceptance criteria, then that is a reason', () => {
    const result = assessAmbiguity({ ...CLEAR, spec: { ...CLEAR_SPEC, acceptance: [] } });

    expect(result.reasons).toEqual([expect.stringMatching(/^no acceptance criteria/)]);
    expect(result.score).toBe(0.3);
    expect(result.ambiguous).toBe(false);
  });

  it('when acceptance entries lack given, when or then, then they do not count', () => {
    const result = assessAmbiguity({
      ...CLEAR,
      spec: { ...CLEAR_SPEC, acceptance: [{ id: 'A1', given: 'x', when: '', then: 'y' }] },
    });
    expect(result.reasons[0]).toMatch(/no acceptance criteria/);
  });

  it.each([['.'], ['**'], ['']])('when scope.in is %j, then the scope is vague', (entry) => {
    const result = assessAmbiguity({ ...CLEAR, spec: { ...CLEAR_SPEC, scope: { in: [entry] }, steps: [] } });
    expect(result.reasons).toContainEqual(expect.stringMatching(/^vague scope: scope.in covers the whole repository/));
  });

  it('when scope is missing, then the scope is vague', () => {
    const { scope: _scope, ...noScope } = CLEAR_SPEC;
    const result = assessAmbiguity({ ...CLEAR, spec: noScope });
    expect(result.reasons).toEqual(['vague scope: scope.in is missing or empty']);
  });

  it('when the wording is vague, then each vague term is named and the task is ambiguous', () => {
    const result = assessAmbiguity({
      title: 'Improve the dashboard',
      description: 'Make it better somehow: faster loading, nicer charts etc. Details TBD, and/or ask the team.',
    });

    expect(result.ambiguous).toBe(true);
    const vague = result.reasons.find((r) => r.startsWith('vague wording'));
    for (const term of ['somehow', 'etc', 'improve', 'make it better', 'and/or', 'TBD'])
      expect(vague).toContain(`"${term}"`);
    expect(vague).not.toContain('"better"');
  });

  it('when vague words only appear inside other words, then they are not counted', () => {
    const result = assessAmbiguity({
      title: 'Rename the etcd client wrapper',
      description: 'Rename EtcdClient to KvClient in src/kv.ts; all call sites must compile and tests must pass.',
    });
    expect(result.reasons).toEqual([]);
  });

  it('when the description is a few words, then it is too short to act on', () => {
    const result = assessAmbiguity({ title: 'Fix', description: 'fix the bug' });

    expect(result.reasons).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^no acceptance criteria/),
        'description too short to act on (3 words)',
        expect.stringMatching(/^title too short/),
      ]),
    );
    expect(result.ambiguous).toBe(true);
  });

  it('when a path is both in scope.in and scope.out, then the constraints conflict', () => {
    const result = assessAmbiguity({
      ...CLEAR,
      spec: { ...CLEAR_SPEC, scope: { in: ['src/api/', 'src/auth'], out: ['src/auth'] } },
    });
    expect(result.reasons).toContainEqual('conflicting scope: src/auth is both in scope.in and excluded by scope.out');
  });

  it('when scope.in lies under a scope.out prefix, then the constraints conflict', () => {
    const result = assessAmbiguity({
      ...CLEAR,
      spec: { ...CLEAR_SPEC, scope: { in: ['src/api/v2'], out: ['src/api'] }, steps: [] },
    });
    expect(result.reasons).toContainEqual(expect.stringMatching(/^conflicting scope: src\/api\/v2/));
  });

  it('when steps write outside scope.in or inside scope.out, then the plan conflicts with the scope', () => {
    const result = assessAmbiguity({
      ...CLEAR,
      spec: {
        ...CLEAR_SPEC,
        steps: [
          { kind: 'write_file', path: 'src/web/app.ts', content: '' },
          { kind: 'write_file', path: 'src/api/legacy/old.ts', content: '' },
        ],
      },
    });
    expect(result.reasons).toContainEqual(
      'conflicting plan: steps write src/web/app.ts, src/api/legacy/old.ts outside scope.in or inside scope.out',
    );
  });

  it('when the change budget allows fewer files than the steps touch, then the constraints conflict', () => {
    const result = assessAmbiguity({
      ...CLEAR,
      spec: { ...CLEAR_SPEC, change_budget: { max_files: 1, max_loc: 200 } },
    });
    expect(result.reasons).toEqual(['conflicting budget: the steps touch 2 files, change_budget.max_files is 1']);
  });

  it('when the change budget allows fewer lines than the steps write, then the constraints conflict', () => {
    const big = { kind: 'write_file', path: 'src/api/big.ts', content: 'x\n'.repeat(300) };
    const result = assessAmbiguity({ ...CLEAR, spec: { ...CLEAR_SPEC, steps: [big] } });
    expect(result.reasons).toEqual(['conflicting budget: the steps write 300 lines, change_budget.max_loc is 200']);
  });

  it('when the spec has no steps, then that is a reason', () => {
    const result = assessAmbiguity({ ...CLEAR, spec: { ...CLEAR_SPEC, steps: [] } });
    expect(result.reasons).toEqual(['no steps: the spec plans no edits or commands']);
  });

  it('when the spec fields have the wrong shapes, then it is read defensively', () => {
    const result = assessAmbiguity({
      ...CLEAR,
      spec: { scope: 'src', acceptance: 'yes', steps: 'many', change_budget: 7 },
    });
    expect(result.ambiguous).toBe(true);
    expect(result.score).toBeLessThanOrEqual(1);
  });

  it('when the description asks questions, then they are noted', () => {
    const result = assessAmbiguity({
      ...CLEAR,
      description: `${CLEAR.description} Should it also cover /signup? Or not?`,
    });
    expect(result.reasons).toContainEqual('the description leaves 2 questions open');
  });

  it('when a custom threshold is given, then it decides ambiguity', () => {
    const input = { ...CLEAR, spec: { ...CLEAR_SPEC, acceptance: [] } };
    expect(assessAmbiguity(input, { threshold: 0.3 }).ambiguous).toBe(true);
    expect(assessAmbiguity(input, { threshold: 0.31 }).ambiguous).toBe(false);
  });

  it('when every signal fires, then the score is capped at 1', () => {
    const result = assessAmbiguity({
      title: 'Improve',
      description: 'somehow etc maybe?',
      spec: { scope: { in: ['src'], out: ['src'] }, change_budget: { max_files: 1, max_loc: 1 }, steps: [] },
    });
    expect(result.score).toBe(1);
  });
});

describe('inside', () => {
  it.each([
    ['src/api/x.ts', 'src/api', true],
    ['src/api/x.ts', 'src/api/', true],
    ['src/apix/x.ts', 'src/api', false],
    ['src/api/x.ts', './src', true],
    ['src/api/x.ts', 'src/*', true],
    ['src/api/x.ts', 'src/**/*.ts', true],
    ['src/x.ts', 'src/**/*.ts', true],
    ['src/api/x.js', 'src/**/*.ts', false],
    ['lib/x.ts', 'src/**', false],
  ])('when %s is checked against %s, then inside is %s', (path, entry, expected) => {
    expect(inside(path, entry)).toBe(expected);
  });
});

describe('missingFromRequest', () => {
  it('when a request in words names no outcome, no path and no check, then all three are named as missing', () => {
    expect(missingFromRequest({ title: 'Make it better somehow', description: '' })).toEqual([
      'no acceptance criteria: nothing says when the change is done (given, when, then)',
      'no scope: no file or directory the change may touch is named',
      'no gate: nothing says how the change will be checked (tests, lint, types)',
    ]);
  });

  it('when the words name a file and a check, or the spec has them, then only what is still open is named', () => {
    const words = missingFromRequest({
      title: 'Fix rounding',
      description: 'In src/money.ts round half up; the tests must pass.',
    });
    expect(words).toEqual(['no acceptance criteria: nothing says when the change is done (given, when, then)']);
    expect(missingFromRequest({ title: 'Add rate limiting', description: '', spec: CLEAR_SPEC })).toEqual([
      'no gate: nothing says how the change will be checked (tests, lint, types)',
    ]);
    const gated = { ...CLEAR_SPEC, gates: [{ name: 'tests', run: ['npm', 'test'] }] };
    expect(missingFromRequest({ title: 'Add rate limiting', description: '', spec: gated })).toEqual([]);
  });
});
