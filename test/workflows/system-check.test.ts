import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../common/config.js';
import { queueFor } from '../../temporal/task-queues.js';
import { systemCheckWorkflow } from '../../workflows/index.js';
import { startWorkers, temporalClient, testConfig, type RunningWorkers } from '../helpers/stack.js';

describe('systemCheck: every worker pool answers on its own queue', () => {
  let config: Config;
  let workers: RunningWorkers;
  beforeAll(async () => {
    config = testConfig();
    workers = await startWorkers(config);
  });
  afterAll(async () => {
    await workers?.stop();
  });

  it('when the check runs, then ONNX Runtime answers from its worker thread and CKKS adds encrypted vectors', async () => {
    const client = await temporalClient(config);
    const result = await client.workflow.execute(systemCheckWorkflow, {
      taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
      workflowId: `system-check-${Date.now()}`,
    });
    expect(result.inference.ok).toBe(true);
    expect(result.inference.backends).toContain('cpu');
    expect(result.federation.ok).toBe(true);
    expect(result.federation.maxError).toBeLessThan(1e-4);
    await client.connection.close();
  });

  it('when a pool has no worker, then the check does not pretend it passed', async () => {
    const lonely = testConfig();
    const partial = await startWorkers(lonely, ['orchestration', 'inference']);
    const client = await temporalClient(lonely);
    try {
      const handle = await client.workflow.start(systemCheckWorkflow, {
        taskQueue: queueFor('orchestration', lonely.TASK_QUEUE_PREFIX),
        workflowId: `system-check-partial-${Date.now()}`,
        workflowExecutionTimeout: '3 seconds',
      });
      await expect(handle.result()).rejects.toThrow(/timed out|Workflow execution/i);
    } finally {
      await partial.stop();
      await client.connection.close();
    }
  });
});
