/**
 * Deterministic checks on a unified diff: hard-coded secrets, unfinished-work markers, stray debug logging (on added
 * lines), scope (files inside scope.in and outside scope.out) and the change budget. Pure: no I/O.
 */
import type { ReviewFinding } from '../../workflows/task/definitions.js';

export interface DiffFile {
  path: string;
  /** `added`/`deleted` from git's `new file mode`/`deleted file mode` (or a `/dev/null` side), `renamed` with `oldPath`. */
  status: 'added' | 'deleted' | 'modified' | 'renamed';
  oldPath?: string;
  /** Added lines with their line numbers in the new file. */
  added: { line: number; text: string }[];
  /** Removed lines with their line numbers in the old file. */
  removed: { line: number; text: string }[];
  removedCount: number;
}

/**
 * Splits a unified diff (git format) into files with their added lines (new-file line numbers) and removed lines
 * (old-file line numbers). Hunk lengths are honoured, so a removed `-- comment` (`--- comment` in the diff) or an added
 * `++x` counts as content, not as a file header.
 */
export function parseUnifiedDiff(diff: string): DiffFile[] {
  const files: DiffFile[] = [];
  let current: DiffFile | undefined;
  let oldLine = 0;
  let newLine = 0;
  let oldLeft = 0;
  let newLeft = 0;
  for (const line of diff.split('\n')) {
    const inHunk = current !== undefined && (oldLeft > 0 || newLeft > 0);
    if (inHunk && current) {
      if (line.startsWith('+')) {
        current.added.push({ line: newLine++, text: line.slice(1) });
        newLeft--;
      } else if (line.startsWith('-')) {
        current.removed.push({ line: oldLine++, text: line.slice(1) });
        current.removedCount++;
        oldLeft--;
      } else if (line.startsWith(' ') || line === '') {
        oldLine++;
        newLine++;
        oldLeft--;
        newLeft--;
      }
      // `\ No newline at end of file` and anything else inside a hunk changes no count.
      continue;
    }
    if (line.startsWith('diff --git ')) {
      const match = / b\/(.+)$/.exec(line);
      current = { path: match?.[1] ?? '', status: 'modified', added: [], removed: [], removedCount: 0 };
      files.push(current);
    } else if (!current) {
      continue;
    } else if (line.startsWith('new file mode')) {
      current.status = 'added';
    } else if (line.startsWith('deleted file mode')) {
      current.status = 'deleted';
    } else if (line.startsWith('rename from ')) {
      current.status = 'renamed';
      current.oldPath = line.slice('rename from '.length);
    } else if (line.startsWith('rename to ')) {
      current.path = line.slice('rename to '.length);
    } else if (line.startsWith('--- ')) {
      if (line === '--- /dev/null') current.status = 'added';
    } else if (line.startsWith('+++ ')) {
      if (line.startsWith('+++ b/')) current.path = line.slice(6);
      else if (line === '+++ /dev/null') current.status = 'deleted';
    } else if (line.startsWith('@@')) {
      const header = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(line);
      oldLine = Number(header?.[1] ?? 0);
      oldLeft = Number(header?.[2] ?? 1);
      newLine = Number(header?.[3] ?? 0);
      newLeft = Number(header?.[4] ?? 1);
    }
  }
  return files;
}

const SECRET_PATTERNS: [string, RegExp][] = [
  ['aws-access-key', /\b(AKIA|ASIA)[0-9A-Z]{16}\b/],
  ['private-key', /-----BEGIN (RSA |EC |OPENSSH |DSA |PGP )?PRIVATE KEY-----/],
  ['github-token', /\bgh[pousr]_[A-Za-z0-9]{36,}\b/],
  ['slack-token', /\bxox[abprs]-[A-Za-z0-9-]{10,}\b/],
  ['openai-key', /\bsk-[A-Za-z0-9_-]{20,}\b/],
  ['assigned-secret', /\b(password|passwd|secret|api[_-]?key|token)\b\s*[:=]\s*['"][^'"\s]{8,}['"]/i],
];
const UNFINISHED_MARKER = /\b(TODO|FIXME|XXX|HACK)\b|\bplaceholder\b|not implemented/i;
const DEBUG_LOG = /\bconsole\.(log|debug)\(|\bdebugger;|\bprint\(\s*["']debug/i;

export function matchesPrefix(file: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => {
    const prefix = p.replace(/\*\*?(\/.*)?$/, '').replace(/\/$/, '');
    return prefix === '' || file === prefix || file.startsWith(prefix + '/');
  });
}

export interface ReviewPolicy {
  scopeIn: readonly string[];
  scopeOut: readonly string[];
  maxFiles?: number;
  maxLoc?: number;
}

/** The rule names the checks below report (secrets report `secret.<kind>`). */
export const REVIEW_RULES = {
  unfinishedMarker: 'unfinished-marker',
  debugLogging: 'debug-logging',
  scopeOutsideIn: 'scope.outside-in',
  scopeInOut: 'scope.in-out',
  budgetFiles: 'budget.files',
  budgetLoc: 'budget.loc',
} as const;

/** Secrets (critical), unfinished-work markers (high) and stray debug logging (medium) on lines a change adds. */
export function scanAddedLines(path: string, added: readonly { line: number; text: string }[]): ReviewFinding[] {
  const findings: ReviewFinding[] = [];
  for (const { line, text } of added) {
    for (const [name, pattern] of SECRET_PATTERNS) {
      if (pattern.test(text)) {
        findings.push({ rule: `secret.${name}`, severity: 'critical', file: path, line, message: 'hard-coded secret' });
      }
    }
    if (UNFINISHED_MARKER.test(text)) {
      findings.push({
        rule: REVIEW_RULES.unfinishedMarker,
        severity: 'high',
        file: path,
        line,
        message: 'unfinished-work marker',
      });
    }
    if (DEBUG_LOG.test(text)) {
      findings.push({
        rule: REVIEW_RULES.debugLogging,
        severity: 'medium',
        file: path,
        line,
        message: 'stray debug logging',
      });
    }
  }
  return findings;
}

/** A changed path must sit inside scope.in and outside scope.out. */
export function checkScope(path: string, policy: Pick<ReviewPolicy, 'scopeIn' | 'scopeOut'>): ReviewFinding[] {
  const findings: ReviewFinding[] = [];
  if (!matchesPrefix(path, policy.scopeIn)) {
    findings.push({
      rule: REVIEW_RULES.scopeOutsideIn,
      severity: 'high',
      file: path,
      message: `${path} is outside scope.in`,
    });
  }
  if (policy.scopeOut.length && matchesPrefix(path, policy.scopeOut)) {
    findings.push({
      rule: REVIEW_RULES.scopeInOut,
      severity: 'high',
      file: path,
      message: `${path} is listed in scope.out`,
    });
  }
  return findings;
}

/** The change budget: number of files and lines changed (added + removed). */
export function checkBudget(
  files: number,
  loc: number,
  policy: Pick<ReviewPolicy, 'maxFiles' | 'maxLoc'>,
): ReviewFinding[] {
  const findings: ReviewFinding[] = [];
  if (policy.maxFiles !== undefined && files > policy.maxFiles) {
    findings.push({
      rule: REVIEW_RULES.budgetFiles,
      severity: 'high',
      message: `${files} files changed, budget ${policy.maxFiles}`,
    });
  }
  if (policy.maxLoc !== undefined && loc > policy.maxLoc) {
    findings.push({
      rule: REVIEW_RULES.budgetLoc,
      severity: 'high',
      message: `${loc} lines changed, budget ${policy.maxLoc}`,
    });
  }
  return findings;
}

export function reviewDiff(diff: string, policy: ReviewPolicy): { passed: boolean; findings: ReviewFinding[] } {
  const files = parseUnifiedDiff(diff);
  const findings: ReviewFinding[] = [];
  let loc = 0;
  for (const f of files) {
    loc += f.added.length + f.removedCount;
    findings.push(...checkScope(f.path, policy), ...scanAddedLines(f.path, f.added));
  }
  findings.push(...checkBudget(files.length, loc, policy));
  return { passed: !findings.some((f) => f.severity === 'high' || f.severity === 'critical'), findings };
}
