/**
 * The Temporal SDK runtime of a worker process: SDK and activity logs go through pino as structured JSON.
 * Must run before the first NativeConnection or Worker is created; later calls are ignored.
 */
import { DefaultLogger, Runtime, type LogLevel, type LogMetadata } from '@temporalio/worker';
import type { Logger } from '../common/logger.js';

const LEVELS: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

let installed = false;

export function installRuntime(log: Logger, level: LogLevel = 'WARN'): void {
  if (installed) return;
  installed = true;
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => {
      const meta: LogMetadata = entry.meta ?? {};
      log[LEVELS[entry.level]]({ ...meta, sdk: true }, entry.message);
    }),
  });
}
