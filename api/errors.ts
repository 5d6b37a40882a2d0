/**
 * One error shape for the whole API: RFC 9457 problem+json. Route code throws HttpProblem (or lets a ZodError
 * through); the error middleware maps everything here, and anything unexpected becomes a 500 without internals.
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ZodError, type z } from 'zod';
import type { Logger } from '../common/logger.js';

export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail?: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ?? title);
    this.name = 'HttpProblem';
  }
}

export const notFound = (detail: string): HttpProblem => new HttpProblem(404, 'Not Found', detail);
export const conflict = (detail: string, extra: Record<string, unknown> = {}): HttpProblem =>
  new HttpProblem(409, 'Conflict', detail, extra);
export const unavailable = (detail: string): HttpProblem =>
  new HttpProblem(503, 'Service Unavailable', detail, {}, { 'Retry-After': '5' });

const slug = (title: string): string => title.toLowerCase().replace(/[^a-z0-9]+/g, '-');

function send(res: Parameters<ErrorRequestHandler>[2], instance: string, problem: HttpProblem): void {
  for (const [name, value] of Object.entries(problem.headers)) res.setHeader(name, value);
  res
    .status(problem.status)
    .type('application/problem+json')
    .json({
      type: `https://agent-agency.dev/problems/${slug(problem.title)}`,
      title: problem.title,
      status: problem.status,
      ...(problem.detail ? { detail: problem.detail } : {}),
      instance,
      ...problem.extra,
    });
}

export function validationProblem(err: ZodError, where: 'body' | 'params' | 'query' = 'body'): HttpProblem {
  const issues = err.issues.map((i) => ({ path: i.path.map(String).join('.'), code: i.code, message: i.message }));
  return new HttpProblem(
    400,
    'Bad Request',
    `the request ${where} is invalid: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`,
    { issues },
  );
}

/**
 * The one way the API validates what a request brings: the schema's output, or a 400 problem listing every issue and
 * where it is (body, query or params). An absent value (no body) is validated as an empty object.
 */
export function validate<T>(schema: z.ZodType<T>, value: unknown, where: 'body' | 'params' | 'query' = 'body'): T {
  const parsed = schema.safeParse(value ?? {});
  if (!parsed.success) throw validationProblem(parsed.error, where);
  return parsed.data;
}

export const notFoundRoute: RequestHandler = (req) => {
  throw new HttpProblem(404, 'Not Found', `no route for ${req.method} ${req.path}`);
};

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    let problem: HttpProblem;
    if (err instanceof HttpProblem) problem = err;
    else if (err instanceof ZodError) problem = validationProblem(err);
    else if (err instanceof URIError) {
      // Express's router decodes path parameters with decodeURIComponent; `%ff` or a lone `%` throws here, once,
      // for every route (and for any other decode of what the client sent).
      problem = new HttpProblem(400, 'Bad Request', 'the request path is not valid percent-encoded UTF-8');
    } else if (isBodyParserError(err)) {
      problem =
        err.type === 'entity.too.large'
          ? new HttpProblem(413, 'Content Too Large', `the request body exceeds ${err.limit} bytes`)
          : new HttpProblem(
              err.status,
              'Bad Request',
              err.type === 'entity.parse.failed' ? 'the request body is not valid JSON' : err.message,
            );
    } else {
      log.error({ err, path: req.path, correlationId: res.locals.correlationId }, 'unhandled error');
      problem = new HttpProblem(500, 'Internal Server Error', 'an unexpected error occurred; it has been logged');
    }
    if (res.headersSent) return;
    send(res, req.originalUrl, problem);
  };
}

function isBodyParserError(err: unknown): err is { type: string; status: number; message: string; limit?: number } {
  return (
    typeof err === 'object' &&
    err !== null &&
    'type' in err &&
    'status' in err &&
    typeof (err as { status: unknown }).status === 'number'
  );
}
