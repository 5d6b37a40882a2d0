/**
 * Activities of the blob store, registered on the planning pool (queue agency-planning): the retention sweep
 * (common/blob-store/retention.ts), run periodically by blobRetentionWorkflow on the Schedule `blob-retention`.
 */
import { Context } from '@temporalio/activity';
import { createBlobStore, postgresBlobStoreOf, type ConfiguredBlobStore } from '../../common/blob-store/index.js';
import { sweepBlobs, type SweepSummary } from '../../common/blob-store/retention.js';
import type { Config } from '../../common/config.js';
import type { Db } from '../../common/db.js';

export interface BlobDeps {
  db: Db;
  config: Config;
}

/** What a retention run returns (and so what the workflow's history keeps): one summary per backend swept. */
export interface BlobRetentionSummary {
  backends: SweepSummary[];
}

export function createBlobActivities({ db, config }: BlobDeps) {
  let configured: Promise<ConfiguredBlobStore> | undefined;
  const store = (): Promise<ConfiguredBlobStore> => {
    configured ??= createBlobStore(config, db).catch((err: unknown) => {
      configured = undefined; // a later attempt tries again
      throw err;
    });
    return configured;
  };

  return {
    /**
     * Removes the blobs nothing has referenced for BLOB_RETENTION_AGE and the uploads abandoned for an hour, on the
     * configured backend and (when that is s3) on PostgreSQL too. Heartbeats as it goes; idempotent when retried.
     */
    async sweepBlobStore(): Promise<BlobRetentionSummary> {
      const heartbeat = (summary: SweepSummary): void => {
        try {
          Context.current().heartbeat(summary); // throttled by the SDK
        } catch {
          // called outside an activity (a test): nothing to heartbeat to
        }
      };
      const primary = await store();
      const stores = primary.backend === 'postgres' ? [primary] : [primary, postgresBlobStoreOf(db)];
      const backends: SweepSummary[] = [];
      for (const s of stores) {
        backends.push(
          await sweepBlobs(db, s, { ageMs: config.BLOB_RETENTION_AGE, actor: 'worker:planning', progress: heartbeat }),
        );
      }
      return { backends };
    },
  };
}

export type BlobActivities = ReturnType<typeof createBlobActivities>;
