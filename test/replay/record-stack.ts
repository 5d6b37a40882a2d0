/**
 * The stack a history recorder (record.ts, record-federation.ts) runs on: its own headless Temporal dev server, a
 * scratch database, and workers in this process. Everything is stopped, and the database dropped, at the end.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import pg from 'pg';
import { OrtThread } from '../../activities/inference/index.js';
import { loadConfig, PROJECT_ROOT, type Config } from '../../common/config.js';
import { createDb, migrate, type Db } from '../../common/db.js';
import { createLogger } from '../../common/logger.js';
import { startDevServer } from '../../temporal/dev-server.js';
import type { PoolContext } from '../../workers/pools.js';
import { installRuntime } from '../../workers/runtime.js';
import { freePort } from '../helpers/ports.js';

const OUT = path.join(PROJECT_ROOT, 'test', 'replay', 'histories');

/** Writes a history as test/replay/histories/<name>.json; a file that exists already is never overwritten. */
export async function writeHistory(name: string, history: unknown): Promise<void> {
  await writeFile(path.join(OUT, `${name}.json`), JSON.stringify(history, null, 1), { flag: 'wx' });
}

export interface RecordingStack {
  config: Config;
  db: Db;
  client: Client;
}

/**
 * Starts the stack (database `<database>_<pid>`, state under a temporary `<stateDirPrefix>…` folder, config from
 * `env(stateDir)` on top of the server and database), starts the workers `startWorkers` creates, runs `record`,
 * then stops it all.
 */
export async function withRecordingStack(
  options: {
    stateDirPrefix: string;
    database: string;
    env?: (stateDir: string) => Record<string, string>;
  },
  startWorkers: (ctx: PoolContext) => Promise<Worker[]>,
  record: (stack: RecordingStack) => Promise<void>,
): Promise<void> {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), options.stateDirPrefix));
  const server = await startDevServer({ port: await freePort(), ui: false, stateDir });
  const databaseName = `${options.database}_${process.pid}`;
  const databaseUrl = `postgres://postgres@127.0.0.1:5432/${databaseName}`;
  const config = loadConfig({
    TEMPORAL_ADDRESS: server.address,
    DATABASE_URL: databaseUrl,
    TASK_QUEUE_PREFIX: 'record-',
    ...options.env?.(stateDir),
  });
  try {
    await migrate(databaseUrl);
    installRuntime(createLogger('warn'));
    const connection = await NativeConnection.connect({ address: server.address });
    const db = createDb(databaseUrl);
    const ort = new OrtThread();
    const workers = await startWorkers({
      connection,
      namespace: 'agency',
      prefix: config.TASK_QUEUE_PREFIX,
      deps: { db, config, ort },
    });
    const running = Promise.all(workers.map((w) => w.run()));
    const client = new Client({
      connection: await Connection.connect({ address: server.address }),
      namespace: 'agency',
    });
    await record({ config, db, client });
    for (const w of workers) w.shutdown();
    await running;
    await ort.close();
    await db.end();
    await client.connection.close();
    await connection.close();
  } finally {
    await server.stop();
    await rm(stateDir, { recursive: true, force: true });
    const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`);
    await admin.end();
  }
}
