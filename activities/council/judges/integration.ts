/**
 * The integration judge: contract changes, breaking export removals, migrations without rollback, cross-file
 * consistency.
 */
import type { JudgeInput, JudgeVerdict } from '../../../workflows/council/definitions.js';
import { matchesPrefix } from '../review.js';
import {
  basename,
  changedPaths,
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
