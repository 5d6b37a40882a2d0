/**
 * Heuristic risk assessment of a planned change, on the four CAWS dimensions (technical, ethical, operational,
 * business), each with the evidence behind its score. Pure: it reads the planned paths, contents and commands only.
 *
 * Tiers follow CAWS: 1 is the most critical. Evidence can only make a change more critical than its spec claims:
 * the assessed tier is min(spec risk_tier, evidence tier), so a spec cannot talk its way down to a lighter review.
 * Scores come from rules, not from a model, and the output says so (`method: 'heuristic'`).
 */

import { detectCommand, detectScript, type CommandFinding } from '../../common/detectors.js';
import type { RiskTier } from '../../workflows/task/spec.js';

export type RiskDimension = 'technical' | 'ethical' | 'operational' | 'business';
export type EvidenceKind = 'path' | 'size' | 'secret' | 'command' | 'licence' | 'data' | 'spec';

export interface RiskEvidence {
  kind: EvidenceKind;
  detail: string;
}

export interface DimensionRisk {
  /** 0..1: the chance-style combination 1 − Π(1 − weight) of the rules that fired. */
  score: number;
  evidence: RiskEvidence[];
}

/** A working spec as far as risk and ambiguity read it; every field is checked at run time. */
export type SpecLike = Readonly<Record<string, unknown>>;

export interface RiskInput {
  /** Paths the change writes, relative to the repository root. */
  files: string[];
  /** New or inserted text per path, scanned for secrets, personal data and destructive statements. */
  contents?: Record<string, string>;
  /** Commands the change runs, as argument vectors. */
  commands: string[][];
  spec?: SpecLike;
  /** Lines planned; counted from `contents` when absent. */
  loc?: number;
  /** Task text (title, description), scanned for personal-data keywords. */
  description?: string;
}

export interface RiskOptions {
  /** Relative weights of the dimensions in the overall score; 0.25 each by default. */
  weights?: Partial<Record<RiskDimension, number>>;
}

export interface RiskAssessment {
  method: 'heuristic';
  dimensions: Record<RiskDimension, DimensionRisk>;
  weights: Record<RiskDimension, number>;
  /** Weighted mean of the dimension scores, 0..1. */
  score: number;
  /** The tier to review at: min(specTier, evidenceTier). */
  tier: RiskTier;
  /** The tier the evidence alone calls for. */
  evidenceTier: RiskTier;
  /** The spec's own risk_tier, when it has a valid one. */
  specTier: RiskTier | null;
  tierReasons: string[];
  files: number;
  loc: number;
}

export const RISK_DIMENSIONS: readonly RiskDimension[] = ['technical', 'ethical', 'operational', 'business'];
export const DEFAULT_RISK_WEIGHTS: Readonly<Record<RiskDimension, number>> = {
  technical: 0.25,
  ethical: 0.25,
  operational: 0.25,
  business: 0.25,
};

/** Overall scores at or above these call for tier 1 and tier 2 even without a single critical finding. */
const TIER1_SCORE = 0.5;
const TIER2_SCORE = 0.25;
const MAX_LISTED = 3;

interface Finding {
  kind: EvidenceKind;
  detail: string;
  tier: RiskTier;
  /** Contribution to each dimension it touches, 0..1. */
  impact: Partial<Record<RiskDimension, number>>;
}

interface PathRule {
  pattern: RegExp;
  label: string;
  kind: EvidenceKind;
  tier: RiskTier;
  impact: Partial<Record<RiskDimension, number>>;
}

/** A word inside a path: delimited by the start or end, `/`, `.`, `_` or `-`. */
function pathWord(words: string): RegExp {
  return new RegExp(`(^|[/._-])(${words})([/._-]|$)`, 'i');
}

const PATH_RULES: readonly PathRule[] = [
  {
    label: 'authentication or authorisation code',
    pattern: pathWord(
      'auth|authn|authz|authentication|authorization|authorisation|oauth|oauth2|oidc|login|logout|sso|saml|jwt|rbac|acl|permissions?',
    ),
    kind: 'path',
    tier: 1,
    impact: { technical: 0.6, business: 0.2 },
  },
  {
    label: 'cryptography',
    pattern: pathWord('crypto|cryptography|encryption|encrypt|decrypt|cipher|kms|tls|ssl|certs?|certificates?|signing'),
    kind: 'path',
    tier: 1,
    impact: { technical: 0.6 },
  },
  {
    label: 'security code',
    pattern: pathWord('security|secrets?|sandbox|csrf|xss|cors|sanitizers?|sanitize'),
    kind: 'path',
    tier: 1,
    impact: { technical: 0.6 },
  },
  {
    label: 'billing or payment code',
    pattern: pathWord('billing|payments?|invoices?|invoicing|checkout|stripe|subscriptions?|pricing|refunds?'),
    kind: 'path',
    tier: 1,
    impact: { business: 0.7, ethical: 0.1 },
  },
  {
    label: 'database migrations',
    pattern: pathWord('migrations?|migrate'),
    kind: 'path',
    tier: 1,
    impact: { operational: 0.6, technical: 0.3, business: 0.2 },
  },
  {
    label: 'CI pipeline definitions',
    pattern: /(^|\/)(\.github\/workflows\/|\.gitlab-ci\.ya?ml$|\.circleci\/|jenkinsfile$|azure-pipelines\.ya?ml$)/i,
    kind: 'path',
    tier: 2,
    impact: { operational: 0.5, technical: 0.3 },
  },
  {
    label: 'infrastructure as code',
    pattern: /(^|[/._-])(infra|infrastructure|terraform|pulumi|ansible|cloudformation)([/._-]|$)|\.(tf|tfvars)$/i,
    kind: 'path',
    tier: 2,
    impact: { operational: 0.6 },
  },
  {
    label: 'deployment manifests',
    pattern: pathWord('k8s|kubernetes|helm|charts|deploy|deployments?|manifests|kustomization'),
    kind: 'path',
    tier: 2,
    impact: { operational: 0.5 },
  },
  {
    label: 'container images',
    pattern: /(^|\/)(dockerfile[^/]*|[^/]*\.dockerfile|docker-compose[^/]*\.ya?ml|compose\.ya?ml|containerfile)$/i,
    kind: 'path',
    tier: 2,
    impact: { operational: 0.35 },
  },
  {
    label: 'dependency manifests',
    pattern:
      /(^|\/)(package\.json|package-lock\.json|pnpm-lock\.yaml|yarn\.lock|go\.mod|go\.sum|cargo\.toml|cargo\.lock|requirements[^/]*\.txt|pyproject\.toml|poetry\.lock|gemfile(\.lock)?|pom\.xml|build\.gradle(\.kts)?)$/i,
    kind: 'path',
    tier: 3,
    impact: { technical: 0.2, business: 0.05 },
  },
  {
    label: 'licence files',
    pattern: /(^|\/)(licen[cs]e|copying|notice|unlicense)([._-][^/]*)?$/i,
    kind: 'licence',
    tier: 2,
    impact: { business: 0.5, ethical: 0.2 },
  },
  {
    label: 'personal-data handling',
    pattern: pathWord('pii|gdpr|personal|consent|patients?'),
    kind: 'data',
    tier: 2,
    impact: { ethical: 0.35 },
  },
  {
    label: 'user or customer records',
    pattern: pathWord('profiles?|customers?|users?|accounts?|members?'),
    kind: 'data',
    tier: 3,
    impact: { ethical: 0.15 },
  },
];

interface SizeRule {
  label: string;
  /** The rule applies above either limit. */
  files: number;
  loc: number;
  tier: RiskTier;
  impact: Partial<Record<RiskDimension, number>>;
}

/** Change sizes, largest first: a change is of the first size whose file or line limit it exceeds. */
const SIZE_RULES: readonly SizeRule[] = [
  { label: 'very large', files: 100, loc: 5000, tier: 2, impact: { technical: 0.6, operational: 0.3 } },
  { label: 'large', files: 50, loc: 2000, tier: 3, impact: { technical: 0.4, operational: 0.2 } },
  { label: 'sizeable', files: 25, loc: 1000, tier: 3, impact: { technical: 0.25, operational: 0.1 } },
  { label: 'medium', files: 10, loc: 300, tier: 3, impact: { technical: 0.1 } },
];

interface SecretRule {
  label: string;
  pattern: RegExp;
}

/** Recognisable credentials. Matches are reported by file and line, never by value. */
const SECRET_RULES: readonly SecretRule[] = [
  { label: 'private key', pattern: /-----BEGIN ([A-Z]+ )?PRIVATE KEY-----/ },
  { label: 'AWS access key id', pattern: /\b(AKIA|ASIA)[0-9A-Z]{16}\b/ },
  { label: 'GitHub token', pattern: /\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b/ },
  { label: 'Slack token', pattern: /\bxox[abprs]-[A-Za-z0-9-]{10,}/ },
  { label: 'Google API key', pattern: /\bAIza[0-9A-Za-z_-]{35}\b/ },
  { label: 'Stripe key', pattern: /\b[sr]k_(live|test)_[A-Za-z0-9]{16,}\b/ },
  { label: 'API secret key', pattern: /\bsk-(proj-|ant-)?[A-Za-z0-9_-]{20,}/ },
  {
    label: 'credential assigned a literal',
    pattern:
      /\b(password|passwd|pwd|secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|client[_-]?secret|private[_-]?key)\b["']?\s*[:=]\s*["'][^"'\s]{8,}["']/i,
  },
];

interface DataRule {
  label: string;
  pattern: RegExp;
}

/** Personal-data keywords; words are separated at camelCase humps before matching. */
const DATA_RULES: readonly DataRule[] = [
  { label: 'email addresses', pattern: /(?<![a-z0-9])e-?mails?(?![a-z0-9])/i },
  { label: 'social security numbers', pattern: /(?<![a-z0-9])(ssn|social[ _-]?security)(?![a-z0-9])/i },
  { label: 'passwords', pattern: /(?<![a-z0-9])(passwords?|passwd|password[ _-]?hash)(?![a-z0-9])/i },
  { label: 'GDPR', pattern: /(?<![a-z0-9])gdpr(?![a-z0-9])/i },
  { label: 'PII', pattern: /(?<![a-z0-9])(pii|personal[ _-]?data)(?![a-z0-9])/i },
  { label: 'dates of birth', pattern: /(?<![a-z0-9])(date[ _-]?of[ _-]?birth|dob|birth[ _-]?date)(?![a-z0-9])/i },
  { label: 'phone numbers', pattern: /(?<![a-z0-9])(phone[ _-]?(number)?|mobile[ _-]?number)(?![a-z0-9])/i },
  { label: 'passport or national ids', pattern: /(?<![a-z0-9])(passport|national[ _-]?id)(?![a-z0-9])/i },
  { label: 'card numbers', pattern: /(?<![a-z0-9])(credit[ _-]?card|card[ _-]?number|iban)(?![a-z0-9])/i },
  {
    label: 'home addresses',
    pattern: /(?<![a-z0-9])(home[ _-]?address|street[ _-]?address|postcode|zip[ _-]?code)(?![a-z0-9])/i,
  },
];

interface CommandRule {
  label: string;
  tier: RiskTier;
  impact: Partial<Record<RiskDimension, number>>;
  /** Whether a detector's finding (common/detectors.ts) is one of this rule's. */
  matches: (finding: CommandFinding) => boolean;
}

const COMMAND_RULES: readonly CommandRule[] = [
  {
    label: 'recursive delete (rm -r)',
    tier: 1,
    impact: { operational: 0.7, technical: 0.2 },
    matches: (f) => f.kind === 'recursive-delete',
  },
  {
    label: 'destructive SQL (DROP / TRUNCATE)',
    tier: 1,
    impact: { operational: 0.7, business: 0.4 },
    // Only where SQL runs: a SQL client, a shell script or a planned script (not, say, a commit message).
    matches: (f) => f.kind === 'destructive-sql' && f.executed,
  },
  {
    label: 'force push',
    tier: 1,
    impact: { operational: 0.6 },
    matches: (f) => f.kind === 'force-push',
  },
  {
    label: 'world-writable permissions (chmod 777)',
    tier: 1,
    impact: { technical: 0.5, operational: 0.2 },
    matches: (f) => f.kind === 'world-writable',
  },
  {
    label: 'piping a download into a shell (curl | sh)',
    tier: 1,
    impact: { technical: 0.7, operational: 0.3 },
    matches: (f) => f.kind === 'pipe-to-shell',
  },
  {
    label: 'disk or device overwrite (mkfs / dd)',
    tier: 1,
    impact: { operational: 0.8 },
    matches: (f) => f.kind === 'format-disk' || (f.kind === 'raw-disk-write' && f.device),
  },
  {
    label: 'infrastructure teardown (terraform destroy / kubectl delete)',
    tier: 1,
    impact: { operational: 0.7, business: 0.3 },
    matches: (f) => f.kind === 'infra-teardown',
  },
  {
    label: 'deploy or publish (terraform apply, kubectl apply, helm upgrade, npm publish, docker push)',
    tier: 2,
    impact: { operational: 0.5, business: 0.2 },
    matches: (f) => f.kind === 'deploy',
  },
  {
    label: 'history rewrite or hard reset (git reset --hard, git clean -x)',
    tier: 2,
    impact: { operational: 0.3 },
    matches: (f) => f.kind === 'history-rewrite',
  },
  {
    label: 'privilege escalation (sudo)',
    tier: 2,
    impact: { operational: 0.3, technical: 0.2 },
    matches: (f) => f.kind === 'sudo',
  },
];

/** Files whose contents are executed as commands: scanned with the command rules. */
const SCRIPT_PATH =
  /(\.(sh|bash|zsh|sql|ps1|mk)$|(^|\/)(makefile|dockerfile[^/]*|[^/]*\.dockerfile|jenkinsfile)$|(^|\/)\.github\/workflows\/|\.gitlab-ci\.ya?ml$)/i;

/** Assesses the risk of a planned change. */
export function assessRisk(input: RiskInput, options: RiskOptions = {}): RiskAssessment {
  const weights = normaliseWeights(options.weights);
  const files = unique(input.files.map(normalisePath).filter(Boolean));
  const contents = input.contents ?? {};
  const loc = input.loc ?? Object.values(contents).reduce((n, text) => n + lineCount(text), 0);
  const findings: Finding[] = [
    ...pathFindings(files),
    ...sizeFindings(files.length, loc),
    ...secretFindings(contents),
    ...dataFindings(files, contents, input.description),
    ...commandFindings(input.commands, contents),
    ...specFindings(input.spec, files.length, loc),
  ];

  const dimensions = {} as Record<RiskDimension, DimensionRisk>;
  for (const d of RISK_DIMENSIONS) {
    const touching = findings.filter((f) => (f.impact[d] ?? 0) > 0);
    const keep = touching.reduce((p, f) => p * (1 - Math.min(1, f.impact[d] ?? 0)), 1);
    dimensions[d] = {
      score: round3(1 - keep),
      evidence: touching.map((f) => ({ kind: f.kind, detail: f.detail })),
    };
  }
  const score = round3(RISK_DIMENSIONS.reduce((sum, d) => sum + weights[d] * dimensions[d].score, 0));

  const tierReasons: string[] = [];
  let evidenceTier: RiskTier = 3;
  for (const f of findings) {
    if (f.tier < evidenceTier) evidenceTier = f.tier;
  }
  for (const t of [1, 2] as const) {
    const critical = findings.filter((f) => f.tier === t);
    if (evidenceTier === t && critical.length) {
      tierReasons.push(`evidence calls for tier ${t}: ${critical.map((f) => f.detail).join('; ')}`);
    }
  }
  const scoreTier: RiskTier = score >= TIER1_SCORE ? 1 : score >= TIER2_SCORE ? 2 : 3;
  if (scoreTier < evidenceTier) {
    evidenceTier = scoreTier;
    tierReasons.push(`overall risk score ${score} calls for tier ${scoreTier}`);
  }

  const specTier = specRiskTier(input.spec);
  const tier = specTier === null ? evidenceTier : (Math.min(specTier, evidenceTier) as RiskTier);
  if (specTier === null) {
    tierReasons.push(`no valid risk_tier in the spec: tier ${tier} from the evidence`);
  } else if (specTier > evidenceTier) {
    tierReasons.push(`the spec claims tier ${specTier}, the evidence calls for tier ${evidenceTier}: tier ${tier}`);
  } else {
    tierReasons.push(`the spec's tier ${specTier} is kept (the evidence alone calls for tier ${evidenceTier})`);
  }

  return {
    method: 'heuristic',
    dimensions,
    weights,
    score,
    tier,
    evidenceTier,
    specTier,
    tierReasons,
    files: files.length,
    loc,
  };
}

/** The paths, contents and commands a spec's steps and gates plan, as assessRisk input. */
export function riskInputFromSpec(spec: SpecLike, description?: string): RiskInput {
  const files: string[] = [];
  const contents: Record<string, string> = {};
  const commands: string[][] = [];
  for (const step of specSteps(spec)) {
    if ((step.kind === 'write_file' || step.kind === 'replace') && typeof step.path === 'string') {
      files.push(step.path);
      const text = step.kind === 'write_file' ? step.content : step.replace;
      if (typeof text === 'string') {
        contents[step.path] = contents[step.path] === undefined ? text : `${contents[step.path]}\n${text}`;
      }
    } else if (step.kind === 'command' && isStringArray(step.run)) {
      commands.push([...step.run]);
    }
  }
  const gates = spec.gates;
  if (Array.isArray(gates)) {
    for (const gate of gates as unknown[]) {
      const run = isRecord(gate) ? gate.run : undefined;
      if (isStringArray(run)) commands.push([...run]);
    }
  }
  return { files: unique(files), contents, commands, spec, ...(description === undefined ? {} : { description }) };
}

/** A step of a spec as read defensively: an object with a string `kind`. */
export type StepLike = Readonly<Record<string, unknown>> & { readonly kind: string };

/** The spec's steps that are objects with a string `kind`; anything else is skipped. */
export function specSteps(spec: SpecLike | undefined): StepLike[] {
  const steps = spec?.steps;
  if (!Array.isArray(steps)) return [];
  return (steps as unknown[]).filter((s): s is StepLike => isRecord(s) && typeof s.kind === 'string');
}

/** The spec's risk_tier when it is 1, 2 or 3. */
export function specRiskTier(spec: SpecLike | undefined): RiskTier | null {
  const tier = spec?.risk_tier;
  return tier === 1 || tier === 2 || tier === 3 ? tier : null;
}

/** Paths planned by write_file and replace steps, de-duplicated. */
export function specFiles(spec: SpecLike | undefined): string[] {
  return unique(
    specSteps(spec)
      .filter((s) => (s.kind === 'write_file' || s.kind === 'replace') && typeof s.path === 'string')
      .map((s) => normalisePath(s.path as string)),
  );
}

function pathFindings(files: readonly string[]): Finding[] {
  const findings: Finding[] = [];
  for (const rule of PATH_RULES) {
    const hits = files.filter((f) => rule.pattern.test(f));
    if (hits.length) {
      findings.push({
        kind: rule.kind,
        detail: `${rule.label}: ${listed(hits)}`,
        tier: rule.tier,
        impact: rule.impact,
      });
    }
  }
  return findings;
}

function sizeFindings(fileCount: number, loc: number): Finding[] {
  const rule = SIZE_RULES.find((r) => fileCount > r.files || loc > r.loc);
  if (!rule) return [];
  const detail = `${fileCount} file${fileCount === 1 ? '' : 's'}, ${loc} line${loc === 1 ? '' : 's'} planned`;
  return [{ kind: 'size', detail: `${rule.label} change: ${detail}`, tier: rule.tier, impact: rule.impact }];
}

function secretFindings(contents: Record<string, string>): Finding[] {
  const findings: Finding[] = [];
  for (const rule of SECRET_RULES) {
    const hits: string[] = [];
    for (const [file, text] of Object.entries(contents)) {
      const line = firstMatchingLine(text, rule.pattern);
      if (line !== undefined) hits.push(`${normalisePath(file)}:${line}`);
    }
    if (hits.length) {
      findings.push({
        kind: 'secret',
        detail: `possible ${rule.label} in planned content: ${listed(hits)}`,
        tier: 1,
        impact: { technical: 0.9, operational: 0.3, business: 0.2 },
      });
    }
  }
  return findings;
}

function dataFindings(files: readonly string[], contents: Record<string, string>, description?: string): Finding[] {
  const sources: { where: string; text: string }[] = [
    ...files.map((f) => ({ where: `path ${f}`, text: splitHumps(f) })),
    ...Object.entries(contents).map(([f, text]) => ({ where: normalisePath(f), text: splitHumps(text) })),
  ];
  if (description) sources.push({ where: 'task description', text: splitHumps(description) });
  const findings: Finding[] = [];
  for (const rule of DATA_RULES) {
    const hits = unique(sources.filter((s) => rule.pattern.test(s.text)).map((s) => s.where));
    if (hits.length) {
      findings.push({
        kind: 'data',
        detail: `personal data (${rule.label}): ${listed(hits)}`,
        tier: 2,
        impact: { ethical: 0.25 },
      });
    }
  }
  return findings;
}

function commandFindings(commands: readonly string[][], contents: Record<string, string>): Finding[] {
  const findings: Finding[] = [];
  const detected = commands.filter((argv) => argv.length > 0).map((argv) => ({ argv, found: detectCommand(argv) }));
  const scripts = Object.entries(contents)
    .filter(([file]) => SCRIPT_PATH.test(normalisePath(file)))
    .map(([file, text]) => ({ file, found: detectScript(text) }));
  for (const rule of COMMAND_RULES) {
    const run = detected.filter((c) => c.found.some(rule.matches)).map((c) => c.argv);
    if (run.length) {
      findings.push({
        kind: 'command',
        detail: `${rule.label}: ${listed(run.map((argv) => argv.join(' ')))}`,
        tier: rule.tier,
        impact: rule.impact,
      });
    }
    // A script written now runs later (a migration, a CI job): one tier less pressing than running it here, except
    // destructive SQL in a migration, which is exactly what tier 1 is for.
    const written = scripts.filter((s) => s.found.some(rule.matches)).map((s) => normalisePath(s.file));
    if (written.length) {
      const sqlDrop = rule.label.startsWith('destructive SQL');
      findings.push({
        kind: 'command',
        detail: `${rule.label} in planned script: ${listed(written)}`,
        tier: sqlDrop ? 1 : (Math.min(3, rule.tier + 1) as RiskTier),
        impact: rule.impact,
      });
    }
  }
  return findings;
}

function specFindings(spec: SpecLike | undefined, fileCount: number, loc: number): Finding[] {
  if (!spec) return [];
  const findings: Finding[] = [];
  const blast = isRecord(spec.blast_radius) ? spec.blast_radius : undefined;
  if (blast?.data_migration === true) {
    findings.push({
      kind: 'spec',
      detail: 'spec declares a data migration (blast_radius.data_migration)',
      tier: 1,
      impact: { operational: 0.6, business: 0.3 },
    });
  }
  const modules = blast && Array.isArray(blast.modules) ? (blast.modules as unknown[]).length : 0;
  if (modules >= 5) {
    findings.push({
      kind: 'spec',
      detail: `spec's blast radius spans ${modules} modules`,
      tier: 2,
      impact: { operational: 0.3, technical: 0.2 },
    });
  } else if (modules >= 2) {
    findings.push({
      kind: 'spec',
      detail: `spec's blast radius spans ${modules} modules`,
      tier: 3,
      impact: { operational: 0.1 },
    });
  }
  if (Array.isArray(spec.migrations) && spec.migrations.length > 0) {
    findings.push({
      kind: 'spec',
      detail: `spec lists ${spec.migrations.length} migration(s)`,
      tier: 1,
      impact: { operational: 0.5, business: 0.2 },
    });
  }
  if (spec.experiment_mode === true || isRecord(spec.experiment_mode)) {
    findings.push({ kind: 'spec', detail: 'spec runs in experiment mode', tier: 3, impact: { business: 0.2 } });
  }
  const budget = isRecord(spec.change_budget) ? spec.change_budget : undefined;
  if (budget) {
    const maxFiles = typeof budget.max_files === 'number' ? budget.max_files : undefined;
    const maxLoc = typeof budget.max_loc === 'number' ? budget.max_loc : undefined;
    if ((maxFiles !== undefined && fileCount > maxFiles) || (maxLoc !== undefined && loc > maxLoc)) {
      findings.push({
        kind: 'spec',
        detail: `plan exceeds the spec's change_budget (${fileCount}/${maxFiles ?? '∞'} files, ${loc}/${maxLoc ?? '∞'} lines)`,
        tier: 3,
        impact: { technical: 0.2, operational: 0.2 },
      });
    }
  }
  return findings;
}

function normaliseWeights(partial: Partial<Record<RiskDimension, number>> | undefined): Record<RiskDimension, number> {
  const raw = { ...DEFAULT_RISK_WEIGHTS, ...partial };
  for (const d of RISK_DIMENSIONS) {
    if (!Number.isFinite(raw[d]) || raw[d] < 0) throw new RangeError(`risk weight ${d} must be a non-negative number`);
  }
  const total = RISK_DIMENSIONS.reduce((s, d) => s + raw[d], 0);
  if (total === 0) throw new RangeError('at least one risk weight must be positive');
  const weights = {} as Record<RiskDimension, number>;
  for (const d of RISK_DIMENSIONS) weights[d] = raw[d] / total;
  return weights;
}

function firstMatchingLine(text: string, pattern: RegExp): number | undefined {
  const lines = text.split('\n');
  const index = lines.findIndex((line) => pattern.test(line));
  return index === -1 ? undefined : index + 1;
}

function splitHumps(text: string): string {
  return text.replace(/([a-z0-9])([A-Z])/g, '$1 $2');
}

function lineCount(text: string): number {
  if (text === '') return 0;
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

function normalisePath(p: string): string {
  return p.replace(/\\/g, '/').replace(/^\.\//, '');
}

function listed(items: readonly string[]): string {
  const shown = items.slice(0, MAX_LISTED).join(', ');
  return items.length > MAX_LISTED ? `${shown} (+${items.length - MAX_LISTED} more)` : shown;
}

function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string');
}
