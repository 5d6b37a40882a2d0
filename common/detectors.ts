/**
 * Detectors of dangerous commands and destructive SQL, shared by the risk assessment (activities/planning/risk.ts)
 * and the technical judge (activities/council/judges/technical.ts). A detector reports what a command or script would
 * do, as findings with the words that show it; each caller grades them (a risk tier, a violation's severity, or not at
 * all). Pure: no I/O.
 *
 * A command is read as shell text: its argument vector joined by spaces, with a shell's `-c` script on a line of its
 * own. The text is cut into segments at `;`, `|`, `&` (not the `&` of a redirection such as `2>&1`) and newlines, and a
 * segment into words without quotes, backticks or subshell parentheses at their ends. A program is recognised anywhere
 * in a segment (`sudo rm`, `/bin/rm`, `cd x && rm`; sudo only as a segment's first word), so an argument that only
 * mentions one (a commit message) can be flagged as well.
 */

export type SqlStatement =
  'DROP TABLE' | 'DROP DATABASE' | 'DROP SCHEMA' | 'DROP VIEW' | 'DROP INDEX' | 'DROP COLUMN' | 'TRUNCATE';

export type CommandFinding =
  | {
      /** rm -r (or rm --no-preserve-root). */
      kind: 'recursive-delete';
      evidence: string;
      /** A target is `/`, `~`, $HOME or a system directory, or --no-preserve-root is given. */
      rootTarget: boolean;
    }
  | {
      /** dd with an output (of=). */
      kind: 'raw-disk-write';
      evidence: string;
      /** The output is a device (of=/dev/…). */
      device: boolean;
    }
  | {
      kind: 'destructive-sql';
      evidence: string;
      statement: SqlStatement;
      /** The text runs as SQL (a script, a SQL client, a shell), rather than only mentioning it (a commit message). */
      executed: boolean;
    }
  | {
      kind:
        | 'force-push' // git push --force, -f, +refspec
        | 'world-writable' // chmod 777, a+rwx
        | 'pipe-to-shell' // curl … | sh
        | 'format-disk' // mkfs
        | 'infra-teardown' // terraform destroy, kubectl delete, helm uninstall
        | 'deploy' // terraform apply, kubectl apply, helm upgrade, npm publish, docker push
        | 'history-rewrite' // git reset --hard, git clean -x
        | 'sudo';
      evidence: string;
    };

export type CommandFindingKind = CommandFinding['kind'];

const SHELLS = new Set(['sh', 'bash', 'zsh', 'dash', 'ksh', 'fish']);
const SQL_CLIENTS = new Set([
  'psql',
  'mysql',
  'mariadb',
  'sqlite3',
  'sqlcmd',
  'cockroach',
  'clickhouse-client',
  'duckdb',
]);

const ROOTISH_TARGET =
  /^(\/+\*?|~\/?|\$\{?HOME\}?\/?\*?|\/(bin|boot|dev|etc|home|lib|lib64|opt|root|sbin|srv|usr|var)\/?\*?)$/;
// World-writable only: 777, or +rwx for all (no who, a) or others (o); u+rwx and ug+rwx are not.
const WORLD_WRITABLE_MODE = /^(0?777|([ugoa]*[ao][ugoa]*)?\+rwx)$/;
const PIPE_TO_SHELL = [
  /\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(\S*\/)?(ba|z|da|k)?sh\b/,
  /\b(ba|z)?sh\s+<\(\s*(curl|wget)\b/,
  /\b(ba|z)?sh\s+-c\s+["']?\$\(\s*(curl|wget)\b/,
];
/** Detectors that read the shell text as a whole. */
const TEXT_RULES: readonly { kind: 'infra-teardown' | 'deploy' | 'history-rewrite'; pattern: RegExp }[] = [
  { kind: 'infra-teardown', pattern: /\bterraform\s+destroy\b|\bkubectl\s+delete\b|\bhelm\s+(uninstall|delete)\b/ },
  {
    kind: 'deploy',
    pattern:
      /\bterraform\s+apply\b|\bkubectl\s+(apply|replace|patch)\b|\bhelm\s+(install|upgrade)\b|\b(npm|pnpm|yarn)\s+publish\b|\bdocker\s+push\b/,
  },
  { kind: 'history-rewrite', pattern: /\bgit\s+(reset\s+--hard|clean\s+-[a-zA-Z]*[xX])/ },
];
const DESTRUCTIVE_SQL = /\b(?:drop\s+(table|database|schema|view|index|column)|truncate\s+(?:table\s+)?[\w"`.]+)/gi;

/** What a planned command (an argument vector) does. */
export function detectCommand(argv: readonly string[]): CommandFinding[] {
  const program = basename(argv[0]);
  return detect(commandText(argv), SHELLS.has(program) || SQL_CLIENTS.has(program));
}

/** What a script (a shell or SQL file, a CI job) does when it runs. */
export function detectScript(text: string): CommandFinding[] {
  return detect(text, true);
}

/** Destructive SQL statements in a text (DROP TABLE, DROP DATABASE, …, TRUNCATE), each kind once. */
export function destructiveSql(text: string): { statement: SqlStatement; evidence: string }[] {
  const found = new Map<SqlStatement, string>();
  for (const m of text.matchAll(DESTRUCTIVE_SQL)) {
    const statement = (m[1] ? `DROP ${m[1].toUpperCase()}` : 'TRUNCATE') as SqlStatement;
    if (!found.has(statement)) found.set(statement, m[0]);
  }
  return [...found].map(([statement, evidence]) => ({ statement, evidence }));
}

/** The shell text of a command: its words joined by spaces, a shell's `-c` script starting a line of its own. */
function commandText(argv: readonly string[]): string {
  const c = SHELLS.has(basename(argv[0])) ? argv.indexOf('-c') : -1;
  if (c === -1 || argv[c + 1] === undefined) return argv.join(' ');
  return `${argv.slice(0, c + 1).join(' ')}\n${argv.slice(c + 1).join(' ')}`;
}

/** The segments of a command's shell text, as words (see the module comment). */
export function commandSegments(argv: readonly string[]): string[][] {
  return segmentsOf(commandText(argv));
}

/** The words following the first word named `program` (a path prefix allowed), else undefined. */
export function argsAfter(segment: readonly string[], program: RegExp): string[] | undefined {
  const at = segment.findIndex((w) => program.test(basename(w)));
  return at === -1 ? undefined : segment.slice(at + 1);
}

function detect(text: string, runsSql: boolean): CommandFinding[] {
  const findings: CommandFinding[] = [];
  for (const segment of segmentsOf(text)) {
    const evidence = segment.join(' ');
    const rm = argsAfter(segment, /^rm$/);
    if (rm) {
      const flags = rm.filter((a) => a.startsWith('-'));
      const noPreserveRoot = flags.includes('--no-preserve-root');
      if (noPreserveRoot || flags.some((a) => /^-[a-zA-Z]*[rR]/.test(a) || a === '--recursive')) {
        findings.push({
          kind: 'recursive-delete',
          evidence,
          rootTarget: noPreserveRoot || rm.some((a) => ROOTISH_TARGET.test(a)),
        });
      }
    }
    const git = argsAfter(segment, /^git$/);
    if (
      git?.includes('push') &&
      git.some((a) => a.startsWith('--force') || /^-[a-zA-Z]*f[a-zA-Z]*$/.test(a) || /^\+[^+]/.test(a))
    ) {
      findings.push({ kind: 'force-push', evidence });
    }
    if (argsAfter(segment, /^chmod$/)?.some((a) => WORLD_WRITABLE_MODE.test(a))) {
      findings.push({ kind: 'world-writable', evidence });
    }
    const outputs = argsAfter(segment, /^dd$/)?.filter((a) => a.startsWith('of=')) ?? [];
    if (outputs.length) {
      findings.push({ kind: 'raw-disk-write', evidence, device: outputs.some((a) => a.startsWith('of=/dev/')) });
    }
    if (segment.some((w) => /^mkfs(\.|$)/.test(basename(w)))) findings.push({ kind: 'format-disk', evidence });
    if (basename(segment[0]) === 'sudo') findings.push({ kind: 'sudo', evidence });
  }
  const piped = PIPE_TO_SHELL.map((p) => p.exec(text)).find((m) => m !== null);
  if (piped) findings.push({ kind: 'pipe-to-shell', evidence: piped[0] });
  for (const { kind, pattern } of TEXT_RULES) {
    const m = pattern.exec(text);
    if (m) findings.push({ kind, evidence: m[0] });
  }
  for (const sql of destructiveSql(text)) findings.push({ kind: 'destructive-sql', ...sql, executed: runsSql });
  return findings;
}

function segmentsOf(text: string): string[][] {
  return text
    .split(/[;|\n]|(?<![<>])&(?!>)/)
    .map((s) =>
      s
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map((w) => w.replace(/^(?:\$?\(|[`'"])+|[`'")]+$/g, '')),
    )
    .filter((s) => s.length > 0);
}

function basename(word = ''): string {
  return word.slice(word.lastIndexOf('/') + 1);
}
