/**
 * The Temporal SDK runtime of a worker process: SDK and activity logs go through pino as structured JSON, and, when
 * asked, the SDK's own metrics (task slots, schedule-to-start latency, polls, failures…) are exported in Prometheus
 * format on a loopback address that workers/metrics-server.ts merges into the process's GET /metrics.
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

export interface SdkMetricsOptions {
  /** host:port for the SDK's Prometheus exporter (its GET /metrics), e.g. 127.0.0.1:9465. */
  bindAddress: string;
}

/**
 * Installs the runtime once per process. Returns whether the SDK metrics exporter runs: when its address is taken,
 * the runtime is installed without it (the worker runs; its SDK metrics are missing) and the error is logged.
 */
export function installRuntime(log: Logger, level: LogLevel = 'WARN', metrics?: SdkMetricsOptions): boolean {
  if (installed) return false;
  installed = true;
  const logger = new DefaultLogger(level, (entry) => {
    const meta: LogMetadata = entry.meta ?? {};
    log[LEVELS[entry.level]]({ ...meta, sdk: true }, entry.message);
  });
  if (metrics) {
    try {
      // Durations in seconds, as Prometheus conventions (and deploy/monitoring) expect.
      Runtime.install({
        logger,
        telemetryOptions: {
          metrics: { prometheus: { bindAddress: metrics.bindAddress, useSecondsForDurations: true } },
        },
      });
      return true;
    } catch (err) {
      log.error({ err, bindAddress: metrics.bindAddress }, 'Temporal SDK metrics exporter did not start');
    }
  }
  Runtime.install({ logger });
  return false;
}
