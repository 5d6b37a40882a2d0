/**
 * Reads a working-spec document (YAML, or JSON — JSON is read as the YAML flow subset it is) and validates it with
 * `parseWorkingSpec`. Syntax errors name the source, line and column; duplicate keys and multiple documents are
 * syntax errors too.
 */
import { LineCounter, parseDocument } from 'yaml';
import { parseWorkingSpec, type ParseWorkingSpecResult } from '../../workflows/task/spec.js';

export class SpecSyntaxError extends Error {
  override readonly name = 'SpecSyntaxError';
  constructor(
    readonly source: string,
    /** 1-based; undefined when the problem has no position (too many aliases, say). */
    readonly line: number | undefined,
    readonly column: number | undefined,
    readonly detail: string,
  ) {
    super(
      line === undefined
        ? `${source}: not valid YAML or JSON: ${detail}`
        : `${source}, line ${line}, column ${column}: not valid YAML or JSON: ${detail}`,
    );
  }
}

/** Aliases expand on conversion; bound them so that a small document cannot expand into a huge one. */
const MAX_ALIAS_COUNT = 100;

/** Parses YAML or JSON text into plain data; throws `SpecSyntaxError` with the position of the first error. */
export function parseSpecDocument(text: string, source: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const [first] = doc.errors;
  if (first) {
    const { line, col } = lineCounter.linePos(first.pos[0]);
    const detail =
      first.code === 'MULTIPLE_DOCS' ? 'a spec holds one document; this text has more than one' : first.message;
    throw new SpecSyntaxError(source, line, col, detail);
  }
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) as unknown;
  } catch (err) {
    throw new SpecSyntaxError(source, undefined, undefined, (err as Error).message);
  }
}

/**
 * Parses and validates a spec document. Syntax errors come back as a single error (the `SpecSyntaxError` message, with
 * source, line and column) so callers handle one result shape.
 */
export function loadWorkingSpec(
  text: string,
  source: string,
  opts: { strict?: boolean; now: string },
): ParseWorkingSpecResult {
  let raw: unknown;
  try {
    raw = parseSpecDocument(text, source);
  } catch (err) {
    if (err instanceof SpecSyntaxError) return { ok: false, errors: [err.message], warnings: [] };
    throw err;
  }
  return parseWorkingSpec(raw, opts);
}
