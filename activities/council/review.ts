/**
 * Deterministic checks on a unified diff: hard-coded secrets, placeholder markers, stray debug logging (on added
 * lines), scope (files inside scope.in and outside scope.out) and the change budget. Pure: no I/O.
 */
import type { ReviewFinding } from '../../workflows/task/definitions.js';

export interface DiffFile {
  path: string;
  added: { line: number; text: string }[];
  removedCount: number;
}

/** Splits a unified diff (git format) into files with their added lines and new-file line numbers. */
export function parseUnifiedDiff(diff: string): DiffFile[] {
  const files: DiffFile[] = [];
  let current: DiffFile | undefined;
  let newLine = 0;
  for (const line of diff.split('\n')) {
    if (line.startsWith('diff --git ')) {
      const match = / b\/(.+)$/.exec(line);
      current = { path: match?.[1] ?? '', added: [], removedCount: 0 };
      files.push(current);
    } else if (!current) {
      continue;
    } else if (line.startsWith('+++ ') || line.startsWith('--- ')) {
      if (line.startsWith('+++ b/')) current.path = line.slice(6);
    } else if (line.startsWith('@@')) {
      newLine = Number(/\+(\d+)/.exec(line)?.[1] ?? 0);
    } else if (line.startsWith('+')) {
      current.added.push({ line: newLine, text: line.slice(1) });
      newLine++;
    } else if (line.startsWith('-')) {
      current.removedCount++;
    } else if (line.startsWith(' ')) {
      newLine++;
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
const PLACEHOLDER = /\b(TODO|FIXME|XXX|HACK)\b|\bplaceholder\b|not implemented/i;
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

export function reviewDiff(diff: string, policy: ReviewPolicy): { passed: boolean; findings: ReviewFinding[] } {
  const files = parseUnifiedDiff(diff);
  const findings: ReviewFinding[] = [];
  let loc = 0;
  for (const f of files) {
    loc += f.added.length + f.removedCount;
    if (!matchesPrefix(f.path, policy.scopeIn)) {
      findings.push({
        rule: 'scope.outside-in',
        severity: 'high',
        file: f.path,
        message: `${f.path} is outside scope.in`,
      });
    }
    if (policy.scopeOut.length && matchesPrefix(f.path, policy.scopeOut)) {
      findings.push({
        rule: 'scope.in-out',
        severity: 'high',
        file: f.path,
        message: `${f.path} is listed in scope.out`,
      });
    }
    for (const { line, text } of f.added) {
      for (const [name, pattern] of SECRET_PATTERNS) {
        if (pattern.test(text)) {
          findings.push({
            rule: `secret.${name}`,
            severity: 'critical',
            file: f.path,
            line,
            message: 'hard-coded secret',
          });
        }
      }
      if (PLACEHOLDER.test(text)) {
        findings.push({
          rule: 'placeholder',
          severity: 'high',
          file: f.path,
          line,
          message: 'placeholder or TODO marker',
        });
      }
      if (DEBUG_LOG.test(text)) {
        findings.push({
          rule: 'debug-logging',
          severity: 'medium',
          file: f.path,
          line,
          message: 'stray debug logging',
        });
      }
    }
  }
  if (policy.maxFiles !== undefined && files.length > policy.maxFiles) {
    findings.push({
      rule: 'budget.files',
      severity: 'high',
      message: `${files.length} files changed, budget ${policy.maxFiles}`,
    });
  }
  if (policy.maxLoc !== undefined && loc > policy.maxLoc) {
    findings.push({ rule: 'budget.loc', severity: 'high', message: `${loc} lines changed, budget ${policy.maxLoc}` });
  }
  return { passed: !findings.some((f) => f.severity === 'high' || f.severity === 'critical'), findings };
}
