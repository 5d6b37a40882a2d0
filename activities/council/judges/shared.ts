/**
 * What the four judges share: the change under review in one shape for both phases, and the building of a verdict.
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
} from '../../../workflows/council/definitions.js';
import { violationText } from '../../../workflows/council/consensus.js';
import { parseUnifiedDiff, type DiffFile } from '../review.js';

export const JUDGE_VERSIONS: Readonly<Record<JudgeId, string>> = {
  constitutional: 'constitutional-rules@1.0.0',
  technical: 'technical-rules@1.0.0',
  quality: 'quality-rules@1.0.0',
  integration: 'integration-rules@1.0.0',
};

const PENALTY: Record<Severity, number> = { info: 0, low: 0.05, medium: 0.15, high: 0.4, critical: 1 };
const BLOCKING: ReadonlySet<Severity> = new Set<Severity>(['high', 'critical']);

// ---------------------------------------------------------------------------------------------------------------
// The change under review, in one shape for both phases.

export interface Line {
  line: number;
  text: string;
}

export interface ChangedFile {
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
export function changesOf(input: JudgeInput): ChangedFile[] | undefined {
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
export function changedPaths(input: JudgeInput, changes: readonly ChangedFile[]): string[] {
  const planned = input.phase === 'plan' ? (input.plannedFiles ?? []) : [];
  return [...new Set([...planned, ...changes.map((c) => c.path)])];
}

export function refOf(file: ChangedFile, line?: number): string {
  if (line !== undefined && file.linesKnown) return `${file.path}:${line}`;
  return file.origin === 'diff' ? file.path : `${file.path} (${file.origin})`;
}

export function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Migration files, down (rollback) files, and the marker of a migration file's down part. */
export const MIGRATION_DIR = /(^|\/)migrations?\//;
export const DOWN_FILE = /(^|[/._-])(down|rollback|revert)([/._-]|$)/i;
export const DOWN_MARKER = /^\s*--\s*down\s+migration\b/i;

// ---------------------------------------------------------------------------------------------------------------
// Building a verdict.

export class Findings {
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

export function verdictOf(judgeId: JudgeId, input: JudgeInput, f: Findings, checked: string): JudgeVerdict {
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
