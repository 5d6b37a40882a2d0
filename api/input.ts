/**
 * What every request's path, query string and JSON body must be before any route sees it, checked once for all
 * routes (app.ts mounts inputGuard after the JSON body parser): a 400 problem+json, never a 500 from deeper down.
 *
 * - The path must be valid percent-encoded UTF-8: Express's router decodes path parameters with decodeURIComponent,
 *   which throws on `%ff`, a lone `%` or a cut multi-byte sequence (errors.ts also maps that URIError to 400).
 * - No text anywhere (path, query values and keys, body strings and keys) may hold U+0000 or a lone UTF-16 surrogate:
 *   PostgreSQL's text and jsonb cannot store either (`invalid byte sequence for encoding "UTF8": 0x00`,
 *   `unsupported Unicode escape sequence`), and no route has a use for them.
 *
 * What it does not do: check what a value means (that is each route's zod schema, through validate()), or limit sizes
 * beyond API_BODY_LIMIT and the schemas' own bounds.
 */
import type { RequestHandler } from 'express';
import { z } from 'zod';
import { HttpProblem } from './errors.js';

/** A surrogate that is not half of a pair. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const unstorable = (s: string): boolean => s.includes('\u0000') || LONE_SURROGATE.test(s);

function badText(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return unstorable(value);
  if (depth > 64 || typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) return value.some((v) => badText(v, depth + 1));
  return Object.entries(value).some(([k, v]) => unstorable(k) || badText(v, depth + 1));
}

const problem = (where: 'path' | 'query' | 'body', detail: string): HttpProblem =>
  new HttpProblem(400, 'Bad Request', `the request ${where} is invalid: ${detail}`, {
    issues: [{ path: where, code: 'invalid_text', message: detail }],
  });

const NO_NUL = 'text may not contain U+0000 or a lone UTF-16 surrogate';

export const inputGuard: RequestHandler = (req, _res, next) => {
  let path: string;
  try {
    path = decodeURIComponent(req.path);
  } catch {
    throw problem('path', 'not valid percent-encoded UTF-8');
  }
  if (badText(path)) throw problem('path', NO_NUL);
  if (badText(req.query)) throw problem('query', NO_NUL);
  if (badText(req.body)) throw problem('body', NO_NUL);
  next();
};

/**
 * An ISO 8601 date-time with an offset that PostgreSQL's timestamptz can hold: zod's datetime takes the year 0000,
 * which PostgreSQL refuses (`date/time field value out of range`).
 */
export const Timestamp = z.iso
  .datetime({ offset: true })
  .refine((s) => !s.startsWith('0000-'), 'the year 0000 does not exist (1 BC is the year before 0001)');
