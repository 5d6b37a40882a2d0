/**
 * The four judges of the council as deterministic, offline rule sets (CAWS.md, "Council"). Each reads a JudgeInput
 * and returns a JudgeVerdict with its violations and the evidence behind them (refs `file:line`, `gate:<name>`,
 * `command:<n>`, `spec:<field>`). Pure: no I/O, no clock.
 *
 * Plan phase: the spec, the files its steps touch and the commands it runs; step contents (write_file content,
 * replace text) stand in for the added and removed lines. Result phase: the unified diff and the gates' outcomes.
 *
 * Scoring, the same for every judge: score = 1 − Σ penalty(severity) over the violations left after waivers
 * (info 0, low 0.05, medium 0.15, high 0.4, critical 1), floored at 0. Verdict: `fail` with any high or critical
 * violation; otherwise `uncertain` when the judge lacked what it needed (stated in its reasons); otherwise `pass`.
 * Waivers: a waivable violation is downgraded to `info` (with the waiver id in its message and in the reasons) when an
 * active waiver lists its gate — the rule id's first dot-separated segment (`budget.loc` → `budget`) — or the rule id.
 */
import type {
  ActiveWaiver,
  Evidence,
  JudgeId,
  JudgeInput,
  JudgeVerdict,
  Severity,
  Violation,
} from '../../workflows/council/definitions.js';
import { violationText } from '../../workflows/council/consensus.js';
import type { ReviewFinding } from '../../workflows/task/definitions.js';
import {
  checkBudget,
  checkScope,
  matchesPrefix,
  parseUnifiedDiff,
  REVIEW_RULES,
  scanAddedLines,
  type DiffFile,
} from './review.js';

export const JUDGE_VERSIONS: Readonly<Record<JudgeId, string>> = {
  constitutional: 'constitutional-rules@1.0.0',
  technical: 'technical-rules@1.0.0',
  quality: 'quality-rules@1.0.0',
  integration: 'integration-rules@1.0.0',
};

const PENALTY: Record<Severity, number> = { info: 0, low: 0.05, medium: 0.15, high: 0.4, critical: 1 };
const BLOCKING: ReadonlySet<Severity> = new Set<Severity>(['high', 'critical']);
/** A single file with more changed lines than this is a very large change (lockfiles excepted). */
export const LARGE_FILE_LINES = 400;

// ---------------------------------------------------------------------------------------------------------------
// The change under review, in one shape for both phases.

interface Line {
  line: number;
  text: string;
}

interface ChangedFile {
  path: string;
  status: DiffFile['status'] | 'planned';
  added: Line[];
  removed: Line[];
  /** False for a replace step: where its text lands in the file is known only once it runs. */
  linesKnown: boolean;
  /** `diff` or the step it comes from (`spec.steps[3]`). */
  origin: string;
}

function linesOf(text: string): Line[] {
  const lines = text.split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines.map((t, i) => ({ line: i + 1, text: t }));
}

/** The files a change touches: from the diff (result phase) or the spec's edit steps (plan phase). */
function changesOf(input: JudgeInput): ChangedFile[] | undefined {
  if (input.phase === 'result') {
    if (input.diff === undefined) return undefined;
    return parseUnifiedDiff(input.diff).map((f) => ({
      path: f.path,
      status: f.status,
      added: f.added,
      removed: f.removed,
      linesKnown: true,
      origin: 'diff',
    }));
  }
  const files: ChangedFile[] = [];
  (input.spec.steps ?? []).forEach((step, i) => {
    const origin = `spec.steps[${i}]`;
    if (step.kind === 'write_file') {
      files.push({
        path: step.path,
        status: 'planned',
        added: linesOf(step.content),
        removed: [],
        linesKnown: true,
        origin,
      });
    } else if (step.kind === 'replace') {
      files.push({
        path: step.path,
        status: 'planned',
        added: linesOf(step.replace),
        removed: linesOf(step.find),
        linesKnown: false,
        origin,
      });
    }
  });
  return files;
}

/** Paths of the change; in the plan phase, the planned files together with the paths of the edit steps. */
function changedPaths(input: JudgeInput, changes: readonly ChangedFile[]): string[] {
  const planned = input.phase === 'plan' ? (input.plannedFiles ?? []) : [];
  return [...new Set([...planned, ...changes.map((c) => c.path)])];
}

function refOf(file: ChangedFile, line?: number): string {
  if (line !== undefined && file.linesKnown) return `${file.path}:${line}`;
  return file.origin === 'diff' ? file.path : `${file.path} (${file.origin})`;
}

/** Commands of the plan plus the spec's gate commands, each once. */
function commandsOf(input: JudgeInput): string[][] {
  const seen = new Set<string>();
  const all: string[][] = [];
  for (const argv of [...input.commands, ...(input.spec.gates ?? []).map((g) => g.run)]) {
    const key = JSON.stringify(argv);
    if (seen.has(key)) continue;
    seen.add(key);
    all.push(argv);
  }
  return all;
}

// Optional CAWS fields, read defensively: the spec type grows while these judges stay valid for older specs.

function specField(input: JudgeInput, key: string): unknown {
  return (input.spec as Record<string, unknown>)[key];
}

function stringsOf(value: unknown, keys: readonly string[] = ['path', 'file', 'id', 'name', 'description']): string[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((item): string[] => {
    if (typeof item === 'string') return [item];
    if (item && typeof item === 'object') {
      return keys.map((k) => (item as Record<string, unknown>)[k]).filter((v): v is string => typeof v === 'string');
    }
    return [];
  });
}

function contractsOf(input: JudgeInput): { type: string; path: string }[] {
  const raw = specField(input, 'contracts');
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((c): { type: string; path: string }[] => {
    if (!c || typeof c !== 'object') return [];
    const { type, path } = c as Record<string, unknown>;
    return typeof path === 'string' && path.length ? [{ type: typeof type === 'string' ? type : 'unknown', path }] : [];
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Building a verdict.

class Findings {
  readonly violations: Violation[] = [];
  readonly evidence: Evidence[] = [];
  readonly uncertain: string[] = [];

  add(v: Violation, ref: string, type: Evidence['type'] = 'static_check', summary?: string): void {
    this.violations.push(v);
    this.evidence.push({ type, ref, summary: summary ?? `[${v.severity}] ${v.rule_id}: ${v.message}` });
  }

  note(type: Evidence['type'], ref: string, summary: string): void {
    this.evidence.push({ type, ref, summary });
  }
}

function gateOfRule(ruleId: string): string {
  return ruleId.split('.')[0] ?? ruleId;
}

/** Downgrades waivable violations covered by an active waiver (see the module comment). */
export function applyWaivers(
  violations: readonly Violation[],
  waivers: readonly ActiveWaiver[],
): { violations: Violation[]; waived: { waiverId: string; violation: Violation }[] } {
  const sorted = [...waivers].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const waived: { waiverId: string; violation: Violation }[] = [];
  const out = violations.map((v) => {
    if (!v.waivable || v.severity === 'info') return v;
    const waiver = sorted.find((w) => w.gates.includes(gateOfRule(v.rule_id)) || w.gates.includes(v.rule_id));
    if (!waiver) return v;
    waived.push({ waiverId: waiver.id, violation: v });
    return { ...v, severity: 'info' as const, message: `${v.message} (waived by ${waiver.id}; was ${v.severity})` };
  });
  return { violations: out, waived };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function verdictOf(judgeId: JudgeId, input: JudgeInput, f: Findings, checked: string): JudgeVerdict {
  const { violations, waived } = applyWaivers(f.violations, input.activeWaivers);
  const evidence = [...f.evidence];
  for (const w of waived) {
    evidence.push({
      type: 'static_check',
      ref: `waiver:${w.waiverId}`,
      summary: `${w.violation.rule_id} downgraded to info by waiver ${w.waiverId}`,
    });
  }
  const penalty = violations.reduce((sum, v) => sum + PENALTY[v.severity], 0);
  const score = round3(Math.max(0, 1 - penalty));
  const blocking = violations.filter((v) => BLOCKING.has(v.severity));
  const verdict = blocking.length ? 'fail' : f.uncertain.length ? 'uncertain' : 'pass';
  const reasons = [
    ...blocking.map(violationText),
    ...f.uncertain,
    ...waived.map((w) => `waived by ${w.waiverId}: ${violationText(w.violation)}`),
  ];
  if (verdict === 'pass') {
    const minor = violations.filter((v) => v.severity !== 'info').length;
    reasons.unshift(minor ? `no blocking violation; ${minor} minor: ${checked}` : `no violation: ${checked}`);
  }
  return { judge_id: judgeId, version: JUDGE_VERSIONS[judgeId], verdict, score, reasons, violations, evidence };
}

// ---------------------------------------------------------------------------------------------------------------
// Constitutional: budgets, scope, waivers, evidence, secrets, unfinished-work markers, debug logging.

/** Secrets and unfinished-work markers are never waivable (CAWS.md); scope, budget and debug logging are. */
function fromFinding(finding: ReviewFinding, file?: ChangedFile): Violation {
  const line = file && !file.linesKnown ? undefined : finding.line;
  return {
    rule_id: finding.rule,
    severity: finding.severity,
    waivable: !(finding.rule === REVIEW_RULES.unfinishedMarker || finding.rule.startsWith('secret.')),
    message: finding.message,
    ...(finding.file !== undefined ? { file: finding.file } : {}),
    ...(line !== undefined ? { line } : {}),
  };
}

export function evaluateConstitutional(input: JudgeInput): JudgeVerdict {
  const f = new Findings();
  const changes = changesOf(input);
  if (!changes) {
    f.uncertain.push('no diff to judge in the result phase: budget, scope and content checks could not run');
    f.note('static_check', 'diff', 'missing');
    return verdictOf('constitutional', input, f, 'nothing checked');
  }
  const paths = changedPaths(input, changes);
  const scope = { scopeIn: input.spec.scope.in, scopeOut: input.spec.scope.out ?? [] };

  // Scope, on every changed or planned path.
  for (const path of paths) {
    for (const finding of checkScope(path, scope)) f.add(fromFinding(finding), path);
  }
  f.note('static_check', 'spec:scope', `${paths.length} path(s) checked against scope.in/out`);

  // Budget: counted on the diff; estimated from step contents in the plan phase.
  const loc = changes.reduce((n, c) => n + c.added.length + c.removed.length, 0);
  for (const finding of checkBudget(paths.length, loc, input.budget)) f.add(fromFinding(finding), 'spec:change_budget');
  f.note(
    'static_check',
    'spec:change_budget',
    input.phase === 'plan'
      ? `heuristic estimate from step contents: ${paths.length} file(s), ~${loc} line(s); budget ${input.budget.maxFiles} / ${input.budget.maxLoc}`
      : `${paths.length} file(s), ${loc} line(s) changed; budget ${input.budget.maxFiles} / ${input.budget.maxLoc}`,
  );

  // Content: secrets, unfinished-work markers, debug logging on added lines.
  let scanned = 0;
  for (const file of changes) {
    scanned += file.added.length;
    for (const finding of scanAddedLines(file.path, file.added)) {
      const v = fromFinding(finding, file);
      f.add(v, refOf(file, finding.line));
    }
  }
  f.note('static_check', input.phase === 'plan' ? 'spec:steps' : 'diff', `${scanned} added line(s) scanned`);

  // Evidence: the gates that show the change works.
  const declared = (input.spec.gates ?? []).map((g) => g.name);
  const noGatesSeverity: Severity = input.tier === 3 ? 'medium' : 'high';
  if (input.phase === 'plan') {
    if (declared.length === 0) {
      f.add(
        {
          rule_id: 'evidence.no-gates',
          severity: noGatesSeverity,
          waivable: true,
          message: 'the spec declares no gate',
        },
        'spec:gates',
      );
    } else {
      f.note('static_check', 'spec:gates', `gates declared: ${declared.join(', ')}`);
    }
  } else {
    if (input.gates.length === 0) {
      f.add(
        {
          rule_id: 'evidence.no-gates',
          severity: noGatesSeverity,
          waivable: true,
          message: 'no gate ran on the result',
        },
        'gates',
      );
    }
    const ran = new Set(input.gates.map((g) => g.gate));
    for (const name of declared.filter((n) => !ran.has(n))) {
      f.add(
        {
          rule_id: 'evidence.gate-missing',
          severity: 'high',
          waivable: true,
          message: `declared gate ${name} has no result`,
        },
        `gate:${name}`,
      );
    }
    for (const gate of input.gates) {
      f.note('test', `gate:${gate.gate}`, `${gate.status}: ${gate.reason}`);
      if (gate.status === 'waived' && !input.activeWaivers.some((w) => w.gates.includes(gate.gate))) {
        f.add(
          {
            rule_id: 'evidence.waiver-unknown',
            severity: 'high',
            waivable: false,
            message: `gate ${gate.gate} is marked waived but no active waiver covers it`,
          },
          `gate:${gate.gate}`,
        );
      }
    }
  }
  return verdictOf(
    'constitutional',
    input,
    f,
    `scope, budget, content of ${changes.length} change(s) and evidence checked`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Technical: dangerous commands, destructive SQL, new dependencies, very large single-file changes.

/** Shell-ish segments of a command: argv words split on whitespace, cut at `;`, `&&`, `||`, `|` and newlines. */
function segmentsOf(argv: readonly string[]): string[][] {
  return argv
    .join(' ')
    .split(/;|&&|\|\||\||\n/)
    .map((s) =>
      s
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map((w) => w.replace(/^['"]+|['"]+$/g, '')),
    )
    .filter((s) => s.length > 0);
}

function basename(word: string): string {
  return word.slice(word.lastIndexOf('/') + 1);
}

/** The arguments following the first word named `program` (path prefixes and `sudo` tolerated), else undefined. */
function argsAfter(segment: readonly string[], program: RegExp): string[] | undefined {
  const at = segment.findIndex((w) => program.test(basename(w)));
  return at === -1 ? undefined : segment.slice(at + 1);
}

const ROOTISH_TARGET =
  /^(\/+\*?|~\/?|\$\{?HOME\}?\/?\*?|\/(bin|boot|dev|etc|home|lib|lib64|opt|root|sbin|srv|usr|var)\/?\*?)$/;

interface CommandRule {
  rule_id: string;
  severity: Severity;
  message: string;
  matches: (segment: string[], text: string) => boolean;
}

const COMMAND_RULES: CommandRule[] = [
  {
    rule_id: 'commands.rm-rf-root',
    severity: 'critical',
    message: 'recursive forced delete of a root or home directory',
    matches: (seg) => {
      const args = argsAfter(seg, /^rm$/);
      if (!args) return false;
      const flags = args.filter((a) => a.startsWith('-'));
      const recursive = flags.some((a) => /^-[a-zA-Z]*[rR]/.test(a) || a === '--recursive');
      const force = flags.some((a) => /^-[a-zA-Z]*f/.test(a) || a === '--force');
      return (recursive && force && args.some((a) => ROOTISH_TARGET.test(a))) || args.includes('--no-preserve-root');
    },
  },
  {
    rule_id: 'commands.curl-pipe-shell',
    severity: 'critical',
    message: 'downloads a script and runs it unchecked',
    matches: (_seg, text) =>
      /\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(\S*\/)?(ba|z|da|k)?sh\b/.test(text) ||
      /\b(ba|z)?sh\s+<\(\s*(curl|wget)\b/.test(text) ||
      /\b(ba|z)?sh\s+-c\s+["']?\$\(\s*(curl|wget)\b/.test(text),
  },
  {
    rule_id: 'commands.chmod-777',
    severity: 'high',
    message: 'makes files writable by everyone',
    matches: (seg) => argsAfter(seg, /^chmod$/)?.some((a) => /^(0?777|(a|ugo)\+rwx)$/.test(a)) ?? false,
  },
  {
    rule_id: 'commands.force-push',
    severity: 'high',
    message: 'rewrites shared history (git push --force)',
    matches: (seg) => {
      const args = argsAfter(seg, /^git$/);
      if (!args || !args.includes('push')) return false;
      const rest = args.slice(args.indexOf('push') + 1);
      return rest.some((a) => a === '--force' || /^-[a-zA-Z]*f[a-zA-Z]*$/.test(a) || /^\+[^+]/.test(a));
    },
  },
  {
    rule_id: 'commands.dd',
    severity: 'high',
    message: 'raw block copy with dd',
    matches: (seg) => argsAfter(seg, /^dd$/)?.some((a) => a.startsWith('of=')) ?? false,
  },
  {
    rule_id: 'commands.mkfs',
    severity: 'critical',
    message: 'formats a file system',
    matches: (seg) => seg.some((w) => /^mkfs(\.\w+)?$/.test(basename(w))),
  },
];

const SQL_RULES: { rule_id: string; severity: Severity; waivable: boolean; pattern: RegExp; message: string }[] = [
  {
    rule_id: 'sql.drop-database',
    severity: 'critical',
    waivable: false,
    pattern: /\bDROP\s+(DATABASE|SCHEMA)\b/i,
    message: 'drops a database or schema',
  },
  {
    rule_id: 'sql.drop-table',
    severity: 'high',
    waivable: true,
    pattern: /\bDROP\s+TABLE\b/i,
    message: 'drops a table',
  },
];

const SQL_FILE = /\.sql$/i;
const MIGRATION_DIR = /(^|\/)migrations?\//;
const DOWN_FILE = /(^|[/._-])(down|rollback|revert)([/._-]|$)/i;
const DOWN_MARKER = /^\s*--\s*down\s+migration\b/i;
const LOCKFILE =
  /(^|\/)(package-lock\.json|npm-shrinkwrap\.json|yarn\.lock|pnpm-lock\.yaml|Cargo\.lock|go\.sum|poetry\.lock)$/;

/** Added lines of the up part of a SQL or migration file (down files and lines after `-- Down Migration` skipped). */
function upSqlLines(file: ChangedFile): Line[] {
  if (!(SQL_FILE.test(file.path) || MIGRATION_DIR.test(file.path)) || DOWN_FILE.test(basename(file.path))) return [];
  const lines: Line[] = [];
  for (const l of file.added) {
    if (DOWN_MARKER.test(l.text)) break;
    if (/^\s*--/.test(l.text)) continue;
    lines.push(l);
  }
  return lines;
}

const DEPENDENCY_LINE = /^\s*"((?:@[\w.-]+\/)?[\w.-]+)"\s*:\s*"([^"]*)"\s*,?\s*$/;
const VERSION_LIKE =
  /^(?:[\^~]|[<>]=?|=)?\s*v?\d|^(?:\*|latest|next|x)$|^(?:workspace|npm|file|link|git(?:\+\w+)?|github|https?):/;
const NOT_DEPENDENCY_KEYS = new Set(['name', 'version', 'node', 'npm', 'pnpm', 'yarn', 'packageManager', 'license']);

function dependencyEntries(lines: readonly Line[]): Map<string, Line> {
  const entries = new Map<string, Line>();
  for (const l of lines) {
    const m = DEPENDENCY_LINE.exec(l.text);
    if (m?.[1] && m[2] !== undefined && VERSION_LIKE.test(m[2]) && !NOT_DEPENDENCY_KEYS.has(m[1])) {
      entries.set(m[1], l);
    }
  }
  return entries;
}

const INSTALL_COMMAND: [RegExp, RegExp][] = [
  [/^(npm|pnpm|bun)$/, /^(install|i|add)$/],
  [/^yarn$/, /^add$/],
  [/^(pip|pip3)$/, /^install$/],
  [/^cargo$/, /^add$/],
  [/^go$/, /^get$/],
];

export function evaluateTechnical(input: JudgeInput): JudgeVerdict {
  const f = new Findings();
  const commands = commandsOf(input);

  commands.forEach((argv, i) => {
    const text = argv.join(' ');
    const segments = segmentsOf(argv);
    const ref = `command:${i}`;
    for (const rule of COMMAND_RULES) {
      if (segments.some((s) => rule.matches(s, text))) {
        f.add(
          { rule_id: rule.rule_id, severity: rule.severity, waivable: false, message: `${rule.message}: ${text}` },
          ref,
        );
      }
    }
    for (const rule of SQL_RULES) {
      if (rule.pattern.test(text)) {
        f.add(
          {
            rule_id: rule.rule_id,
            severity: rule.severity,
            waivable: rule.waivable,
            message: `${rule.message}: ${text}`,
          },
          ref,
        );
      }
    }
    for (const segment of segments) {
      for (const [program, sub] of INSTALL_COMMAND) {
        const args = argsAfter(segment, program);
        const at = args?.findIndex((a) => sub.test(a)) ?? -1;
        const packages = at === -1 ? [] : (args ?? []).slice(at + 1).filter((a) => !a.startsWith('-'));
        if (packages.length) {
          f.add(
            {
              rule_id: 'dependencies.install-command',
              severity: 'medium',
              waivable: true,
              message: `installs new dependencies: ${packages.join(' ')}`,
            },
            ref,
          );
        }
      }
    }
  });
  f.note('static_check', 'commands', `${commands.length} command(s) checked for dangerous patterns`);

  const changes = changesOf(input);
  if (!changes) {
    f.uncertain.push('no diff to judge in the result phase: SQL, dependency and size checks could not run');
    return verdictOf('technical', input, f, `${commands.length} command(s) checked`);
  }
  for (const file of changes) {
    for (const l of upSqlLines(file)) {
      for (const rule of SQL_RULES) {
        if (rule.pattern.test(l.text)) {
          f.add(
            {
              rule_id: rule.rule_id,
              severity: rule.severity,
              waivable: rule.waivable,
              message: rule.message,
              file: file.path,
              ...(file.linesKnown ? { line: l.line } : {}),
            },
            refOf(file, l.line),
          );
        }
      }
    }
    if (basename(file.path) === 'package.json') {
      const before = dependencyEntries(file.removed);
      for (const [name, l] of dependencyEntries(file.added)) {
        if (before.has(name)) continue;
        f.add(
          {
            rule_id: 'dependencies.new',
            severity: 'medium',
            waivable: true,
            message: `new dependency ${name}`,
            file: file.path,
            ...(file.linesKnown ? { line: l.line } : {}),
          },
          refOf(file, l.line),
          'static_check',
          `heuristic (by line shape, the enclosing block is not parsed): new dependency ${name}`,
        );
      }
    }
    const size = file.added.length + file.removed.length;
    if (size > LARGE_FILE_LINES && !LOCKFILE.test(file.path)) {
      f.add(
        {
          rule_id: 'complexity.large-file-change',
          severity: 'medium',
          waivable: true,
          message: `${size} lines changed in one file (more than ${LARGE_FILE_LINES})`,
          file: file.path,
        },
        refOf(file),
      );
    }
  }
  f.note('static_check', input.phase === 'plan' ? 'spec:steps' : 'diff', `${changes.length} change(s) checked`);
  return verdictOf('technical', input, f, `${commands.length} command(s) and ${changes.length} change(s) checked`);
}

// ---------------------------------------------------------------------------------------------------------------
// Quality: acceptance criteria covered by passing gates, failed gates, a test gate planned.

const TESTS_GATE_NAME = /(^|[-_])(tests?|unit|e2e|integration)([-_]|$)/i;

function isTestsGate(input: JudgeInput, name: string): boolean {
  const declared = (input.spec.gates ?? []).find((g) => g.name === name) as { kind?: unknown } | undefined;
  return declared?.kind === 'tests' || TESTS_GATE_NAME.test(name);
}

/** True when `text` names the acceptance id as a token of its own (A1 is not A10 nor XA1). */
function mentions(text: string, id: string): boolean {
  const escaped = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^A-Za-z0-9])${escaped}(?![0-9])`, 'i').test(text);
}

export function evaluateQuality(input: JudgeInput): JudgeVerdict {
  const f = new Findings();
  const acceptance = input.spec.acceptance ?? [];
  const ids = acceptance.map((a) => a.id);

  if (acceptance.length === 0) {
    f.add(
      {
        rule_id: 'acceptance.missing',
        severity: input.tier === 3 ? 'low' : 'high',
        waivable: true,
        message: `the spec has no acceptance criteria (tier ${input.tier})`,
      },
      'spec:acceptance',
    );
  }
  for (const id of new Set(ids.filter((id, i) => ids.indexOf(id) !== i))) {
    f.add(
      { rule_id: 'acceptance.duplicate-id', severity: 'low', waivable: true, message: `${id} is used twice` },
      'spec:acceptance',
    );
  }
  for (const a of acceptance) {
    if (!a.given.trim() || !a.when.trim() || !a.then.trim()) {
      f.add(
        {
          rule_id: 'acceptance.incomplete',
          severity: 'low',
          waivable: true,
          message: `${a.id} lacks given, when or then`,
        },
        `spec:acceptance.${a.id}`,
      );
    }
  }

  if (input.phase === 'plan') {
    const gates = input.spec.gates ?? [];
    if (gates.length === 0) {
      f.uncertain.push('no gate is declared: nothing will show that the acceptance criteria are met');
    } else if (!gates.some((g) => isTestsGate(input, g.name))) {
      f.add(
        {
          rule_id: 'tests.none-planned',
          severity: input.tier === 3 ? 'low' : 'medium',
          waivable: true,
          message: 'no test gate is declared',
        },
        'spec:gates',
      );
    }
    const planned = (input.plannedFiles?.length ?? 0) + (input.spec.steps?.length ?? 0) + input.commands.length;
    if (planned === 0) f.uncertain.push('the plan has no step, file or command: it changes nothing');
    f.note(
      'static_check',
      'spec:acceptance',
      `${acceptance.length} acceptance criterion/criteria; ${gates.length} gate(s) declared`,
    );
    return verdictOf(
      'quality',
      input,
      f,
      `${acceptance.length} acceptance criteria and ${gates.length} gate(s) planned`,
    );
  }

  if (input.gates.length === 0) f.uncertain.push('no gate results: the acceptance criteria cannot be verified');
  for (const gate of input.gates) {
    f.note('test', `gate:${gate.gate}`, `${gate.status}: ${gate.reason}`);
    if (gate.status === 'fail') {
      f.add(
        {
          rule_id: `${gate.gate}.failed`,
          severity: 'high',
          waivable: true,
          message: `${isTestsGate(input, gate.gate) ? 'test gate' : 'gate'} ${gate.gate} failed: ${gate.reason}`,
        },
        `gate:${gate.gate}`,
        'test',
      );
    }
  }
  for (const id of new Set(ids)) {
    const referencing = input.gates.filter((g) => mentions(`${g.gate} ${g.reason}`, id));
    const failed = referencing.filter((g) => g.status === 'fail');
    const passed = referencing.filter((g) => g.status === 'pass');
    if (failed.length) {
      f.add(
        {
          rule_id: 'acceptance.failed',
          severity: 'high',
          waivable: true,
          message: `${id} is referenced by failed gate(s) ${failed.map((g) => g.gate).join(', ')}`,
        },
        `gate:${failed[0]?.gate ?? ''}`,
        'test',
      );
    } else if (passed.length) {
      f.note(
        'test',
        `gate:${passed[0]?.gate ?? ''}`,
        `${id} covered by passing gate(s) ${passed.map((g) => g.gate).join(', ')}`,
      );
    } else {
      f.uncertain.push(
        referencing.length
          ? `${id} is referenced only by waived gate(s) ${referencing.map((g) => g.gate).join(', ')}`
          : `${id} is not referenced by any gate result`,
      );
    }
  }
  return verdictOf(
    'quality',
    input,
    f,
    `${ids.length} acceptance criteria covered by ${input.gates.length} gate result(s)`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Integration: contract changes, breaking export removals, migrations without rollback, cross-file consistency.

/** Files treated as public API besides the spec's contracts: package entry points, declarations, contract modules. */
const PUBLIC_API_FILE = /(^|\/)(index\.[cm]?[jt]sx?|[^/]+\.d\.[cm]?ts|definitions\.ts)$/;
const CODE_FILE = /\.[cm]?[jt]sx?$/;
const EXPORT_DECLARATION =
  /^\s*export\s+(?:default\s+)?(?:declare\s+)?(?:async\s+)?(?:abstract\s+)?(?:const|let|var|function\*?|class|interface|type|enum|namespace)\s+([A-Za-z_$][\w$]*)/;
const EXPORT_LIST = /^\s*export\s+(?:type\s+)?\{([^}]*)\}/;

/** Symbols a set of lines exports (declarations and `export { a, b as c }` lists). */
function exportedSymbols(lines: readonly Line[]): Map<string, Line> {
  const symbols = new Map<string, Line>();
  for (const l of lines) {
    const decl = EXPORT_DECLARATION.exec(l.text);
    if (decl?.[1]) symbols.set(decl[1], l);
    const list = EXPORT_LIST.exec(l.text);
    if (list?.[1]) {
      for (const part of list[1].split(',')) {
        const name = part
          .trim()
          .replace(/^type\s+/, '')
          .split(/\s+as\s+/)
          .pop()
          ?.trim();
        if (name && /^[A-Za-z_$][\w$]*$/.test(name)) symbols.set(name, l);
      }
    }
  }
  return symbols;
}

/** Exports whose lines the change removes and does not add back in the same file (removed or renamed symbols). */
function removedExports(file: ChangedFile): { name: string; line: Line }[] {
  if (!CODE_FILE.test(file.path)) return [];
  const kept = exportedSymbols(file.status === 'deleted' ? [] : file.added);
  return [...exportedSymbols(file.removed)].filter(([name]) => !kept.has(name)).map(([name, line]) => ({ name, line }));
}

const ROLLBACK_IN_FILE = /\bexports\.down\b|\bexport\s+(?:async\s+)?(?:function|const)\s+down\b|\bdown\s*[:(]/;

function hasDownSection(file: ChangedFile): boolean {
  const at = file.added.findIndex((l) => DOWN_MARKER.test(l.text));
  if (at !== -1) return file.added.slice(at + 1).some((l) => l.text.trim() && !/^\s*--/.test(l.text));
  return CODE_FILE.test(file.path) && file.added.some((l) => ROLLBACK_IN_FILE.test(l.text));
}

function stem(path: string): string {
  return basename(path)
    .replace(/\.[^.]+$/, '')
    .replace(/[._-](up|down)$/i, '');
}

export function evaluateIntegration(input: JudgeInput): JudgeVerdict {
  const f = new Findings();
  const changes = changesOf(input);
  if (!changes) {
    f.uncertain.push('no diff to judge in the result phase: contract, migration and consistency checks could not run');
    return verdictOf('integration', input, f, 'nothing checked');
  }
  const contracts = contractsOf(input);
  const contractOf = (path: string) => contracts.find((c) => path === c.path || matchesPrefix(path, [c.path]));

  // Contract files changed, and breaking removals of exports from public API files.
  const paths = changedPaths(input, changes);
  for (const path of paths) {
    const contract = contractOf(path);
    if (!contract) continue;
    const removes = changes.some((c) => c.path === path && (c.removed.length > 0 || c.status === 'deleted'));
    f.add(
      {
        rule_id: 'contracts.changed',
        severity: removes ? 'medium' : 'low',
        waivable: true,
        message: `${contract.type} contract ${contract.path} changes${removes ? ' and loses lines (may break consumers)' : ''}`,
        file: path,
      },
      path,
    );
  }
  const removedSymbols: { name: string; file: ChangedFile; line: Line }[] = [];
  for (const file of changes) {
    for (const { name, line } of removedExports(file)) {
      removedSymbols.push({ name, file, line });
      if (contractOf(file.path) || PUBLIC_API_FILE.test(file.path)) {
        f.add(
          {
            rule_id: 'contracts.breaking-change',
            severity: 'high',
            waivable: true,
            message: `export ${name} removed from public API ${file.path}`,
            file: file.path,
          },
          refOf(file),
          'static_check',
          `export ${name} removed (old line ${line.line}) and not exported again`,
        );
      }
    }
  }
  f.note('static_check', 'spec:contracts', `${contracts.length} contract(s); ${paths.length} path(s) checked`);

  // Migrations: new ones need a way back; applied ones must not change.
  const declaredMigrations = stringsOf(specField(input, 'migrations'));
  const rollback = stringsOf(specField(input, 'rollback')).join('\n').toLowerCase();
  const isMigration = (path: string) =>
    MIGRATION_DIR.test(path) || declaredMigrations.some((m) => path === m || matchesPrefix(path, [m]));
  const byPath = new Map<string, ChangedFile[]>();
  for (const c of changes) byPath.set(c.path, [...(byPath.get(c.path) ?? []), c]);
  const plannedOnly = input.phase === 'plan' ? paths.filter((p) => !byPath.has(p)) : [];
  for (const path of [...byPath.keys(), ...plannedOnly].filter(isMigration)) {
    const own = byPath.get(path) ?? [];
    if (DOWN_FILE.test(basename(path))) continue;
    if (own.some((c) => c.status === 'modified' || c.status === 'deleted' || c.status === 'renamed')) {
      f.add(
        {
          rule_id: 'migrations.edited',
          severity: 'high',
          waivable: true,
          message: `existing migration ${path} is changed; add a new migration instead`,
          file: path,
        },
        path,
      );
      continue;
    }
    const s = stem(path).toLowerCase();
    const downFile = paths.some(
      (p) => p !== path && DOWN_FILE.test(basename(p)) && basename(p).toLowerCase().includes(s),
    );
    const rolledBack = own.some(hasDownSection) || downFile || (s.length > 0 && rollback.includes(s));
    if (rolledBack) {
      f.note('static_check', path, `migration ${path} has a rollback`);
    } else {
      f.add(
        {
          rule_id: 'migrations.no-rollback',
          severity: 'high',
          waivable: true,
          message: `migration ${path} has no down section, down file or rollback entry`,
          file: path,
        },
        path,
      );
    }
  }

  // Cross-file consistency: a removed or renamed export still used on lines added elsewhere (and not moved there).
  const addedExports = new Set(
    changes.flatMap((c) => (CODE_FILE.test(c.path) ? [...exportedSymbols(c.added).keys()] : [])),
  );
  for (const { name, file } of removedSymbols) {
    if (addedExports.has(name)) continue;
    const word = new RegExp(`(^|[^\\w$])${name.replace(/\$/g, '\\$')}(?![\\w$])`);
    for (const other of changes) {
      if (other.path === file.path || !CODE_FILE.test(other.path)) continue;
      const use = other.added.find((l) => word.test(l.text));
      if (!use) continue;
      f.add(
        {
          rule_id: 'consistency.removed-symbol-referenced',
          severity: 'medium',
          waivable: true,
          message: `${name} is no longer exported by ${file.path} but ${other.path} uses it`,
          file: other.path,
          ...(other.linesKnown ? { line: use.line } : {}),
        },
        refOf(other, use.line),
        'static_check',
        `heuristic (name match on lines in this change only): ${name} removed from ${file.path}, used in ${other.path}`,
      );
    }
  }
  f.note(
    'static_check',
    input.phase === 'plan' ? 'spec:steps' : 'diff',
    `heuristic cross-file check over ${removedSymbols.length} removed export(s); unchanged files are not read`,
  );
  return verdictOf('integration', input, f, `${contracts.length} contract(s), ${changes.length} change(s) checked`);
}

export const JUDGE_EVALUATORS: Readonly<Record<JudgeId, (input: JudgeInput) => JudgeVerdict>> = {
  constitutional: evaluateConstitutional,
  technical: evaluateTechnical,
  quality: evaluateQuality,
  integration: evaluateIntegration,
};
