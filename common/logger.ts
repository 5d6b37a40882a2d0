/** Structured JSON logs (pino). Child loggers carry component and correlation ids. */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * A JSON logger. `destination` replaces stdout (tests capture lines with it); API keys and tokens that reach a log
 * line through request headers are redacted.
 */
export function createLogger(
  level: string,
  bindings: Record<string, unknown> = {},
  destination?: DestinationStream,
): Logger {
  const options = {
    level,
    base: { service: 'agent-agency', ...bindings },
    redact: {
      paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie', 'headers.authorization'],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
