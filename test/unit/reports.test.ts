import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  criteriaTests,
  namesCriterion,
  parseEslintJson,
  parseIstanbulSummary,
  parseJUnit,
  parseLcov,
  parseStrykerReport,
  ReportError,
} from '../../activities/execution/reports.js';

/** What `vitest --coverage.reporter=json-summary` (Istanbul's json-summary) writes, trimmed to one file. */
const ISTANBUL_SUMMARY = JSON.stringify({
  total: {
    lines: { total: 200, covered: 180, skipped: 0, pct: 90 },
    statements: { total: 210, covered: 187, skipped: 0, pct: 89.04 },
    functions: { total: 30, covered: 27, skipped: 0, pct: 90 },
    branches: { total: 1000, covered: 899, skipped: 0, pct: 89.9 },
    branchesTrue: { total: 0, covered: 0, skipped: 0, pct: 100 },
  },
  '/repo/src/greet.ts': {
    lines: { total: 200, covered: 180, skipped: 0, pct: 90 },
    functions: { total: 30, covered: 27, skipped: 0, pct: 90 },
    statements: { total: 210, covered: 187, skipped: 0, pct: 89.04 },
    branches: { total: 1000, covered: 899, skipped: 0, pct: 89.9 },
  },
});

const LCOV = `TN:
SF:src/greet.ts
FN:1,greet
FNF:1
FNH:1
FNDA:3,greet
DA:1,3
DA:2,3
DA:3,0
LF:3
LH:2
BRDA:2,0,0,3
BRDA:2,0,1,0
BRF:2
BRH:1
end_of_record
TN:
SF:src/farewell.ts
DA:1,1
DA:2,1
LF:2
LH:2
BRDA:1,0,0,1
BRDA:1,0,1,1
BRF:2
BRH:2
end_of_record
`;

function mutant(id: number, status: string) {
  return {
    id: String(id),
    mutatorName: 'ConditionalExpression',
    replacement: 'false',
    location: { start: { line: id, column: 1 }, end: { line: id, column: 9 } },
    status,
  };
}

/** A Stryker mutation.json (mutation-testing-report-schema v1) with every status. */
const STRYKER = JSON.stringify({
  schemaVersion: '1',
  thresholds: { high: 80, low: 60 },
  projectRoot: '/repo',
  files: {
    'src/greet.ts': {
      language: 'typescript',
      source: 'export const greet = (n: string) => (n ? `Hello ${n}` : "Hello");\n',
      mutants: [
        mutant(1, 'Killed'),
        mutant(2, 'Killed'),
        mutant(3, 'Timeout'),
        mutant(4, 'Survived'),
        mutant(5, 'NoCoverage'),
        mutant(6, 'CompileError'),
        mutant(7, 'RuntimeError'),
        mutant(8, 'Ignored'),
      ],
    },
    'src/farewell.ts': { language: 'typescript', source: '', mutants: [mutant(9, 'Killed'), mutant(10, 'Survived')] },
  },
});

describe('Istanbul coverage summary', () => {
  it('when the summary has branch counts, then branch coverage comes from the counts, not the rounded pct', () => {
    const reading = parseIstanbulSummary(ISTANBUL_SUMMARY);
    expect(reading.value).toBe(0.899);
    expect(reading.basis).toBe('branches');
    expect(reading.lines).toEqual({ covered: 180, total: 200 });
    expect(reading.note).toBeUndefined();
  });

  it('when counts are absent, then pct is the fallback', () => {
    const doc = { total: { branches: { pct: 75.5 }, lines: { pct: 80 } } };
    expect(parseIstanbulSummary(JSON.stringify(doc)).value).toBeCloseTo(0.755, 10);
  });

  it('when the code has no branches, then line coverage is used and the note says so', () => {
    const doc = {
      total: {
        lines: { total: 10, covered: 9, pct: 90 },
        branches: { total: 0, covered: 0, pct: 'Unknown' },
      },
    };
    const reading = parseIstanbulSummary(JSON.stringify(doc));
    expect(reading).toMatchObject({ value: 0.9, basis: 'lines' });
    expect(reading.note).toBe('the coverage summary has no branch data; line coverage used instead');
  });

  it('when nothing was instrumented, then it is an error rather than a perfect score', () => {
    const empty = {
      total: { lines: { total: 0, covered: 0, pct: 100 }, branches: { total: 0, covered: 0, pct: 100 } },
    };
    expect(() => parseIstanbulSummary(JSON.stringify(empty))).toThrow(/covers no lines and no branches/);
  });

  it('when the input is malformed, then the error says what is wrong', () => {
    expect(() => parseIstanbulSummary('{"total": ')).toThrow(ReportError);
    expect(() => parseIstanbulSummary('{"total": ')).toThrow(/not valid JSON/);
    expect(() => parseIstanbulSummary('[]')).toThrow('the coverage summary has no "total" object');
    expect(() => parseIstanbulSummary('{"total": {"lines": {"total": 1, "covered": 1}}}')).toThrow(
      'the coverage summary has no total.branches object',
    );
    expect(() =>
      parseIstanbulSummary('{"total": {"branches": {"total": 2, "covered": 3}, "lines": {"total": 1, "covered": 1}}}'),
    ).toThrow('the coverage summary: total.branches.covered (3) exceeds total (2)');
    expect(() => parseIstanbulSummary('{"total": {"branches": {"pct": "Unknown"}, "lines": {"pct": 5}}}')).toThrow(
      /neither covered\/total counts nor a pct/,
    );
  });
});

describe('LCOV', () => {
  it('when records carry BRF/BRH, then branch coverage is summed over records', () => {
    const reading = parseLcov(LCOV);
    expect(reading).toEqual({
      value: 0.75,
      basis: 'branches',
      branches: { covered: 3, total: 4 },
      lines: { covered: 4, total: 5 },
    });
  });

  it('when there is no branch data, then line coverage is used and the note says so', () => {
    const text = 'SF:a.ts\nDA:1,1\nDA:2,0\nLF:2\nLH:1\nend_of_record\n';
    const reading = parseLcov(text);
    expect(reading).toMatchObject({ value: 0.5, basis: 'lines' });
    expect(reading.note).toBe('the LCOV report has no branch data; line coverage used instead');
  });

  it('when summary lines are absent, then DA and BRDA lines are counted instead', () => {
    const text = 'SF:a.ts\r\nDA:1,1\r\nDA:2,0\r\nBRDA:1,0,0,2\r\nBRDA:1,0,1,-\r\nBRDA:1,0,2,0\r\nend_of_record\r\n';
    expect(parseLcov(text)).toMatchObject({ basis: 'branches', branches: { covered: 1, total: 3 } });
  });

  it('when the report is malformed, then the error gives the line', () => {
    expect(() => parseLcov('SF:a.ts\nBRF:two\nend_of_record\n')).toThrow(
      'the LCOV report, line 2: BRF is not a count: "two"',
    );
    expect(() => parseLcov('SF:a.ts\nthis is not lcov\n')).toThrow(/line 2: not an LCOV line/);
    expect(() => parseLcov('SF:a.ts\nLF:3\nLH:2\n')).toThrow(/no end_of_record/);
    expect(() => parseLcov('SF:a.ts\nLF:1\nLH:2\nend_of_record\n')).toThrow(/LH 2 > LF 1/);
    expect(() => parseLcov('end_of_record\n')).toThrow(/end_of_record without a record/);
    expect(() => parseLcov('')).toThrow('the LCOV report has no records');
    expect(() => parseLcov('SF:a.ts\nLF:0\nLH:0\nend_of_record\n')).toThrow(/covers no lines/);
  });

  it('when given arbitrary text, then it returns a fraction or throws a ReportError, nothing else', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        try {
          const { value } = parseLcov(text);
          return value >= 0 && value <= 1;
        } catch (err) {
          return err instanceof ReportError;
        }
      }),
    );
  });
});

describe('Stryker mutation report', () => {
  it('when the report has every status, then the score is (Killed + Timeout) / (those + Survived + NoCoverage)', () => {
    const reading = parseStrykerReport(STRYKER);
    // detected: 3 Killed + 1 Timeout = 4; valid: 4 + 2 Survived + 1 NoCoverage = 7.
    expect(reading.detected).toBe(4);
    expect(reading.valid).toBe(7);
    expect(reading.score).toBeCloseTo(4 / 7, 12);
    expect(reading.byStatus).toEqual({
      Killed: 3,
      Timeout: 1,
      Survived: 2,
      NoCoverage: 1,
      CompileError: 1,
      RuntimeError: 1,
      Ignored: 1,
    });
  });

  it('when no mutant is valid, then it is an error rather than a score', () => {
    const doc = { schemaVersion: '1', files: { 'a.ts': { mutants: [mutant(1, 'CompileError')] } } };
    expect(() => parseStrykerReport(JSON.stringify(doc))).toThrow(/no valid mutants/);
  });

  it('when mutants are still pending, then the report counts as incomplete', () => {
    const doc = { files: { 'a.ts': { mutants: [mutant(1, 'Killed'), mutant(2, 'Pending')] } } };
    expect(() => parseStrykerReport(JSON.stringify(doc))).toThrow(
      'the mutation report is incomplete: 1 mutant(s) still Pending',
    );
  });

  it('when the report is malformed, then the error names the place', () => {
    expect(() => parseStrykerReport('not json')).toThrow(/the mutation report is not valid JSON/);
    expect(() => parseStrykerReport('{}')).toThrow('the mutation report has no "files" object');
    expect(() => parseStrykerReport('{"files": {"a.ts": {}}}')).toThrow(
      'the mutation report: files["a.ts"] has no "mutants" list',
    );
    expect(() => parseStrykerReport('{"files": {"a.ts": {"mutants": [{"status": "Eaten"}]}}}')).toThrow(
      'the mutation report: files["a.ts"].mutants[0] has an unknown status "Eaten"',
    );
  });
});

/** What `node --test --test-reporter=junit` writes (trimmed), with a failure, a skip and output in CDATA. */
const NODE_JUNIT = `<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testcase name="sum adds every value" time="0.001" classname="test"/>
  <testcase name="A1: average divides the sum by the number of values" time="0.002" classname="test"/>
  <testcase name="A2: average of nothing is an error &amp; says so" time="0.003" classname="test" failure="boom">
    <failure type="testCodeFailure" message="boom"><![CDATA[<testcase name="A2: not a test"/>]]></failure>
  </testcase>
  <testcase name="A10 later" classname="test"><skipped/></testcase>
  <!-- <testcase name="A1: commented out"/> -->
</testsuites>`;

describe('JUnit test reports', () => {
  it('when the report has passing, failing and skipped cases, then each is counted once, output and comments aside', () => {
    const r = parseJUnit(NODE_JUNIT);
    expect({ ran: r.ran, passed: r.passed, failed: r.failed, skipped: r.skipped }).toEqual({
      ran: 3,
      passed: 2,
      failed: 1,
      skipped: 1,
    });
    expect(r.cases[2]).toEqual({
      name: 'A2: average of nothing is an error & says so',
      classname: 'test',
      status: 'failed',
    });
  });

  it('when no test case ran, then the reading says 0 ran (the gate fails on it); a file that is not JUnit is an error', () => {
    expect(parseJUnit('<testsuites>\n<!-- tests 0 -->\n</testsuites>')).toMatchObject({ ran: 0, cases: [] });
    expect(() => parseJUnit('{"tests": 3}')).toThrow(ReportError);
    expect(() => parseJUnit('')).toThrow(/not JUnit XML/);
  });

  it('when tests carry a criterion id in their name, then they map to it: A1 is not A10, and a failure counts against it', () => {
    const r = parseJUnit(NODE_JUNIT);
    expect(criteriaTests(r, ['A1', 'A2', 'A10', 'A3'])).toEqual([
      { id: 'A1', passed: 1, failed: 0, skipped: 0 },
      { id: 'A2', passed: 0, failed: 1, skipped: 0 },
      { id: 'A10', passed: 0, failed: 0, skipped: 1 },
      { id: 'A3', passed: 0, failed: 0, skipped: 0 },
    ]);
    expect(namesCriterion('[A1] average', 'A1')).toBe(true);
    expect(namesCriterion('XA1 average', 'A1')).toBe(false);
    expect(namesCriterion('A1b average', 'A1')).toBe(false);
  });
});

describe('ESLint JSON reports', () => {
  it('when files were linted, then errors decide; an empty list is an error, not a clean lint', () => {
    const doc = [
      { filePath: '/w/a.js', errorCount: 0, warningCount: 2, messages: [] },
      { filePath: '/w/b.js', errorCount: 1, fatalErrorCount: 1, warningCount: 0, messages: [] },
    ];
    expect(parseEslintJson(JSON.stringify(doc))).toEqual({ files: 2, errors: 1, warnings: 2 });
    expect(() => parseEslintJson('[]')).toThrow(/lists no files/);
    expect(() => parseEslintJson('[{"filePath": "x"}]')).toThrow(/errorCount/);
  });
});
