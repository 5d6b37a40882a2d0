/**
 * One JSON log line per request (pino-http), carrying the request's correlation id (set by app.ts's correlationId
 * middleware, which must run first), the route template, status and duration. The same id travels into the task's
 * workflow (AgentTaskInput.correlationId) and every activity's log lines (activities/logging.ts).
 *
 * No headers are logged: they carry API keys and tokens. Probes and scrapes log at debug, 4xx at warn, 5xx at error.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, RequestHandler, Response } from 'express';
import { pinoHttp } from 'pino-http';
import type { Logger } from '../common/logger.js';
import { redactCodecDevPath } from './routes/codec.js';
import { routeTemplateOf } from './routes/metrics.js';

const QUIET_PATHS = /^\/(health(\/|$)|metrics$)/;

export function requestLog(log: Logger): RequestHandler {
  const correlationIdOf = (res: ServerResponse): string | undefined =>
    (res as Response).locals?.correlationId as string | undefined;
  return pinoHttp({
    logger: log,
    genReqId: (_req, res) => correlationIdOf(res) ?? 'none',
    customProps: (_req, res) => ({ correlationId: correlationIdOf(res) }),
    wrapSerializers: false,
    serializers: {
      // The dev session's codec path carries its credential (api/routes/codec.ts): never logged.
      req: (req: IncomingMessage) => ({
        method: req.method,
        url: redactCodecDevPath((req as Request).originalUrl ?? req.url ?? ''),
      }),
      res: (res: ServerResponse) => ({ statusCode: res.statusCode }),
    },
    customLogLevel: (req, res, err) => {
      if (err || res.statusCode >= 500) return 'error';
      if (res.statusCode >= 400) return 'warn';
      return QUIET_PATHS.test((req as Request).path ?? req.url ?? '') ? 'debug' : 'info';
    },
    customSuccessObject: (req, res, value: Record<string, unknown>) => ({
      ...value,
      route: routeTemplateOf(req as Request, res as Response),
    }),
    customErrorObject: (req, res, _err, value: Record<string, unknown>) => ({
      ...value,
      route: routeTemplateOf(req as Request, res as Response),
    }),
  });
}
