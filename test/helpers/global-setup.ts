/**
 * Once per test run: dist/ compiled when stale (so the workspace servers the tests spawn run compiled JavaScript, as in
 * production), a real Temporal dev server (started on free ports, or reused when TEST_TEMPORAL_ADDRESS is set), a clean
 * PostgreSQL database with every migration applied, the workflow bundle built once for all test workers, and an
 * S3-compatible server (versitygw, built once into ~/.cache/agency, common/blob-store/s3-server.ts) for the blob store.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrate } from '../../common/db.js';
import { startDevServer, type DevServer } from '../../temporal/dev-server.js';
import { startS3Server, type S3Server } from '../../common/blob-store/s3-server.js';
import { bundleWorkflows } from '../../scripts/bundle-workflows.js';
import { build } from '../../scripts/build.js';
import { freePort } from './ports.js';
import { ensureBubblewrap } from '../../mcp/workspace-server/bubblewrap.js';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    databaseUrl: string;
    workflowBundlePath: string;
    /** The run's S3-compatible server: path-style endpoint, region and root credentials (tests pick their bucket). */
    s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string };
  }
}

let server: DevServer | undefined;
let s3: S3Server | undefined;
let databaseUrl: string | undefined;
const adminUrl = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function dropDatabase(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${new URL(url).pathname.slice(1)}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
let stateDir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  // Skipped when dist/ is current. Type errors (someone's work in progress) do not stop the run: tsc writes the
  // outputs anyway, and `npm run check` is where types fail. A source edited after this falls back to tsx (launch.ts).
  await build({ allowTypeErrors: true, log: (line) => void process.stderr.write(`[global-setup] build: ${line}\n`) });
  // Commands run in bubblewrap: fetch it once (into ~/.cache/agency) before workspace servers look for it in parallel.
  const bwrap = await ensureBubblewrap();
  if (!bwrap.found) throw new Error(`the command sandbox is unavailable: ${bwrap.reason}`);
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'agency-test-'));
  const reuse = process.env.TEST_TEMPORAL_ADDRESS;
  const [host, port] = reuse ? reuse.split(':') : ['127.0.0.1', String(await freePort())];
  // The S3 server starts beside Temporal (its first build, once per machine, takes minutes: it overlaps).
  const s3Starting = startS3Server({
    dir: path.join(stateDir, 's3'),
    log: (line) => void process.stderr.write(`[global-setup] s3: ${line}\n`),
  });
  s3Starting.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  // A failed start stops its server and puts the tail of the server's log in the error, so the directory can go.
  server = await startDevServer({ host, port: Number(port), ui: false, namespace: 'agency', stateDir }).catch(
    async (err: unknown) => {
      await s3Starting.then((started) => started.stop()).catch(() => undefined);
      await rm(stateDir!, { recursive: true, force: true });
      throw err;
    },
  );
  s3 = await s3Starting.catch(async (err: unknown) => {
    await server?.stop();
    await rm(stateDir!, { recursive: true, force: true });
    throw err;
  });

  // One database per run (dropped at teardown), so concurrent runs on one machine never share state.
  databaseUrl = process.env.TEST_DATABASE_URL ?? adminUrl.replace(/\/[^/]*$/, `/agency_test_${process.pid}`);
  await dropDatabase(databaseUrl);
  await migrate(databaseUrl);

  const workflowBundlePath = await bundleWorkflows(path.join(stateDir, 'workflow-bundle.js'));

  project.provide('temporalAddress', server.address);
  project.provide('databaseUrl', databaseUrl);
  project.provide('workflowBundlePath', workflowBundlePath);
  project.provide('s3', { endpoint: s3.endpoint, region: s3.region, ...s3.credentials });
}

export async function teardown(): Promise<void> {
  await server?.stop();
  await s3?.stop();
  if (databaseUrl && !process.env.TEST_DATABASE_URL) await dropDatabase(databaseUrl);
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
}
