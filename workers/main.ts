/**
 * The worker entry. Runs the pools named in WORKER_QUEUES (or --queues a,b), all of them by default (the dev entry):
 *
 *   tsx workers/main.ts                       every pool in one process
 *   tsx workers/main.ts --queues execution    one pool (agency-execution) per process, as in production
 *   node dist/workers/main.js                 compiled (`npm run build`), as the image runs it
 *
 * SIGINT/SIGTERM: the SDK stops polling, lets in-flight activities finish within WORKER_SHUTDOWN_GRACE, then exits.
 * Metrics: GET /metrics on WORKER_METRICS_HOST:WORKER_METRICS_PORT (workers/metrics-server.ts), with the Temporal
 * SDK's metrics merged in from its exporter on 127.0.0.1:WORKER_SDK_METRICS_PORT.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NativeConnection } from '@temporalio/worker';
import { loadConfigOrExit } from '../common/config.js';
import { createDb } from '../common/db.js';
import { createLogger } from '../common/logger.js';
import { enableDefaultMetrics } from '../common/metrics.js';
import { OrtThread } from '../activities/inference/index.js';
import { startServing } from '../activities/inference/serving/index.js';
import { closeToolClients } from '../activities/execution/index.js';
import { connectionOptions } from '../temporal/connection.js';
import { startWorkerMetricsServer, type WorkerMetricsServer } from './metrics-server.js';
import { createPoolWorkers } from './pools.js';
import { installRuntime } from './runtime.js';

const argQueues = process.argv.indexOf('--queues');
const env = argQueues > 0 ? { ...process.env, WORKER_QUEUES: process.argv[argQueues + 1] } : process.env;
// Compiled (dist/workers/main.js): workflows/index.ts is not beside it to bundle at start, so the orchestration pool
// loads the bundle `npm run build` wrote (dist/workflow-bundle.js) unless WORKFLOW_BUNDLE_PATH names another.
const compiledBundle = import.meta.url.endsWith('.js')
  ? fileURLToPath(new URL('../workflow-bundle.js', import.meta.url))
  : undefined;
if (compiledBundle && !env.WORKFLOW_BUNDLE_PATH && existsSync(compiledBundle)) {
  env.WORKFLOW_BUNDLE_PATH = compiledBundle;
}
const config = loadConfigOrExit(env);
const log = createLogger(config.LOG_LEVEL, { component: 'worker' });
if (compiledBundle && !config.WORKFLOW_BUNDLE_PATH && config.WORKER_QUEUES.includes('orchestration')) {
  log.fatal(`no workflow bundle at ${compiledBundle}: run \`npm run build\`, or set WORKFLOW_BUNDLE_PATH`);
  process.exit(78);
}

const sdkMetricsAddress =
  config.WORKER_METRICS_PORT && config.WORKER_SDK_METRICS_PORT
    ? `127.0.0.1:${config.WORKER_SDK_METRICS_PORT}`
    : undefined;
const sdkMetrics = installRuntime(
  log,
  config.LOG_LEVEL === 'debug' || config.LOG_LEVEL === 'trace' ? 'DEBUG' : 'WARN',
  sdkMetricsAddress ? { bindAddress: sdkMetricsAddress } : undefined,
);
enableDefaultMetrics();
let metricsServer: WorkerMetricsServer | undefined;
if (config.WORKER_METRICS_PORT) {
  // A taken port costs the metrics, not the worker.
  metricsServer = await startWorkerMetricsServer({
    host: config.WORKER_METRICS_HOST,
    port: config.WORKER_METRICS_PORT,
    sdkMetricsUrl: sdkMetrics ? `http://${sdkMetricsAddress}/metrics` : undefined,
    log,
  }).catch((err: unknown) => {
    log.error({ err, port: config.WORKER_METRICS_PORT }, 'worker metrics server did not start');
    return undefined;
  });
  if (metricsServer) log.info({ url: metricsServer.url, sdkMetrics }, 'worker metrics');
}
const connection = await NativeConnection.connect(await connectionOptions(config));
const db = createDb(config.DATABASE_URL, config.DATABASE_POOL_MAX);
const ort = new OrtThread();
// The inference pool serves predictions (activities/inference/serving): warm sessions for the served versions, and
// the internal HTTP port the API forwards to (SERVING_PORT; 0 = activities only).
const serving = config.WORKER_QUEUES.includes('inference') ? await startServing({ db, config, log }) : undefined;
if (serving?.url) log.info({ url: serving.url, replica: serving.host.replicaId }, 'serving predictions');
const workers = await createPoolWorkers(
  {
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    prefix: config.TASK_QUEUE_PREFIX,
    deps: { db, config, ort, log, servingHost: serving?.host },
  },
  config.WORKER_QUEUES,
);
log.info({ pools: config.WORKER_QUEUES, pid: process.pid, namespace: config.TEMPORAL_NAMESPACE }, 'workers polling');
try {
  // Worker.run() resolves after the SDK's own SIGINT/SIGTERM handling has drained the worker.
  await Promise.all(workers.map((w) => w.run()));
} finally {
  await closeToolClients();
  await serving?.close();
  await metricsServer?.close();
  await ort.close();
  await db.end();
  await connection.close();
  log.info('workers stopped');
}
