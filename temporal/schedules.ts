/**
 * Temporal Schedules the platform relies on, created or brought up to date idempotently (dev start, deploy job).
 *
 *   audit-checkpoint   auditCheckpointWorkflow every AUDIT_CHECKPOINT_INTERVAL: signs the audit chain's head
 *   blob-retention     blobRetentionWorkflow every BLOB_RETENTION_INTERVAL: removes blobs nothing references once
 *                      BLOB_RETENTION_AGE has passed, and abandoned uploads
 *
 *   node --import tsx temporal/schedules.ts     ensures them with the environment's configuration
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { ScheduleOptionsStartWorkflowAction, ScheduleSpec } from '@temporalio/client';
import type { Config } from '../common/config.js';
import { auditCheckpointWorkflow } from '../workflows/audit/audit-checkpoint.workflow.js';
import { blobRetentionWorkflow } from '../workflows/system/blob-retention.workflow.js';
import { queueFor } from './task-queues.js';

export const AUDIT_CHECKPOINT_SCHEDULE = 'audit-checkpoint';
export const BLOB_RETENTION_SCHEDULE = 'blob-retention';

type Ensured = Promise<{ scheduleId: string; created: boolean }>;

/**
 * Creates a schedule that starts `workflowType` on the orchestration queue every `everyMs` (its id prefixed with
 * TASK_QUEUE_PREFIX, so deployments sharing a namespace keep their own), or updates its interval and action when it
 * exists. A run still going when the next is due is not doubled; after an outage, one catch-up run is enough.
 */
async function ensureIntervalSchedule(
  client: Client,
  prefix: string,
  name: string,
  opts: { workflowType: string; everyMs: number; executionTimeout: string; setting: string },
): Ensured {
  if (opts.everyMs < 1000) throw new Error(`${opts.setting} must be at least 1s`);
  const scheduleId = `${prefix}${name}`;
  const spec: ScheduleSpec = { intervals: [{ every: opts.everyMs }] };
  const action: ScheduleOptionsStartWorkflowAction<() => Promise<unknown>> = {
    type: 'startWorkflow',
    workflowType: opts.workflowType,
    workflowId: scheduleId, // the server appends the scheduled time
    taskQueue: queueFor('orchestration', prefix),
    workflowExecutionTimeout: opts.executionTimeout,
  };
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: opts.everyMs };
  try {
    await client.schedule.create({ scheduleId, spec, action, policies });
    return { scheduleId, created: true };
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action, policies }));
  return { scheduleId, created: false };
}

/** The schedule `audit-checkpoint`: auditCheckpointWorkflow every AUDIT_CHECKPOINT_INTERVAL. */
export function ensureAuditCheckpointSchedule(
  client: Client,
  config: Pick<Config, 'AUDIT_CHECKPOINT_INTERVAL' | 'TASK_QUEUE_PREFIX'>,
): Ensured {
  return ensureIntervalSchedule(client, config.TASK_QUEUE_PREFIX, AUDIT_CHECKPOINT_SCHEDULE, {
    workflowType: auditCheckpointWorkflow.name,
    everyMs: config.AUDIT_CHECKPOINT_INTERVAL,
    executionTimeout: '1 hour',
    setting: 'AUDIT_CHECKPOINT_INTERVAL',
  });
}

/**
 * The schedule `blob-retention`: blobRetentionWorkflow every BLOB_RETENTION_INTERVAL. The age itself
 * (BLOB_RETENTION_AGE) is read by the planning workers that run the sweep.
 */
export function ensureBlobRetentionSchedule(
  client: Client,
  config: Pick<Config, 'BLOB_RETENTION_INTERVAL' | 'TASK_QUEUE_PREFIX'>,
): Ensured {
  return ensureIntervalSchedule(client, config.TASK_QUEUE_PREFIX, BLOB_RETENTION_SCHEDULE, {
    workflowType: blobRetentionWorkflow.name,
    everyMs: config.BLOB_RETENTION_INTERVAL,
    executionTimeout: '6 hours',
    setting: 'BLOB_RETENTION_INTERVAL',
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { loadConfigOrExit } = await import('../common/config.js');
  const { createTemporalClient } = await import('./connection.js');
  const config = loadConfigOrExit();
  const client = await createTemporalClient(config);
  try {
    for (const ensure of [ensureAuditCheckpointSchedule, ensureBlobRetentionSchedule]) {
      const { scheduleId, created } = await ensure(client, config);
      process.stdout.write(`${created ? 'created' : 'updated'} schedule ${scheduleId}\n`);
    }
  } finally {
    await client.connection.close();
  }
}
