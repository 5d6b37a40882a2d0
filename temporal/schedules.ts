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

/**
 * Creates the schedule `audit-checkpoint` (prefixed with TASK_QUEUE_PREFIX, so deployments sharing a namespace keep
 * their own), or updates its interval and action when it exists. Returns the schedule id and what was done.
 */
export async function ensureAuditCheckpointSchedule(
  client: Client,
  config: Pick<Config, 'AUDIT_CHECKPOINT_INTERVAL' | 'TASK_QUEUE_PREFIX'>,
): Promise<{ scheduleId: string; created: boolean }> {
  if (config.AUDIT_CHECKPOINT_INTERVAL < 1000) throw new Error('AUDIT_CHECKPOINT_INTERVAL must be at least 1s');
  const scheduleId = `${config.TASK_QUEUE_PREFIX}${AUDIT_CHECKPOINT_SCHEDULE}`;
  const spec: ScheduleSpec = { intervals: [{ every: config.AUDIT_CHECKPOINT_INTERVAL }] };
  const action: ScheduleOptionsStartWorkflowAction<typeof auditCheckpointWorkflow> = {
    type: 'startWorkflow',
    workflowType: auditCheckpointWorkflow,
    workflowId: scheduleId, // the server appends the scheduled time
    taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
    workflowExecutionTimeout: '1 hour',
  };
  // A run still going when the next is due is not doubled; after an outage, one catch-up run is enough.
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: config.AUDIT_CHECKPOINT_INTERVAL };
  try {
    await client.schedule.create({ scheduleId, spec, action, policies });
    return { scheduleId, created: true };
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action, policies }));
  return { scheduleId, created: false };
}

/**
 * Creates the schedule `blob-retention` (prefixed like the others), or updates its interval and action when it exists.
 * The age itself (BLOB_RETENTION_AGE) is read by the planning workers that run the sweep.
 */
export async function ensureBlobRetentionSchedule(
  client: Client,
  config: Pick<Config, 'BLOB_RETENTION_INTERVAL' | 'TASK_QUEUE_PREFIX'>,
): Promise<{ scheduleId: string; created: boolean }> {
  if (config.BLOB_RETENTION_INTERVAL < 1000) throw new Error('BLOB_RETENTION_INTERVAL must be at least 1s');
  const scheduleId = `${config.TASK_QUEUE_PREFIX}${BLOB_RETENTION_SCHEDULE}`;
  const spec: ScheduleSpec = { intervals: [{ every: config.BLOB_RETENTION_INTERVAL }] };
  const action: ScheduleOptionsStartWorkflowAction<typeof blobRetentionWorkflow> = {
    type: 'startWorkflow',
    workflowType: blobRetentionWorkflow,
    workflowId: scheduleId, // the server appends the scheduled time
    taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
    workflowExecutionTimeout: '6 hours',
  };
  // One sweep at a time; a missed one is made up once (the next sweep covers whatever it would have removed).
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: config.BLOB_RETENTION_INTERVAL };
  try {
    await client.schedule.create({ scheduleId, spec, action, policies });
    return { scheduleId, created: true };
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action, policies }));
  return { scheduleId, created: false };
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
