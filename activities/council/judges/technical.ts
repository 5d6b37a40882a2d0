/**
 * The technical judge: dangerous commands, destructive SQL, new dependencies, very large single-file changes.
 * Commands and SQL are recognised by common/detectors.ts; this judge grades what they find.
 */
import {
  argsAfter,
  commandSegments,
  destructiveSql,
  detectCommand,
  type CommandFinding,
  type SqlStatement,
} from '../../../common/detectors.js';
import type { JudgeInput, JudgeVerdict, Severity } from '../../../workflows/council/definitions.js';
import {
  basename,
  changesOf,
  DOWN_FILE,
  DOWN_MARKER,
  Findings,
  MIGRATION_DIR,
  refOf,
  verdictOf,
  type ChangedFile,
  type Line,
} from './shared.js';

/** A single file with more changed lines than this is a very large change (lockfiles excepted). */
export const LARGE_FILE_LINES = 400;

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

interface CommandRule {
  rule_id: string;
  severity: Severity;
  message: string;
  /** Whether a finding of common/detectors.ts is one of this rule's; the judge leaves any other finding alone. */
  matches: (finding: CommandFinding) => boolean;
}

const COMMAND_RULES: CommandRule[] = [
  {
    rule_id: 'commands.rm-rf-root',
    severity: 'critical',
    message: 'recursive delete of a root or home directory',
    matches: (f) => f.kind === 'recursive-delete' && f.rootTarget,
  },
  {
    rule_id: 'commands.curl-pipe-shell',
    severity: 'critical',
    message: 'downloads a script and runs it unchecked',
    matches: (f) => f.kind === 'pipe-to-shell',
  },
  {
    rule_id: 'commands.chmod-777',
    severity: 'high',
    message: 'makes files writable by everyone',
    matches: (f) => f.kind === 'world-writable',
  },
  {
    rule_id: 'commands.force-push',
    severity: 'high',
    message: 'rewrites shared history (git push --force)',
    matches: (f) => f.kind === 'force-push',
  },
  {
    rule_id: 'commands.dd',
    severity: 'high',
    message: 'raw block copy with dd',
    matches: (f) => f.kind === 'raw-disk-write',
  },
  {
    rule_id: 'commands.mkfs',
    severity: 'critical',
    message: 'formats a file system',
    matches: (f) => f.kind === 'format-disk',
  },
];

interface SqlRule {
  rule_id: string;
  severity: Severity;
  waivable: boolean;
  /** Statements found by common/detectors.ts that break this rule (in commands and in the up part of migrations). */
  statements: readonly SqlStatement[];
  message: string;
}

const SQL_RULES: SqlRule[] = [
  {
    rule_id: 'sql.drop-database',
    severity: 'critical',
    waivable: false,
    statements: ['DROP DATABASE', 'DROP SCHEMA'],
    message: 'drops a database or schema',
  },
  {
    rule_id: 'sql.drop-table',
    severity: 'high',
    waivable: true,
    statements: ['DROP TABLE'],
    message: 'drops a table',
  },
];

const SQL_FILE = /\.sql$/i;
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
    const found = detectCommand(argv);
    const ref = `command:${i}`;
    for (const rule of COMMAND_RULES) {
      if (found.some(rule.matches)) {
        f.add(
          { rule_id: rule.rule_id, severity: rule.severity, waivable: false, message: `${rule.message}: ${text}` },
          ref,
        );
      }
    }
    for (const rule of SQL_RULES) {
      if (found.some((d) => d.kind === 'destructive-sql' && rule.statements.includes(d.statement))) {
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
    for (const segment of commandSegments(argv)) {
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
      const statements = destructiveSql(l.text).map((d) => d.statement);
      for (const rule of SQL_RULES) {
        if (rule.statements.some((st) => statements.includes(st))) {
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
