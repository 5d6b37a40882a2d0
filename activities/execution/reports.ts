/**
 * Parsers for the reports that coverage and mutation gates produce: Istanbul's coverage-summary.json, LCOV and Stryker's
 * mutation.json. Pure: text in, a fraction out, a `ReportError` saying what is wrong for malformed or empty input (an
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
