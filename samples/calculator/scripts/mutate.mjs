// A small mutation tester for this sample: each mutant changes one operator in src/, the tests run against it, and
// a mutant the tests notice (they fail) is killed. Writes a Stryker mutation.json (mutation-testing-report-schema) to
// the path given as the first argument. The source is restored after every mutant.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const OPERATORS = [
  [' + ', ' - '],
  [' - ', ' + '],
  [' / ', ' * '],
  [' * ', ' / '],
  [' === ', ' !== '],
  [' !== ', ' === '],
];

const out = process.argv[2];
if (!out) throw new Error('usage: node scripts/mutate.mjs <report.json>');
const files = {};
for (const name of readdirSync('src').filter((f) => f.endsWith('.js'))) {
  const file = path.join('src', name);
  const source = readFileSync(file, 'utf8');
  const mutants = [];
  try {
    for (const [from, to] of OPERATORS) {
      for (let at = source.indexOf(from); at !== -1; at = source.indexOf(from, at + 1)) {
        writeFileSync(file, source.slice(0, at) + to + source.slice(at + from.length));
        const tests = spawnSync(process.execPath, ['--test'], { stdio: 'ignore', timeout: 30_000 });
        const before = source.slice(0, at).split('\n');
        const start = { line: before.length, column: before.at(-1).length + 1 };
        mutants.push({
          id: String(mutants.length + 1),
          mutatorName: `${from.trim()} -> ${to.trim()}`,
          replacement: to.trim(),
          location: { start, end: { line: start.line, column: start.column + from.length } },
          status: tests.error ? 'Timeout' : tests.status === 0 ? 'Survived' : 'Killed',
        });
      }
    }
  } finally {
    writeFileSync(file, source);
  }
  files[file] = { language: 'javascript', source, mutants };
}
writeFileSync(out, JSON.stringify({ schemaVersion: '1', thresholds: { high: 80, low: 60 }, files }, null, 2));
const all = Object.values(files).flatMap((f) => f.mutants);
console.log(`${all.filter((m) => m.status !== 'Survived').length}/${all.length} mutants killed`);
