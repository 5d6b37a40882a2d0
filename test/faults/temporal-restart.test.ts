import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startDevServer, type DevServer } from '../../temporal/dev-server.js';
import { executionWorkflowId } from '../../workflows/execution/definitions.js';
import { freePort } from '../helpers/ports.js';
import {
  eventually,
  runningActivities,
  sampleRepo,
  startWorkers,
  temporalClient,
  testConfig,
  type RunningWorkers,
} from '../helpers/stack.js';
import { directTaskInput, slowStepSpec, startTaskWorkflow } from '../helpers/tasks.js';

describe('the Temporal server restarted in the middle of a task', () => {
  let server: DevServer | undefined;
  let workers: RunningWorkers | undefined;
  let stateDir: string | undefined;
  afterAll(async () => {
    await workers?.stop();
    await server?.stop();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('when it comes back on the same SQLite file, then the task completes and nothing is lost or repeated', async () => {
    stateDir = await mkdtemp(path.join(os.tmpdir(), 'agency-restart-'));
    const port = await freePort();
    server = await startDevServer({ port, ui: false, stateDir });
    const config = testConfig({ TEMPORAL_ADDRESS: server.address });
    workers = await startWorkers(config);
    const client = await temporalClient(config);
    const id = `restart-${Date.now()}`;
    const input = directTaskInput(
      id,
      await sampleRepo(),
      'Survive a server restart',
      slowStepSpec('FIX-8', 'Fix average while the server restarts', 5000),
    );
    const handle = await startTaskWorkflow(client, config, input);
    await eventually(
      async () => (await runningActivities(client, executionWorkflowId(handle.workflowId, 1))).includes('applyStep'),
      {
        what: 'the slow step to start',
      },
    );
    const historyBefore = await handle.fetchHistory();

    await server.stop();
    server = await startDevServer({ port, ui: false, stateDir });
    expect(server.started).toBe(true);
    // Idempotent: asking again reuses the running server instead of starting a second one.
    expect((await startDevServer({ port, ui: false, stateDir })).started).toBe(false);
    const attributes = await client.connection.operatorService.listSearchAttributes({ namespace: 'agency' });
    expect(Object.keys(attributes.customAttributes)).toEqual(
      expect.arrayContaining(['AgencyTaskStatus', 'AgencyRiskTier', 'AgencyTenant']),
    );

    const result = await handle.result();
    expect(result.status).toBe('completed');
    // The tier's required gates (the tenant's registered commands), each passed on its report.
    expect(result.gates).toEqual([
      expect.objectContaining({ kind: 'tests', passed: true, source: 'tenant' }),
      expect.objectContaining({ kind: 'coverage', passed: true, source: 'tenant' }),
      expect.objectContaining({ kind: 'mutation', passed: true, source: 'tenant' }),
    ]);
    // Every event recorded before the restart is still there, in order.
    const historyAfter = await handle.fetchHistory();
    const before = historyBefore.events!.map((e) => String(e.eventType));
    expect(historyAfter.events!.slice(0, before.length).map((e) => String(e.eventType))).toEqual(before);
    const { rows } = await workers.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM audit_events WHERE workflow_id = $1 AND action = 'step.applied'`,
      [handle.workflowId],
    );
    expect(rows[0]?.n).toBe('2');
    await client.connection.close();
  });
});
