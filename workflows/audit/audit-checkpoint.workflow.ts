/**
 * auditCheckpointWorkflow — signs the audit chain's head into a checkpoint, so that a truncated tail or a rewritten
 * chain is detectable (common/audit.ts). Started every AUDIT_CHECKPOINT_INTERVAL by the Temporal Schedule
 * `audit-checkpoint` (temporal/schedules.ts); its result, kept in the workflow history, is a second copy of each
 * checkpoint outside the database.
 *
 * Activities: checkpointAuditChain on agency-planning
 */
import type { AuditActivities, CheckpointSummary } from '../../activities/audit/index.js';
import { proxyOn } from '../proxy.js';

export async function auditCheckpointWorkflow(): Promise<CheckpointSummary | null> {
  const { checkpointAuditChain } = proxyOn<AuditActivities>('planning', {
    // The first checkpoint of a key checks the whole chain; later ones only the events since the previous one.
    startToCloseTimeout: '30 minutes',
    retry: { maximumAttempts: 5 },
  });
  return checkpointAuditChain();
}
