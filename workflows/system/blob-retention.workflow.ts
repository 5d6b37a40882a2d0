/**
 * blobRetentionWorkflow — removes the blobs nothing references once BLOB_RETENTION_AGE has passed, and uploads
 * abandoned for an hour (common/blob-store/retention.ts); every removal is an audit event (`blob.removed`,
 * `blob.upload_removed`). Started every BLOB_RETENTION_INTERVAL by the Temporal Schedule `blob-retention`
 * (temporal/schedules.ts); its result, kept in the workflow history, says what each run removed.
 *
 * Activities: sweepBlobStore on agency-planning
 */
import type { BlobActivities, BlobRetentionSummary } from '../../activities/blobs/index.js';
import { proxyOn } from '../proxy.js';

export async function blobRetentionWorkflow(): Promise<BlobRetentionSummary> {
  const { sweepBlobStore } = proxyOn<BlobActivities>('planning', {
    // A large backlog takes a while; the heartbeat shows the sweep is alive, and a retry repeats nothing twice.
    startToCloseTimeout: '1 hour',
    heartbeatTimeout: '2 minutes',
    retry: { maximumAttempts: 5 },
  });
  return sweepBlobStore();
}
