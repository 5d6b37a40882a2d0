/**
 * A worker process's GET /metrics (WORKER_METRICS_HOST:WORKER_METRICS_PORT): the process registry (common/metrics.ts:
 * council, tasks, risk, audit, circuit breakers, recovery attempts, Node process metrics) followed by the Temporal SDK's
 * own metrics, read at scrape time from the SDK's Prometheus exporter on loopback (workers/runtime.ts).
 *
 * Merged rather than scraped separately: one target per pod, the SDK exporter never leaves the pod, and the two sets
 * cannot collide (the SDK's names all start with temporal_). When the SDK exporter does not answer, the scrape still
 * succeeds with the process metrics and says so in a comment.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../common/logger.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from '../common/metrics.js';

export interface WorkerMetricsOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** The SDK exporter's metrics URL (http://127.0.0.1:<WORKER_SDK_METRICS_PORT>/metrics), if it runs. */
  sdkMetricsUrl?: string;
  log: Logger;
}

export interface WorkerMetricsServer {
  /** http://host:port/metrics */
  url: string;
  close(): Promise<void>;
}

const SDK_SCRAPE_TIMEOUT_MS = 2_000;

/**
 * The Temporal SDK metrics deploy/monitoring relies on, with their labels (besides job/instance from the scrape).
 * Histograms (`histogram: true`) come as _bucket/_sum/_count, in seconds. A counter is exported without _total.
 * test/unit/monitoring.test.ts checks the rules and the dashboard against this list, and test/api/observability.test.ts
 * checks the list against a real worker's scrape (`onFailure` ones appear only once a request has failed).
 */
export const TEMPORAL_SDK_METRICS: Readonly<
  Record<string, { labels: readonly string[]; histogram?: boolean; onFailure?: boolean }>
> = {
  temporal_worker_task_slots_available: { labels: ['namespace', 'service_name', 'task_queue', 'worker_type'] },
  temporal_worker_task_slots_used: { labels: ['namespace', 'service_name', 'task_queue', 'worker_type'] },
  temporal_activity_schedule_to_start_latency: {
    labels: ['namespace', 'service_name', 'task_queue'],
    histogram: true,
  },
  temporal_workflow_task_schedule_to_start_latency: {
    labels: ['namespace', 'service_name', 'task_queue'],
    histogram: true,
  },
  temporal_activity_execution_latency: {
    labels: ['namespace', 'service_name', 'task_queue', 'activity_type', 'workflow_type'],
    histogram: true,
  },
  temporal_request: { labels: ['namespace', 'service_name', 'operation'] },
  temporal_request_failure: { labels: ['namespace', 'service_name', 'operation', 'status_code'], onFailure: true },
  temporal_num_pollers: { labels: ['namespace', 'service_name', 'task_queue', 'poller_type'] },
};

/** The process metrics and, when given, the SDK's, as one exposition. */
export async function workerMetricsText(sdkMetricsUrl?: string): Promise<string> {
  const own = await renderMetrics();
  if (!sdkMetricsUrl) return own;
  let sdk: string;
  try {
    const res = await fetch(sdkMetricsUrl, { signal: AbortSignal.timeout(SDK_SCRAPE_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    sdk = await res.text();
  } catch (err) {
    sdk = `# Temporal SDK metrics unavailable: ${(err as Error).message.replace(/\s+/g, ' ')}\n`;
  }
  return `${own.endsWith('\n') ? own : `${own}\n`}${sdk.endsWith('\n') ? sdk : `${sdk}\n`}`;
}

export async function startWorkerMetricsServer(options: WorkerMetricsOptions): Promise<WorkerMetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: GET /metrics\n');
      return;
    }
    workerMetricsText(options.sdkMetricsUrl).then(
      (text) => res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE }).end(text),
      (err: unknown) => {
        options.log.error({ err }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
