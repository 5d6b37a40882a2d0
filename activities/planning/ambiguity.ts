/**
 * Heuristic ambiguity check of a task before planning or execution: is there enough to act on without guessing?
 * Pure. Each signal adds a fixed weight; the sum (capped at 1) is the score, and at or above the threshold the task
 * goes back to its requester for clarification with the reasons listed.
 */
import { specFiles, specSteps, type SpecLike } from './risk.js';

export interface AmbiguityInput {
  title: string;
  description: string;
  spec?: SpecLike;
}

export interface AmbiguityResult {
  method: 'heuristic';
  /** 0..1. */
  score: number;
  reasons: string[];
  ambiguous: boolean;
}

export interface AmbiguityOptions {
  /** Score at or above which the task is ambiguous; 0.5 by default. */
  threshold?: number;
}

export const DEFAULT_AMBIGUITY_THRESHOLD = 0.5;

const WEIGHTS = {
  noAcceptance: 0.3,
  vagueScope: 0.25,
  vagueWordEach: 0.1,
  vagueWordMax: 0.4,
  shortDescription: 0.25,
  shortTitle: 0.1,
  scopeConflict: 0.4,
  outOfScope: 0.3,
  budgetFiles: 0.3,
  budgetLoc: 0.2,
  noSteps: 0.2,
  questions: 0.1,
} as const;

/** Words and phrases that leave the outcome open. */
const VAGUE_TERMS: readonly (readonly [term: string, pattern: RegExp])[] = [
  ['somehow', /\bsomehow\b/i],
  ['something', /\bsomething\b/i],
  ['etc', /\betc\b\.?/i],
  ['and so on', /\band so on\b/i],
  ['improve', /\bimprov(e|es|ed|ing|ement|ements)\b/i],
  ['make it better', /\bmake (it|this|things) better\b/i],
  ['better', /\bbetter\b/i],
  ['and/or', /\band\s*\/\s*or\b/i],
  ['TBD', /\bTBD\b/i],
  ['TBC', /\bTBC\b/i],
  ['maybe', /\bmaybe\b/i],
  ['possibly', /\bpossibly\b/i],
  ['perhaps', /\bperhaps\b/i],
  ['various', /\bvarious\b/i],
  ['stuff', /\bstuff\b/i],
  ['things', /\bthings\b/i],
  ['as needed', /\bas (needed|necessary|required)\b/i],
  ['as appropriate', /\bas appropriate\b/i],
  ['if possible', /\bif possible\b/i],
  ['some kind of', /\bsome (kind|sort) of\b/i],
  ['whatever', /\bwhatever\b/i],
  ['clean up', /\bclean[ -]?up\b/i],
  ['optimise', /\boptimi[sz](e|es|ed|ing|ation)\b/i],
  ['faster', /\bfaster\b/i],
  ['nicer', /\bnicer\b/i],
  ['user-friendly', /\buser[ -]friendly\b/i],
  ['robust', /\brobust\b/i],
  ['ASAP', /\basap\b/i],
  ['fix it', /\bfix (it|this|that)\b/i],
  ['tweak', /\btweak(s|ed|ing)?\b/i],
];

/** A description that states an outcome someone can check. */
const OUTCOME_CUES =
  /\b(should|must|shall|expect(s|ed)?|so that|given\b.*\bwhen\b.*\bthen|acceptance|returns?|responds? with|passes|fails? with|status \d{3}|equals?|is shown|displays?|logs?|rejects?|accepts?)\b/i;

const VAGUE_SCOPE = new Set(['', '.', './', '/', '*', '**', '**/*', '/**', './**', './**/*']);

/** Assesses how ambiguous a task is, from its title, description and, when it has one, its working spec. */
export function assessAmbiguity(input: AmbiguityInput, options: AmbiguityOptions = {}): AmbiguityResult {
  const threshold = options.threshold ?? DEFAULT_AMBIGUITY_THRESHOLD;
  const signals: { weight: number; reason: string }[] = [];
  const add = (weight: number, reason: string) => signals.push({ weight, reason });
  const title = input.title.trim();
  const description = input.description.trim();
  const text = `${title}\n${description}`;
  const spec = input.spec;

  // Acceptance criteria: from the spec when there is one, else an outcome stated in the description.
  if (spec) {
    const acceptance = Array.isArray(spec.acceptance) ? (spec.acceptance as unknown[]) : [];
    const usable = acceptance.filter(
      (a) =>
        isRecord(a) &&
        ['given', 'when', 'then'].every((k) => {
          const v = a[k];
          return typeof v === 'string' && v.trim() !== '';
        }),
    );
    if (usable.length === 0) {
      add(WEIGHTS.noAcceptance, 'no acceptance criteria: the spec has no acceptance entry with given, when and then');
    }
  } else if (!OUTCOME_CUES.test(description)) {
    add(WEIGHTS.noAcceptance, 'no acceptance criteria: the description states no outcome that can be checked');
  }

  const words = description.split(/\s+/).filter(Boolean).length;
  if (words < 5)
    add(WEIGHTS.shortDescription, `description too short to act on (${words} word${words === 1 ? '' : 's'})`);
  if (title.length < 10) add(WEIGHTS.shortTitle, `title too short to say what changes ("${title}")`);

  const vague = VAGUE_TERMS.filter(([, pattern]) => pattern.test(text)).map(([term]) => term);
  // "make it better" also contains "better": report the phrase once.
  const terms = vague.includes('make it better') ? vague.filter((t) => t !== 'better') : vague;
  if (terms.length) {
    add(
      Math.min(WEIGHTS.vagueWordMax, WEIGHTS.vagueWordEach * terms.length),
      `vague wording: ${terms.map((t) => `"${t}"`).join(', ')}`,
    );
  }

  const questions = (description.match(/\?/g) ?? []).length;
  if (questions > 0) {
    add(WEIGHTS.questions, `the description leaves ${questions} question${questions === 1 ? '' : 's'} open`);
  }

  if (spec) specSignals(spec, add);

  const score =
    Math.round(
      Math.min(
        1,
        signals.reduce((s, x) => s + x.weight, 0),
      ) * 1000,
    ) / 1000;
  return { method: 'heuristic', score, reasons: signals.map((s) => s.reason), ambiguous: score >= threshold };
}

function specSignals(spec: SpecLike, add: (weight: number, reason: string) => void): void {
  const scope = isRecord(spec.scope) ? spec.scope : undefined;
  const scopeIn = stringList(scope?.in);
  const scopeOut = stringList(scope?.out);
  const vagueIn = scopeIn.filter((p) => VAGUE_SCOPE.has(p.trim()));
  if (scopeIn.length === 0) {
    add(WEIGHTS.vagueScope, 'vague scope: scope.in is missing or empty');
  } else if (vagueIn.length) {
    add(
      WEIGHTS.vagueScope,
      `vague scope: scope.in covers the whole repository (${vagueIn.map((p) => `"${p}"`).join(', ')})`,
    );
  }

  const conflicts = scopeIn.filter((i) => !VAGUE_SCOPE.has(i.trim()) && scopeOut.some((o) => inside(i, o)));
  if (conflicts.length) {
    add(
      WEIGHTS.scopeConflict,
      `conflicting scope: ${conflicts.join(', ')} is both in scope.in and excluded by scope.out`,
    );
  }

  const steps = specSteps(spec);
  if (steps.length === 0) add(WEIGHTS.noSteps, 'no steps: the spec plans no edits or commands');

  const files = specFiles(spec);
  const usableIn = scopeIn.filter((p) => !VAGUE_SCOPE.has(p.trim()));
  const outside = usableIn.length ? files.filter((f) => !usableIn.some((p) => inside(f, p))) : [];
  const excluded = files.filter((f) => scopeOut.some((p) => inside(f, p)));
  const stray = [...new Set([...outside, ...excluded])];
  if (stray.length) {
    add(WEIGHTS.outOfScope, `conflicting plan: steps write ${listed(stray)} outside scope.in or inside scope.out`);
  }

  const budget = isRecord(spec.change_budget) ? spec.change_budget : undefined;
  const maxFiles = typeof budget?.max_files === 'number' ? budget.max_files : undefined;
  const maxLoc = typeof budget?.max_loc === 'number' ? budget.max_loc : undefined;
  if (maxFiles !== undefined && files.length > maxFiles) {
    add(
      WEIGHTS.budgetFiles,
      `conflicting budget: the steps touch ${files.length} files, change_budget.max_files is ${maxFiles}`,
    );
  }
  if (maxLoc !== undefined) {
    const loc = steps.reduce((n, s) => n + plannedLines(s), 0);
    if (loc > maxLoc) {
      add(WEIGHTS.budgetLoc, `conflicting budget: the steps write ${loc} lines, change_budget.max_loc is ${maxLoc}`);
    }
  }
}

/**
 * Whether `path` lies within a scope entry: a path prefix (`src/api` covers `src/api/x.ts`) or a glob (`*`, `**`, `?`)
 * that matches the path or one of its parent directories.
 */
export function inside(path: string, entry: string): boolean {
  const p = normalise(path);
  const e = normalise(entry);
  if (e === '' || e === '**') return true;
  if (!/[*?[]/.test(e)) return p === e || p.startsWith(`${e}/`);
  const re = globToRegExp(e);
  const parts = p.split('/');
  for (let n = parts.length; n > 0; n--) {
    if (re.test(parts.slice(0, n).join('/'))) return true;
  }
  return false;
}

function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        // `**/` matches zero or more directories; a trailing `**` matches everything below.
        if (glob[i + 2] === '/') {
          out += '(?:.*/)?';
          i += 2;
        } else {
          out += '.*';
          i += 1;
        }
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else {
      out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${out}$`);
}

function plannedLines(step: Readonly<Record<string, unknown>>): number {
  const text = step.kind === 'write_file' ? step.content : step.kind === 'replace' ? step.replace : undefined;
  if (typeof text !== 'string' || text === '') return 0;
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

function normalise(p: string): string {
  return p.trim().replace(/\\/g, '/').replace(/^\.\//, '').replace(/\/+$/, '');
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? (value as unknown[]).filter((v): v is string => typeof v === 'string') : [];
}

function listed(items: readonly string[]): string {
  return items.length > 3 ? `${items.slice(0, 3).join(', ')} (+${items.length - 3} more)` : items.join(', ');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A path-like token: a file with an extension, or a directory with a slash (src/, lib/x). */
const PATH_TOKEN =
  /(^|[\s`'"(])([\w.-]+\/[\w./-]*|[\w-]+\.(?:[cm]?[jt]sx?|py|go|rs|java|rb|sql|ya?ml|json|md|css|html))(?=$|[\s`'"),.:;])/i;
/** Words that say how a change will be checked. */
const CHECK_WORDS =
  /\b(tests?|testing|lint|linter|type-?check|typecheck|coverage|assert(ion)?s?|spec(ification)?s?|ci)\b/i;

/**
 * What a request leaves open that a plan needs, named (offline there is no model to guess it): acceptance criteria,
 * a scope (paths the change may touch) and a gate (how it will be checked). From the spec when there is one, else
 * from the words of the title and description.
 */
export function missingFromRequest(input: AmbiguityInput): string[] {
  const spec = input.spec;
  const text = `${input.title}\n${input.description}`;
  const missing: string[] = [];
  const acceptance = spec && Array.isArray(spec.acceptance) ? spec.acceptance : [];
  if (acceptance.length === 0)
    missing.push('no acceptance criteria: nothing says when the change is done (given, when, then)');
  const scope = spec && isRecord(spec.scope) ? stringList(spec.scope.in) : [];
  if (scope.length === 0 && !PATH_TOKEN.test(text))
    missing.push('no scope: no file or directory the change may touch is named');
  const gates = spec && Array.isArray(spec.gates) ? spec.gates : [];
  if (gates.length === 0 && !CHECK_WORDS.test(text))
    missing.push('no gate: nothing says how the change will be checked (tests, lint, types)');
  return missing;
}
