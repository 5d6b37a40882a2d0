/**
 * Parsers for the reports that gates produce: Istanbul's coverage-summary.json, LCOV, Stryker's mutation.json, JUnit XML
 * (tests and other checks) and ESLint's JSON. Pure: text in, a fraction out, a `ReportError` saying what is wrong for malformed or empty input (an
 * empty report is an error, never a perfect score).
 */

export class ReportError extends Error {
  override readonly name = 'ReportError';
}

export interface Counts {
  covered: number;
  total: number;
}

export interface CoverageReading {
  /** The fraction the coverage gate compares with the tier threshold. */
  value: number;
  /** Branch coverage when the report has branches; line coverage otherwise (`note` says so). */
  basis: 'branches' | 'lines';
  branches: Counts;
  lines: Counts;
  note?: string;
}

export interface MutationReading {
  /** detected / valid, where detected = Killed + Timeout and valid = detected + Survived + NoCoverage (Stryker). */
  score: number;
  detected: number;
  valid: number;
  /** Mutants per status, including those outside the score (CompileError, RuntimeError, Ignored). */
  byStatus: Record<string, number>;
}

function parseJson(json: string, what: string): unknown {
  try {
    return JSON.parse(json) as unknown;
  } catch (err) {
    throw new ReportError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

function fromCounts(branches: Counts, lines: Counts, what: string): CoverageReading {
  if (lines.total === 0 && branches.total === 0) {
    throw new ReportError(`${what} covers no lines and no branches: was anything instrumented?`);
  }
  if (branches.total > 0) return { value: branches.covered / branches.total, basis: 'branches', branches, lines };
  return {
    value: lines.covered / lines.total,
    basis: 'lines',
    branches,
    lines,
    note: `${what} has no branch data; line coverage used instead`,
  };
}

/** Istanbul/nyc/vitest `coverage-summary.json` (json-summary reporter): branch coverage from `total.branches`. */
export function parseIstanbulSummary(json: string): CoverageReading {
  const what = 'the coverage summary';
  const doc = parseJson(json, what);
  if (!isRecord(doc) || !isRecord(doc.total)) throw new ReportError(`${what} has no "total" object`);
  const total = doc.total;
  const counts = (key: 'branches' | 'lines'): Counts => {
    const entry = total[key];
    if (!isRecord(entry)) throw new ReportError(`${what} has no total.${key} object`);
    const { covered, total: all, pct } = entry;
    // Counts are exact; pct is rounded to two decimals (89.996 shows as 90), so it is only a fallback.
    if (isCount(covered) && isCount(all)) {
      if (covered > all) throw new ReportError(`${what}: total.${key}.covered (${covered}) exceeds total (${all})`);
      return { covered, total: all };
    }
    if (typeof pct === 'number' && pct >= 0 && pct <= 100) return { covered: pct, total: 100 };
    throw new ReportError(`${what}: total.${key} has neither covered/total counts nor a pct between 0 and 100`);
  };
  return fromCounts(counts('branches'), counts('lines'), what);
}

/** LCOV (`lcov.info`): branch coverage from BRF/BRH summed over records, else line coverage from LF/LH. */
export function parseLcov(text: string): CoverageReading {
  const what = 'the LCOV report';
  const branches: Counts = { covered: 0, total: 0 };
  const lines: Counts = { covered: 0, total: 0 };
  let records = 0;
  let open = false;
  // Per record: the summary lines when present, else counts derived from DA/BRDA lines.
  let rec = { lf: -1, lh: -1, brf: -1, brh: -1, da: 0, daHit: 0, brda: 0, brdaHit: 0 };
  const close = (): void => {
    const lf = rec.lf >= 0 ? rec.lf : rec.da;
    const lh = rec.lh >= 0 ? rec.lh : rec.daHit;
    const brf = rec.brf >= 0 ? rec.brf : rec.brda;
    const brh = rec.brh >= 0 ? rec.brh : rec.brdaHit;
    if (lh > lf) throw new ReportError(`${what}: record ${records + 1} has LH ${lh} > LF ${lf}`);
    if (brh > brf) throw new ReportError(`${what}: record ${records + 1} has BRH ${brh} > BRF ${brf}`);
    lines.total += lf;
    lines.covered += lh;
    branches.total += brf;
    branches.covered += brh;
    records += 1;
    open = false;
    rec = { lf: -1, lh: -1, brf: -1, brh: -1, da: 0, daHit: 0, brda: 0, brdaHit: 0 };
  };

  const rows = text.split(/\r?\n/);
  rows.forEach((row, index) => {
    const line = row.trim();
    const at = `${what}, line ${index + 1}`;
    if (line === '') return;
    if (line === 'end_of_record') {
      if (!open) throw new ReportError(`${at}: end_of_record without a record`);
      close();
      return;
    }
    const match = /^([A-Z]+):(.*)$/.exec(line);
    if (!match) throw new ReportError(`${at}: not an LCOV line: ${JSON.stringify(line.slice(0, 80))}`);
    const [, key, rest = ''] = match;
    open = true;
    const count = (): number => {
      if (!/^\d+$/.test(rest)) throw new ReportError(`${at}: ${key} is not a count: ${JSON.stringify(rest)}`);
      return Number(rest);
    };
    switch (key) {
      case 'LF':
        rec.lf = count();
        break;
      case 'LH':
        rec.lh = count();
        break;
      case 'BRF':
        rec.brf = count();
        break;
      case 'BRH':
        rec.brh = count();
        break;
      case 'DA': {
        const hits = rest.split(',')[1];
        if (hits === undefined || !/^-?\d+$/.test(hits)) throw new ReportError(`${at}: malformed DA line`);
        rec.da += 1;
        if (Number(hits) > 0) rec.daHit += 1;
        break;
      }
      case 'BRDA': {
        const taken = rest.split(',')[3];
        if (taken === undefined || !/^(-|\d+)$/.test(taken)) throw new ReportError(`${at}: malformed BRDA line`);
        rec.brda += 1;
        if (taken !== '-' && Number(taken) > 0) rec.brdaHit += 1;
        break;
      }
      default:
        // TN, SF, FN, FNDA, FNF, FNH, VER and others carry nothing the gate needs.
        break;
    }
  });
  if (open) throw new ReportError(`${what}: the last record has no end_of_record (truncated report?)`);
  if (records === 0) throw new ReportError(`${what} has no records`);
  return fromCounts(branches, lines, what);
}

const DETECTED = ['Killed', 'Timeout'];
const UNDETECTED = ['Survived', 'NoCoverage'];
const OUTSIDE_SCORE = ['CompileError', 'RuntimeError', 'Ignored'];
const KNOWN_STATUSES = new Set([...DETECTED, ...UNDETECTED, ...OUTSIDE_SCORE, 'Pending']);

/** Stryker `mutation.json` (mutation-testing-report-schema): the mutation score as Stryker defines it. */
export function parseStrykerReport(json: string): MutationReading {
  const what = 'the mutation report';
  const doc = parseJson(json, what);
  if (!isRecord(doc) || !isRecord(doc.files)) throw new ReportError(`${what} has no "files" object`);
  const byStatus: Record<string, number> = {};
  for (const [file, entry] of Object.entries(doc.files)) {
    if (!isRecord(entry) || !Array.isArray(entry.mutants)) {
      throw new ReportError(`${what}: files[${JSON.stringify(file)}] has no "mutants" list`);
    }
    entry.mutants.forEach((mutant: unknown, i) => {
      const status = isRecord(mutant) ? mutant.status : undefined;
      if (typeof status !== 'string' || !KNOWN_STATUSES.has(status)) {
        throw new ReportError(
          `${what}: files[${JSON.stringify(file)}].mutants[${i}] has an unknown status ${JSON.stringify(status)}`,
        );
      }
      byStatus[status] = (byStatus[status] ?? 0) + 1;
    });
  }
  const sum = (statuses: string[]): number => statuses.reduce((n, s) => n + (byStatus[s] ?? 0), 0);
  if (byStatus.Pending) throw new ReportError(`${what} is incomplete: ${byStatus.Pending} mutant(s) still Pending`);
  const detected = sum(DETECTED);
  const valid = detected + sum(UNDETECTED);
  if (valid === 0) throw new ReportError(`${what} has no valid mutants (killed, timeout, survived or no coverage)`);
  return { score: detected / valid, detected, valid, byStatus };
}

// ---------------------------------------------------------------------------------------------------------------------
// Test reports (JUnit XML)

export interface TestCase {
  name: string;
  classname: string;
  status: 'passed' | 'failed' | 'skipped';
}

export interface TestReading {
  /** Test cases that ran (passed or failed); skipped ones are not counted as run. */
  ran: number;
  passed: number;
  failed: number;
  skipped: number;
  cases: TestCase[];
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, code: string) => {
    if (code.startsWith('#x') || code.startsWith('#X')) return String.fromCodePoint(parseInt(code.slice(2), 16));
    if (code.startsWith('#')) return String.fromCodePoint(Number(code.slice(1)));
    return ENTITIES[code] ?? whole;
  });
}

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of tag.matchAll(/([A-Za-z_:][\w:.-]*)\s*=\s*("([^"]*)"|'([^']*)')/g)) {
    out[m[1]!] = unescapeXml(m[3] ?? m[4] ?? '');
  }
  return out;
}

/**
 * A JUnit XML report (the format of `node --test --test-reporter=junit`, vitest, jest-junit, pytest --junitxml, go-junit-report):
 * every `<testcase>`, failed when it has a `<failure>` or `<error>` child (or node's `failure` attribute), skipped when
 * it has `<skipped>`. Comments and CDATA sections are removed first, so test output never counts as a test case.
 */
export function parseJUnit(xml: string): TestReading {
  const what = 'the test report';
  const text = xml.replace(/<!--[\s\S]*?-->/g, '').replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '');
  if (!/<testsuites?[\s>/]/.test(text))
    throw new ReportError(`${what} is not JUnit XML (no <testsuites> or <testsuite>)`);
  const cases: TestCase[] = [];
  const re = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase\s*>)/g;
  for (const m of text.matchAll(re)) {
    const attrs = attributes(m[1] ?? '');
    const body = m[3] ?? '';
    const failed = /<(failure|error)\b/.test(body) || attrs.failure !== undefined || attrs.error !== undefined;
    const skipped = !failed && /<skipped\b/.test(body);
    cases.push({
      name: attrs.name ?? '',
      classname: attrs.classname ?? '',
      status: failed ? 'failed' : skipped ? 'skipped' : 'passed',
    });
  }
  const count = (s: TestCase['status']) => cases.filter((c) => c.status === s).length;
  const passed = count('passed');
  const failed = count('failed');
  return { ran: passed + failed, passed, failed, skipped: count('skipped'), cases };
}

/** True when `text` names the acceptance id as a token of its own (A1 is not A10 nor XA1). */
export function namesCriterion(text: string, id: string): boolean {
  const escaped = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^A-Za-z0-9])${escaped}(?![0-9A-Za-z])`).test(text);
}

export interface CriterionTests {
  id: string;
  passed: number;
  failed: number;
  skipped: number;
}

/**
 * The mapping of tests to acceptance criteria: a test case belongs to criterion `A1` when its name (or its suite's
 * classname) carries `A1` as a token of its own, for example `A1: average divides by the count` or
 * `average divides by the count [A1]`. A criterion is covered when at least one of its tests ran and passed and none
 * failed.
 */
export function criteriaTests(reading: TestReading, ids: readonly string[]): CriterionTests[] {
  return ids.map((id) => {
    const mine = reading.cases.filter((c) => namesCriterion(c.name, id) || namesCriterion(c.classname, id));
    const n = (s: TestCase['status']) => mine.filter((c) => c.status === s).length;
    return { id, passed: n('passed'), failed: n('failed'), skipped: n('skipped') };
  });
}

/** ESLint's JSON formatter (`eslint -f json -o <file>`): the files linted and the errors found. */
export function parseEslintJson(json: string): { files: number; errors: number; warnings: number } {
  const what = 'the lint report';
  const doc = parseJson(json, what);
  if (!Array.isArray(doc)) throw new ReportError(`${what} is not a list of file results`);
  let errors = 0;
  let warnings = 0;
  for (const [i, entry] of doc.entries()) {
    if (!isRecord(entry) || !isCount(entry.errorCount) || !isCount(entry.warningCount))
      throw new ReportError(`${what}: entry ${i} has no errorCount/warningCount`);
    errors += entry.errorCount; // fatal (parse) errors are counted in errorCount
    warnings += entry.warningCount;
  }
  if (doc.length === 0) throw new ReportError(`${what} lists no files: was anything linted?`);
  return { files: doc.length, errors, warnings };
}
