/**
 * The participant worker entry: serves the participants FEDERATION_PARTICIPANTS names, each on its own queue
 * agency-federation-<id>, and nothing else (no platform pool, no key directory).
 *
 *   FEDERATION_PARTICIPANTS='hospital-a=file:/data/digits.json' tsx workers/participant.ts          a site, beside its data
 *   FEDERATION_PARTICIPANTS='sim-0=mnist:?participants=3&index=0,sim-1=…' tsx workers/participant.ts  simulation
 */
import { NativeConnection } from '@temporalio/worker';
import { OrtThread } from '../activities/inference/index.js';
import { loadConfigOrExit } from '../common/config.js';
import { createDb } from '../common/db.js';
import { createLogger } from '../common/logger.js';
import { connectionOptions } from '../temporal/connection.js';
import { createParticipantWorkers } from './participants.js';
import { installRuntime } from './runtime.js';

const config = loadConfigOrExit(process.env);
const log = createLogger(config.LOG_LEVEL, { component: 'participant-worker' });
installRuntime(log);
const connection = await NativeConnection.connect(await connectionOptions(config));
const db = createDb(config.DATABASE_URL, 4);
const ort = new OrtThread();
const workers = await createParticipantWorkers({
  connection,
  namespace: config.TEMPORAL_NAMESPACE,
  prefix: config.TASK_QUEUE_PREFIX,
  deps: { db, config, ort, log },
});
log.info({ participants: workers.length, pid: process.pid }, 'participant workers polling');
try {
  await Promise.all(workers.map((w) => w.run()));
} finally {
  await ort.close();
  await db.end();
  await connection.close();
}
