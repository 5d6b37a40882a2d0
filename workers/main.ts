/**
 * The worker entry. Runs the pools named in WORKER_QUEUES (or --queues a,b), all of them by default (the dev entry):
 *
 *   tsx workers/main.ts                       every pool in one process
 *   tsx workers/main.ts --queues execution    one pool (agency-execution) per process, as in production
 *
 * SIGINT/SIGTERM: the SDK stops polling, lets in-flight activities finish within WORKER_SHUTDOWN_GRACE, then exits.
 */
import { NativeConnection } from '@temporalio/worker';
import { loadConfigOrExit } from '../common/config.js';
import { createDb } from '../common/db.js';
import { createLogger } from '../common/logger.js';
import { OrtThread } from '../activities/inference/index.js';
import { connectionOptions } from '../temporal/connection.js';
import { createPoolWorkers } from './pools.js';
import { installRuntime } from './runtime.js';

const argQueues = process.argv.indexOf('--queues');
const env = argQueues > 0 ? { ...process.env, WORKER_QUEUES: process.argv[argQueues + 1] } : process.env;
const config = loadConfigOrExit(env);
const log = createLogger(config.LOG_LEVEL, { component: 'worker' });

installRuntime(log, config.LOG_LEVEL === 'debug' || config.LOG_LEVEL === 'trace' ? 'DEBUG' : 'WARN');
const connection = await NativeConnection.connect(await connectionOptions(config));
const db = createDb(config.DATABASE_URL, config.DATABASE_POOL_MAX);
const ort = new OrtThread();
const workers = await createPoolWorkers(
  { connection, namespace: config.TEMPORAL_NAMESPACE, prefix: config.TASK_QUEUE_PREFIX, deps: { db, config, ort } },
  config.WORKER_QUEUES,
);
log.info({ pools: config.WORKER_QUEUES, pid: process.pid, namespace: config.TEMPORAL_NAMESPACE }, 'workers polling');
try {
  // Worker.run() resolves after the SDK's own SIGINT/SIGTERM handling has drained the worker.
  await Promise.all(workers.map((w) => w.run()));
} finally {
  await ort.close();
  await db.end();
  await connection.close();
  log.info('workers stopped');
}
