/**
 * A serving process of its own for the tests (as one inference-pool pod): starts the serving host with its HTTP port
 * on a free port and prints {"url", "replica"} on stdout. Runs until killed. Env: DATABASE_URL, SERVING_RELOAD_INTERVAL.
 */
import { startServing } from '../../activities/inference/serving/index.js';
import { useBlobStore, createBlobStore } from '../../common/blob-store/index.js';
import { loadConfig } from '../../common/config.js';
import { createDb } from '../../common/db.js';
import { freePort } from './ports.js';

const config = loadConfig(process.env);
const db = createDb(config.DATABASE_URL);
useBlobStore(db, await createBlobStore(config, db));
const serving = await startServing({ db, config }, await freePort());
process.stdout.write(`${JSON.stringify({ url: serving.url, replica: serving.host.replicaId })}\n`);
process.on('SIGTERM', () => {
  void serving.close().then(() => db.end().then(() => process.exit(0)));
});
