/**
 * The API process: startServer(deps) listens; stopServer closes connections gracefully.
 *   tsx api/server.ts
 */
import type { Server } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { createBlobStore, useBlobStore } from '../common/blob-store/index.js';
import type { Config } from '../common/config.js';
import { createApp, type AppDeps } from './app.js';

export async function startServer(
  deps: AppDeps,
  port = deps.config.API_PORT,
  host = deps.config.API_HOST,
): Promise<Server> {
  // Artifacts are read from (and written to) the configured blob store (BLOB_BACKEND).
  useBlobStore(deps.db, await createBlobStore(deps.config, deps.db));
  const app = createApp(deps);
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, () => resolve(server));
    server.once('error', reject);
  });
}

export function stopServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeIdleConnections();
  });
}

/** A Temporal client whose connection is made on first use, so the API starts (and reports 503) while Temporal is down. */
export async function createLazyTemporalClient(config: Config): Promise<Client> {
  const { connectionOptions } = await import('../temporal/connection.js');
  const { dataConverterFromConfig } = await import('../temporal/codec.js');
  const connection = Connection.lazy(await connectionOptions(config));
  return new Client({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    dataConverter: dataConverterFromConfig(config),
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { loadConfigOrExit } = await import('../common/config.js');
  const { createDb, migrate } = await import('../common/db.js');
  const { createLogger } = await import('../common/logger.js');
  const config = loadConfigOrExit();
  const log = createLogger(config.LOG_LEVEL, { component: 'api' });
  await migrate(config.DATABASE_URL);
  const db = createDb(config.DATABASE_URL, config.DATABASE_POOL_MAX);
  const temporal = await createLazyTemporalClient(config);
  const server = await startServer({ temporal, db, config, log });
  log.info({ url: `http://${config.API_HOST}:${config.API_PORT}` }, 'API listening');
  // Once: Ctrl-C in a terminal signals the whole process group, so `npm run dev` sends SIGTERM after the SIGINT.
  let stopping: Promise<void> | undefined;
  const shutdown = (signal: string): Promise<void> =>
    (stopping ??= (async () => {
      log.info({ signal }, 'API shutting down');
      await stopServer(server);
      await db.end();
      await temporal.connection.close();
    })());
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}
