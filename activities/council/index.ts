/**
 * Activities of the council pool (queue agency-council). Today: the deterministic review of a task's diff
 * (secrets, placeholders, debug logging, scope, change budget). The four judges of CAWS.md build on it.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { appendAuditEvent } from '../../common/audit.js';
import { getArtifact } from '../../common/artifacts.js';
import type { Db } from '../../common/db.js';
import type { ArtifactRef, ReviewFinding } from '../../workflows/task/definitions.js';
import type { TaskRef } from '../execution/index.js';
import { reviewDiff, type ReviewPolicy } from './review.js';

export interface CouncilDeps {
  db: Db;
}

export function createCouncilActivities({ db }: CouncilDeps) {
  return {
    async reviewTaskDiff(
      task: TaskRef,
      diffRef: ArtifactRef,
      policy: ReviewPolicy,
    ): Promise<{ passed: boolean; findings: ReviewFinding[] }> {
      const artifact = await getArtifact(db, task.tenantId, diffRef.sha256);
      if (!artifact)
        throw ApplicationFailure.nonRetryable(`diff artifact ${diffRef.sha256} not found`, 'ArtifactMissing');
      const review = reviewDiff(artifact.content.toString('utf8'), policy);
      await appendAuditEvent(db, {
        tenantId: task.tenantId,
        actor: 'council:rules',
        action: 'diff.reviewed',
        workflowId: task.workflowId,
        correlationId: task.correlationId,
        idempotencyKey: `${task.executionKey}/diff.reviewed/${diffRef.sha256}`,
        payload: { passed: review.passed, findings: review.findings },
      });
      return review;
    },
  };
}

export type CouncilActivities = ReturnType<typeof createCouncilActivities>;
