/**
 * Records histories of real agentTask runs into test/replay/histories/, for the replay test.
 *   npm run test:record-histories -- <tag> [scenario …]
 * The tag names the new histories (task-record-<tag>-completed…), so recording adds histories next to the ones
 * recorded before a change (which must go on replaying); a file that exists already is never overwritten.
 * Starts its own headless Temporal dev server and a scratch database, runs the workers in-process, carries each
 * scenario to its end, and writes the history as JSON. Re-record after an intended, patched workflow change.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import pg from 'pg';
import { OrtThread } from '../../activities/inference/index.js';
import { loadConfig, PROJECT_ROOT } from '../../common/config.js';
import { createDb, migrate } from '../../common/db.js';
import { createLogger } from '../../common/logger.js';
import { startDevServer } from '../../temporal/dev-server.js';
import { queueFor } from '../../temporal/task-queues.js';
import { createPoolWorkers } from '../../workers/pools.js';
import { installRuntime } from '../../workers/runtime.js';
import { agentTaskWorkflow } from '../../workflows/index.js';
import {
  approveSignal,
  progressQuery,
  type AgentTaskInput,
  type PendingApproval,
} from '../../workflows/task/definitions.js';
import { signedApproval } from '../helpers/tasks.js';
import { freePort } from '../helpers/ports.js';

const run = promisify(execFile);
const OUT = path.join(PROJECT_ROOT, 'test', 'replay', 'histories');

async function sample(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'agency-record-'));
  await cp(path.join(PROJECT_ROOT, 'samples', 'calculator'), dir, { recursive: true });
  const git = (...a: string[]): Promise<unknown> =>
    run('git', ['-c', 'user.name=r', '-c', 'user.email=r@x', ...a], { cwd: dir });
  await git('init', '--quiet', '--initial-branch=main');
  await git('add', '.');
  await git('commit', '--quiet', '-m', 'sample');
  return dir;
}

const stateDir = await mkdtemp(path.join(os.tmpdir(), 'agency-record-state-'));
const server = await startDevServer({ port: await freePort(), ui: false, stateDir });
const databaseUrl = `postgres://postgres@127.0.0.1:5432/agency_record_${process.pid}`;
const config = loadConfig({
  TEMPORAL_ADDRESS: server.address,
  DATABASE_URL: databaseUrl,
  TASK_QUEUE_PREFIX: 'record-',
});
try {
  await migrate(databaseUrl);
  installRuntime(createLogger('warn'));
  const connection = await NativeConnection.connect({ address: server.address });
  const db = createDb(databaseUrl);
  const ort = new OrtThread();
  const workers = await createPoolWorkers(
    { connection, namespace: 'agency', prefix: config.TASK_QUEUE_PREFIX, deps: { db, config, ort } },
    ['orchestration', 'planning', 'council', 'execution'],
  );
  const running = Promise.all(workers.map((w) => w.run()));
  const client = new Client({ connection: await Connection.connect({ address: server.address }), namespace: 'agency' });

  const base = (id: string, workspace: string): AgentTaskInput => ({
    id,
    tenantId: 'default',
    correlationId: `record-${id}`,
    submittedBy: 'user:recorder',
    title: 'Recorded task',
    description: '',
    workspace,
    mode: 'auto',
    budgets: { max_steps: 100, max_tokens: 0, max_cost_usd: 0 },
  });
  const tag = process.argv[2] ? `${process.argv[2]}-` : '';
  const only = process.argv.slice(3);
  const scenarios: Record<string, AgentTaskInput> = {
    // The demo: the spec comes from the workspace's .caws/working-spec.yaml; gates pass.
    'agent-task-completed': base(`record-${tag}completed`, await sample()),
    // Gates fail: no step fixes the bug.
    'agent-task-gates-failed': {
      ...base(`record-${tag}gates-failed`, await sample()),
      spec: {
        id: 'DOC-1',
        title: 'Add a note without fixing the bug',
        risk_tier: 3,
        mode: 'doc',
        scope: { in: ['NOTES.md'], out: [] },
        acceptance: [],
        invariants: [],
        steps: [{ kind: 'write_file', path: 'NOTES.md', content: 'notes\n' }],
        gates: [{ name: 'tests', run: ['node', '--test'] }],
      },
    },
    // Strict: a person approves the plan with a decision signed as the API signs it (workflows/task/decision-proof.ts).
    'agent-task-approved': { ...base(`record-${tag}approved`, await sample()), mode: 'strict' },
  };
  for (const [name, input] of Object.entries(scenarios)) {
    if (only.length && !only.includes(name)) continue;
    const handle = await client.workflow.start(agentTaskWorkflow, {
      args: [input],
      workflowId: `task-${input.id}`,
      taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
      memo: { tenantId: 'default' },
    });
    if (input.mode === 'strict') {
      let pending: PendingApproval | undefined;
      while (!(pending = (await handle.query(progressQuery)).pendingApproval)) await sleep(200);
      await handle.signal(approveSignal, await signedApproval(config, handle.workflowId, pending.hash));
    }
    const result = await handle.result();
    const history = await handle.fetchHistory();
    // The file is named by the workflow id: replay derives child workflow ids from it.
    await writeFile(path.join(OUT, `${handle.workflowId}.json`), JSON.stringify(history, null, 1), { flag: 'wx' });
    // Children too (council sessions, execution): their histories must replay as well.
    const children = (history.events ?? []).flatMap((e) => {
      const id = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId;
      return id ? [id] : [];
    });
    for (const child of children) {
      const childHistory = await client.workflow.getHandle(child).fetchHistory();
      await writeFile(path.join(OUT, `${child}.json`), JSON.stringify(childHistory, null, 1), { flag: 'wx' });
    }
    process.stdout.write(`${name}: ${result.status} (${history.events?.length} events, ${children.length} children)\n`);
  }
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
  await admin.query(`DROP DATABASE IF EXISTS "agency_record_${process.pid}" WITH (FORCE)`);
  await admin.end();
}
