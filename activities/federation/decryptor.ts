/**
 * The decryptor pool (queue agency-federation-decryptor): the only code that holds a campaign's CKKS secret key.
 *
 * Key custody: the secret key is a file <FEDERATION_KEY_DIR>/<campaign>.sk of mode 0600, owned by the decryptor
 * worker's user, written once at campaign start. It is never put in PostgreSQL or the blob store, so the aggregator's
 * database role has nothing to select, and the aggregator's process has no setting that names the directory (only
 * the decryptor reads FEDERATION_KEY_DIR; in a deployment only the decryptor's pod mounts it).
 *
 * Decryption: only a recorded aggregate (federation_rounds.aggregate, written by the aggregator's combine) of at least
 * the campaign's min_participants contributors, per the database row and the blob's own header. An individual update
 * is never a recorded aggregate, so it is never decrypted. The decoded sum is rounded (IND-CPA^D) and, when the
 * campaign's noise is central, the Gaussian noise z·C is added here, before anyone else sees the sum.
 */
import { mkdir, open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { appendAuditEvent } from '../../common/audit.js';
import type { BlobRef } from '../../common/blob-store/index.js';
import type { Db } from '../../common/db.js';
import { getCampaign, getRound, updateCampaign } from '../../common/federation.js';
import type { CampaignConfig } from '../../workflows/federation/definitions.js';
import { getBytes, putBytes, putFloats } from './blobs.js';
import { addGaussianNoise, cryptoNoise, noiseStd } from './dp.js';
import { paramCount } from './model.js';
import { decryptAggregate, generateCampaignKeys } from './secure-agg.js';

export interface DecryptorDeps {
  db: Db;
  keyDir: string;
}

const keyFile = (dir: string, campaignId: string, kind: 'sk' | 'pk'): string => {
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(campaignId)) throw new Error(`bad campaign id ${campaignId}`);
  return path.join(dir, `${campaignId}.${kind}`);
};

/** Writes the file only if it does not exist (O_EXCL), with mode 0600; false when it was there. */
async function writeOnce(file: string, bytes: Uint8Array): Promise<boolean> {
  try {
    const handle = await open(file, 'wx', 0o600);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

export function createDecryptorActivities({ db, keyDir }: DecryptorDeps) {
  return {
    /**
     * The campaign's key pair, made once: the secret key to a 0600 file, the public key to the blob store and the
     * campaign. A retry after a crash between the two files makes a new pair only if the secret key was never written.
     */
    async federationCreateKeys(input: { campaignId: string }): Promise<BlobRef> {
      const c = await getCampaign(db, input.campaignId);
      if (!c) throw ApplicationFailure.nonRetryable(`no campaign ${input.campaignId}`, 'UnknownCampaign');
      await mkdir(keyDir, { recursive: true, mode: 0o700 });
      const sk = keyFile(keyDir, c.id, 'sk');
      const pk = keyFile(keyDir, c.id, 'pk');
      let publicKey: Uint8Array;
      try {
        publicKey = await readFile(pk);
        await readFile(sk);
      } catch {
        const keys = await generateCampaignKeys();
        // The secret key first (O_EXCL): a crash before the public key is written is reported, never papered over
        // with a second pair that participants might already be using the other half of.
        if (!(await writeOnce(sk, keys.secretKey)))
          throw new Error(`secret key of ${c.id} exists without its public key`);
        await writeOnce(pk, keys.publicKey);
        publicKey = keys.publicKey;
      }
      const ref = await putBytes(db, c.tenantId, publicKey, 'application/x-agency-ckks-public-key');
      await updateCampaign(db, c.id, { publicKey: ref });
      return ref;
    },

    /** Decrypts the round's recorded aggregate (nothing else), rounds it, adds central noise; returns the plaintext sum. */
    async federationDecrypt(input: { campaignId: string; round: number }): Promise<BlobRef> {
      const c = await getCampaign(db, input.campaignId);
      const r = c && (await getRound(db, c.id, input.round));
      if (!c || !r)
        throw ApplicationFailure.nonRetryable(`no round ${input.round} of ${input.campaignId}`, 'UnknownRound');
      // The campaign's own configuration, from the database: not whatever the caller says the minimum is.
      const config = c.config as CampaignConfig;
      const refuse = (why: string) => {
        void appendAuditEvent(db, {
          tenantId: c.tenantId,
          actor: 'worker:decryptor',
          action: 'federation.decrypt_refused',
          subject: `${c.id}/${r.round}`,
          payload: { reason: why },
        });
        return ApplicationFailure.nonRetryable(why, 'DecryptRefused');
      };
      if (!r.aggregate || r.contributors === null) throw refuse('the round has no recorded aggregate');
      if (r.contributors < config.min_participants)
        throw refuse(
          `the recorded aggregate has ${r.contributors} contributors; at least ${config.min_participants} required`,
        );
      let secretKey: Buffer;
      try {
        secretKey = await readFile(keyFile(keyDir, c.id, 'sk'));
      } catch (err) {
        throw ApplicationFailure.nonRetryable(
          `the decryptor has no secret key for ${c.id}: ${(err as Error).message}`,
          'NoKey',
        );
      }
      const { sum, contributors } = await decryptAggregate(secretKey, await getBytes(db, r.aggregate), {
        length: paramCount(config.model),
        minContributors: config.min_participants,
      });
      if (contributors !== r.contributors)
        throw refuse(`the aggregate's header says ${contributors} contributors, the record ${r.contributors}`);
      const noised =
        config.noise === 'central'
          ? Float64Array.from(addGaussianNoise(sum, noiseStd(config.noise_multiplier, config.clip_norm), cryptoNoise()))
          : sum;
      return putFloats(db, c.tenantId, noised);
    },
  };
}

export type DecryptorActivities = ReturnType<typeof createDecryptorActivities>;
