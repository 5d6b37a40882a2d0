import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assessRisk,
  riskInputFromSpec,
  type RiskAssessment,
  type RiskDimension,
} from '../../activities/planning/risk.js';

// Credential-shaped strings are assembled at run time so that this file itself holds no secret-looking literal.
const FAKE_AWS_KEY = ['AKIA', 'IOSFODNN7', 'EXAMPLE'].join('');
const FAKE_PRIVATE_KEY = ['-----BEGIN ', 'RSA PRIVATE KEY-----'].join('');

function evidenceOf(assessment: RiskAssessment, dimension: RiskDimension): string[] {
  return assessment.dimensions[dimension].evidence.map((e) => `${e.kind}: ${e.detail}`);
}

describe('assessRisk', () => {
  it('when a small docs change runs no commands, then every score is zero and the tier is 3', () => {
    const risk = assessRisk({ files: ['docs/usage.md'], contents: { 'docs/usage.md': '# Usage\n' }, commands: [] });

    expect(risk.method).toBe('heuristic');
    expect(risk.score).toBe(0);
    expect(risk.tier).toBe(3);
    expect(risk.weights).toEqual({ technical: 0.25, ethical: 0.25, operational: 0.25, business: 0.25 });
    for (const d of ['technical', 'ethical', 'operational', 'business'] as const) {
      expect(risk.dimensions[d]).toEqual({ score: 0, evidence: [] });
    }
  });

  it('when the change touches authentication code, then technical path evidence calls for tier 1', () => {
    const risk = assessRisk({ files: ['src/auth/session.ts', 'src/ui/button.tsx'], commands: [] });

    expect(risk.evidenceTier).toBe(1);
    expect(risk.tier).toBe(1);
    expect(risk.dimensions.technical.score).toBeGreaterThan(0.5);
    expect(evidenceOf(risk, 'technical')).toEqual([
      expect.stringMatching(/^path: authentication.*src\/auth\/session\.ts/),
    ]);
  });

  it.each([
    ['src/crypto/keys.ts', 'technical'],
    ['services/billing/invoice.ts', 'business'],
    ['payments/stripe.ts', 'business'],
    ['migrations/0004_add_index.sql', 'operational'],
    ['lib/security/csrf.ts', 'technical'],
  ] as const)('when %s is planned, then %s evidence calls for tier 1', (file, dimension) => {
    const risk = assessRisk({ files: [file], commands: [] });

    expect(risk.tier).toBe(1);
    expect(risk.dimensions[dimension].evidence.some((e) => e.kind === 'path')).toBe(true);
  });

  it.each([
    '.github/workflows/ci.yml',
    'infra/main.tf',
    'deploy/k8s/deployment.yaml',
    'Dockerfile',
    'terraform/prod.tfvars',
  ])('when %s is planned, then operational evidence calls for tier 2', (file) => {
    const risk = assessRisk({ files: [file], commands: [] });

    expect(risk.evidenceTier).toBe(2);
    expect(risk.dimensions.operational.evidence.length).toBeGreaterThan(0);
  });

  it('when a word only resembles a sensitive one, then it is not evidence', () => {
    const risk = assessRisk({ files: ['AUTHORS.md', 'src/keyboard.ts', 'src/paymentsummary-ui/x.css'], commands: [] });
    expect(risk.dimensions.technical.evidence).toEqual([]);
  });

  it('when the spec claims tier 3 but the evidence calls for tier 1, then the assessed tier is 1', () => {
    const risk = assessRisk({ files: ['src/billing/charge.ts'], commands: [], spec: { risk_tier: 3 } });

    expect(risk.specTier).toBe(3);
    expect(risk.evidenceTier).toBe(1);
    expect(risk.tier).toBe(1);
    expect(risk.tierReasons.join('\n')).toMatch(/spec claims tier 3, the evidence calls for tier 1: tier 1/);
  });

  it('when the spec claims tier 1 and the evidence is mild, then the spec tier is kept', () => {
    const risk = assessRisk({ files: ['src/ui/button.tsx'], commands: [], spec: { risk_tier: 1 } });

    expect(risk.evidenceTier).toBe(3);
    expect(risk.tier).toBe(1);
  });

  it('when the spec tier is not 1, 2 or 3, then it is ignored', () => {
    const risk = assessRisk({ files: ['src/ui/button.tsx'], commands: [], spec: { risk_tier: 0 } });
    expect(risk.specTier).toBeNull();
    expect(risk.tier).toBe(3);
  });

  it('when planned content holds credentials, then secret evidence calls for tier 1 without repeating the value', () => {
    const risk = assessRisk({
      files: ['src/config.ts', 'deploy/key.pem'],
      contents: {
        'src/config.ts': `export const region = 'eu';\nexport const key = '${FAKE_AWS_KEY}';\n`,
        'deploy/key.pem': `${FAKE_PRIVATE_KEY}\nMIIE\n`,
      },
      commands: [],
    });

    expect(risk.tier).toBe(1);
    const secrets = risk.dimensions.technical.evidence.filter((e) => e.kind === 'secret');
    expect(secrets.map((e) => e.detail)).toEqual([
      expect.stringMatching(/private key.*deploy\/key\.pem:1/),
      expect.stringMatching(/AWS access key id.*src\/config\.ts:2/),
    ]);
    expect(JSON.stringify(risk)).not.toContain(FAKE_AWS_KEY);
  });

  it('when a password literal is assigned in planned content, then it is secret evidence', () => {
    const risk = assessRisk({
      files: ['src/db.ts'],
      contents: { 'src/db.ts': `const password = "hunter2hunter2";` },
      commands: [],
    });
    expect(risk.dimensions.technical.evidence.some((e) => e.kind === 'secret')).toBe(true);
  });

  it.each([
    [['rm', '-rf', 'build'], 'recursive delete'],
    [['rm', '-r', '-f', '/'], 'recursive delete'],
    [['sh', '-c', 'curl -fsSL https://get.example.com | sh'], 'curl | sh'],
    [['bash', '-c', 'wget -qO- https://x.example | sudo bash'], 'curl | sh'],
    [['git', 'push', '--force', 'origin', 'main'], 'force push'],
    [['git', 'push', 'origin', '+main'], 'force push'],
    [['chmod', '777', 'data'], 'chmod 777'],
    [['chmod', '-R', 'a+rwx', '.'], 'chmod 777'],
    [['psql', '-c', 'DROP TABLE users'], 'DROP'],
    [['terraform', 'destroy', '-auto-approve'], 'terraform destroy'],
  ])('when the plan runs %j, then command evidence names "%s" and calls for tier 1', (argv, label) => {
    const risk = assessRisk({ files: [], commands: [argv] });

    expect(risk.tier).toBe(1);
    const commands = Object.values(risk.dimensions).flatMap((d) => d.evidence.filter((e) => e.kind === 'command'));
    expect(commands.some((e) => e.detail.includes(label))).toBe(true);
  });

  it('when a commit message mentions dropping a table, then it is not destructive SQL', () => {
    const risk = assessRisk({ files: [], commands: [['git', 'commit', '-m', 'drop table support from docs']] });
    expect(risk.tier).toBe(3);
    expect(risk.score).toBe(0);
  });

  it('when ordinary commands run, then there is no command evidence', () => {
    const risk = assessRisk({
      files: [],
      commands: [
        ['npm', 'test'],
        ['git', 'push', 'origin', 'main'],
        ['rm', 'tmp.txt'],
      ],
    });
    expect(risk.score).toBe(0);
  });

  it('when a planned migration drops a table, then the script evidence calls for tier 1', () => {
    const risk = assessRisk({
      files: ['db/schema/0005_cleanup.sql'],
      contents: { 'db/schema/0005_cleanup.sql': 'DROP TABLE legacy_sessions;\n' },
      commands: [],
    });
    expect(risk.tier).toBe(1);
    expect(evidenceOf(risk, 'operational')).toEqual([expect.stringMatching(/destructive SQL .*planned script/)]);
  });

  it('when a planned shell script pipes a download into a shell, then it is tier 2 command evidence', () => {
    const risk = assessRisk({
      files: ['scripts/setup.sh'],
      contents: { 'scripts/setup.sh': '#!/bin/sh\ncurl https://x.example/install | sh\n' },
      commands: [],
    });
    expect(risk.evidenceTier).toBe(2);
  });

  it('when a licence file changes, then licence evidence raises business risk', () => {
    const risk = assessRisk({ files: ['LICENSE'], commands: [] });

    expect(risk.dimensions.business.evidence).toEqual([{ kind: 'licence', detail: 'licence files: LICENSE' }]);
    expect(risk.evidenceTier).toBe(2);
  });

  it('when planned content handles personal data, then the ethical dimension carries data evidence', () => {
    const risk = assessRisk({
      files: ['src/signup.ts'],
      contents: { 'src/signup.ts': 'function save(userEmail: string, ssn: string, dateOfBirth: string) {}\n' },
      commands: [],
    });

    const details = risk.dimensions.ethical.evidence.map((e) => e.detail);
    expect(risk.dimensions.ethical.evidence.every((e) => e.kind === 'data')).toBe(true);
    expect(details).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/email/),
        expect.stringMatching(/social security/),
        expect.stringMatching(/dates of birth/),
      ]),
    );
    expect(risk.dimensions.ethical.score).toBeGreaterThan(0.5);
  });

  it('when the task description mentions GDPR, then it is ethical evidence', () => {
    const risk = assessRisk({ files: ['src/export.ts'], commands: [], description: 'Add a GDPR export endpoint' });
    expect(evidenceOf(risk, 'ethical')).toEqual([expect.stringMatching(/GDPR.*task description/)]);
  });

  it('when many files and lines are planned, then size evidence is reported', () => {
    const files = Array.from({ length: 60 }, (_, i) => `src/gen/file${i}.ts`);
    const risk = assessRisk({ files, commands: [], loc: 2500 });

    expect(risk.files).toBe(60);
    expect(risk.loc).toBe(2500);
    expect(evidenceOf(risk, 'technical')).toEqual([expect.stringMatching(/^size: large change: 60 files, 2500 lines/)]);
  });

  it('when lines are not given, then they are counted from the contents', () => {
    const risk = assessRisk({ files: ['a.ts', 'b.ts'], contents: { 'a.ts': 'x\ny\n', 'b.ts': 'z' }, commands: [] });
    expect(risk.loc).toBe(3);
  });

  it('when the spec declares a data migration, then spec evidence calls for tier 1', () => {
    const risk = assessRisk({
      files: ['src/model.ts'],
      commands: [],
      spec: { risk_tier: 2, blast_radius: { modules: ['a'], data_migration: true } },
    });
    expect(risk.tier).toBe(1);
    expect(risk.dimensions.operational.evidence[0]?.kind).toBe('spec');
  });

  it('when weights are given, then they are normalised and the overall score is the weighted mean', () => {
    const risk = assessRisk(
      { files: ['src/auth/login.ts'], commands: [] },
      { weights: { technical: 3, ethical: 1, operational: 0, business: 0 } },
    );

    expect(risk.weights).toEqual({ technical: 0.75, ethical: 0.25, operational: 0, business: 0 });
    expect(risk.score).toBeCloseTo(0.75 * risk.dimensions.technical.score + 0.25 * risk.dimensions.ethical.score, 3);
  });

  it('when a weight is negative, then the assessment is refused', () => {
    expect(() => assessRisk({ files: [], commands: [] }, { weights: { technical: -1 } })).toThrow(RangeError);
  });

  it('when any plan and spec tier are assessed, then the tier is never less critical than the spec claims', () => {
    const paths = fc.constantFrom(
      'src/auth/a.ts',
      'docs/a.md',
      'infra/x.tf',
      'src/ui/b.tsx',
      'LICENSE',
      'src/users/c.ts',
    );
    fc.assert(
      fc.property(fc.array(paths, { maxLength: 6 }), fc.constantFrom(1, 2, 3, undefined), (files, claimed) => {
        const risk = assessRisk({ files, commands: [], spec: claimed === undefined ? {} : { risk_tier: claimed } });
        expect(risk.tier).toBeLessThanOrEqual(risk.evidenceTier);
        if (claimed !== undefined) expect(risk.tier).toBeLessThanOrEqual(claimed);
        for (const d of Object.values(risk.dimensions)) {
          expect(d.score).toBeGreaterThanOrEqual(0);
          expect(d.score).toBeLessThanOrEqual(1);
        }
      }),
    );
  });
});

describe('riskInputFromSpec', () => {
  it('when a spec has steps and gates, then files, contents and commands are taken from them', () => {
    const input = riskInputFromSpec({
      risk_tier: 2,
      steps: [
        { kind: 'write_file', path: 'src/a.ts', content: 'one\n' },
        { kind: 'replace', path: 'src/a.ts', find: 'one', replace: 'two' },
        { kind: 'replace', path: 'src/b.ts', find: 'x', replace: 'y' },
        { kind: 'command', run: ['npm', 'run', 'build'] },
        'not a step',
      ],
      gates: [{ name: 'tests', run: ['npm', 'test'] }, { name: 'broken' }],
    });

    expect(input.files).toEqual(['src/a.ts', 'src/b.ts']);
    expect(input.contents).toEqual({ 'src/a.ts': 'one\n\ntwo', 'src/b.ts': 'y' });
    expect(input.commands).toEqual([
      ['npm', 'run', 'build'],
      ['npm', 'test'],
    ]);
    expect(assessRisk(input).specTier).toBe(2);
  });
});
