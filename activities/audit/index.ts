/**
 * Activities of the audit trail, registered on the planning pool (queue agency-planning): sign the chain's head into
 * a checkpoint (common/audit.ts createCheckpoint), run periodically by auditCheckpointWorkflow.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { AuditChainBroken, createCheckpoint } from '../../common/audit.js';
import type { Config } from '../../common/config.js';
import type { Db } from '../../common/db.js';
import { loadOrCreateSigningKey, type SigningKey } from '../../common/signing.js';

export interface AuditDeps {
  db: Db;
  config: Pick<Config, 'SIGNING_KEY_DIR'>;
}

/** What a checkpoint run returns (and so what the workflow's history keeps, a copy outside the database). */
export interface CheckpointSummary {
  id: string;
  headSeq: string;
  headHash: string;
  count: number;
  signedAt: string;
  keyId: string;
  signature: string;
}

export function createAuditActivities({ db, config }: AuditDeps) {
  let key: Promise<SigningKey> | undefined;
  const signingKey = (): Promise<SigningKey> => {
    key ??= loadOrCreateSigningKey(config.SIGNING_KEY_DIR).catch((err: unknown) => {
      key = undefined; // a later attempt reads the file again
      throw err;
    });
    return key;
  };

  return {
    /** Signs the current head of the audit chain; null while the trail is empty. A broken chain is not retried. */
    async checkpointAuditChain(): Promise<CheckpointSummary | null> {
      let checkpoint;
      try {
        checkpoint = await createCheckpoint(db, await signingKey());
      } catch (err) {
        if (err instanceof AuditChainBroken) throw ApplicationFailure.nonRetryable(err.message, 'AuditChainBroken');
        throw err;
      }
      if (!checkpoint) return null;
      const { signature, ...rest } = checkpoint;
      return { ...rest, keyId: signature.keyId, signature: signature.signature };
    },
  };
}

export type AuditActivities = ReturnType<typeof createAuditActivities>;
