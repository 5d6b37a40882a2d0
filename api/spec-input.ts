/** Checks a working spec submitted as an object or as YAML/JSON text; a bad spec is a 400 with every message. */
import { parseSpecDocument, SpecSyntaxError } from '../activities/planning/spec-loader.js';
import { parseWorkingSpec, type WorkingSpec } from '../workflows/task/spec.js';
import { HttpProblem } from './errors.js';

export function checkSpec(
  input: string | Record<string, unknown>,
  strict: boolean,
): { spec: WorkingSpec; warnings: string[] } {
  let raw: unknown = input;
  if (typeof input === 'string') {
    try {
      raw = parseSpecDocument(input, 'spec');
    } catch (err) {
      if (err instanceof SpecSyntaxError) {
        throw new HttpProblem(400, 'Bad Request', err.message, {
          issues: [{ path: 'spec', code: 'syntax', message: err.message }],
        });
      }
      throw err;
    }
  }
  const parsed = parseWorkingSpec(raw, { strict, now: new Date().toISOString() });
  if (!parsed.ok) {
    throw new HttpProblem(400, 'Bad Request', `the working spec is invalid: ${parsed.errors.join('; ')}`, {
      issues: parsed.errors.map((message) => ({ path: `spec.${message.split(':')[0]}`, code: 'spec', message })),
      warnings: parsed.warnings,
    });
  }
  return { spec: parsed.spec, warnings: parsed.warnings };
}
