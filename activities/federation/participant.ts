/**
 * The participant's side of a round, run on its own task queue (agency-federation-<id>) by a worker beside its data
 * (workers/participant.ts): train locally from the global model, take the update (local − global), clip it to L2 norm
 * C and check it is finite, add this participant's noise share when the campaign distributes the noise, then encrypt
 * it with the campaign's public key (encrypted mode) and put it in the blob store. Only a reference leaves; the data
 * and the unclipped update never do.
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Db } from '../../common/db.js';
import type { UpdateRef } from '../../workflows/federation/definitions.js';
import { getBytes, getFloat32, putBytes, putFloats } from './blobs.js';
import { addGaussianNoise, allFinite, clipL2, cryptoNoise, noiseShareStd } from './dp.js';
import { subtract, trainLocal, type ModelKind } from './model.js';
import { ciphertextCount, encryptUpdate } from './secure-agg.js';
import { loadLocalData, type Poison } from './sources.js';

export interface TrainInput {
  campaignId: string;
  round: number;
  participantId: string;
  tenantId: string;
  model: ModelKind;
  global: { tenantId: string; sha256: string; sizeBytes: number };
  publicKey?: { tenantId: string; sha256: string; sizeBytes: number };
  mode: 'encrypted' | 'plaintext';
  noise: 'central' | 'distributed';
  clipNorm: number;
  noiseMultiplier: number;
  minParticipants: number;
  local: { epochs: number; batch_size: number; lr: number };
}

export interface ParticipantDeps {
  db: Db;
  /** The participants this worker serves: id → data source (its own configuration). */
  sources: ReadonlyMap<string, string>;
}

function seedOf(...parts: (string | number)[]): number {
  return createHash('sha256').update(parts.join('/')).digest().readUInt32LE(0);
}

/** A simulated malicious participant (mnist:…&poison=…): what it sends instead of a clipped, finite update. */
function poisoned(update: Float32Array, poison: Poison): Float32Array {
  if (poison === 'nan') return Float32Array.from(update, (v, i) => (i === 0 ? NaN : v));
  if (poison === 'shape') return update.slice(0, update.length - 10);
  return Float32Array.from(update, (v) => v * 1000 + 1);
}

export function createParticipantActivities({ db, sources }: ParticipantDeps) {
  return {
    async federationTrain(input: TrainInput): Promise<UpdateRef> {
      const source = sources.get(input.participantId);
      if (!source)
        throw ApplicationFailure.nonRetryable(
          `this worker does not serve participant ${input.participantId}`,
          'UnknownParticipant',
        );
      const ctx = Context.current();
      const { data, poison } = loadLocalData(source);
      const global = await getFloat32(db, input.global);
      let params = global;
      for (let epoch = 0; epoch < input.local.epochs; epoch++) {
        // One epoch per step, with a heartbeat between: the server notices a dead worker within the heartbeat timeout,
        // and a cancelled straggler stops here.
        ctx.heartbeat({ epoch });
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
        params = trainLocal(input.model, params, data, {
          epochs: 1,
          batchSize: input.local.batch_size,
          lr: input.local.lr,
          seed: seedOf(input.campaignId, input.round, input.participantId, epoch),
        });
        await new Promise((r) => setImmediate(r)); // lets the heartbeat and a cancellation through
      }
      const delta = subtract(params, global);
      const shareStd =
        input.noise === 'distributed'
          ? noiseShareStd(input.noiseMultiplier, input.clipNorm, input.minParticipants)
          : undefined;
      ctx.heartbeat({ stage: 'upload' });
      const common = { participantId: input.participantId, tenantId: input.tenantId, samples: data.n };
      if (input.mode === 'encrypted') {
        if (!input.publicKey)
          throw ApplicationFailure.nonRetryable('encrypted mode without a public key', 'NoPublicKey');
        // encryptUpdate clips to C and refuses a non-finite update before encrypting, then adds the noise share.
        const publicKey = await getBytes(db, input.publicKey);
        // A simulated malicious participant can only send a malformed ciphertext here (its norm is invisible to the
        // aggregator): one of the wrong length.
        const sent = poison === 'shape' ? delta.slice(0, delta.length - 4096 - 10) : delta;
        const encrypted = await encryptUpdate(publicKey, sent, {
          clipNorm: input.clipNorm,
          ...(shareStd !== undefined ? { noiseStd: shareStd, noise: cryptoNoise() } : {}),
        });
        const blob = await putBytes(db, input.tenantId, encrypted.bytes, 'application/x-agency-ckks');
        return { ...common, format: 'ckks', blob, length: delta.length, ciphertexts: ciphertextCount(delta.length) };
      }
      // Plaintext mode: clipped and checked here, and checked again by the aggregator, which sees the plaintext.
      let update = clipL2(delta, input.clipNorm).clipped;
      if (!allFinite(update)) throw ApplicationFailure.nonRetryable('local update is not finite', 'NonFiniteUpdate');
      if (shareStd !== undefined) update = addGaussianNoise(update, shareStd, cryptoNoise());
      if (poison) update = poisoned(update, poison);
      const blob = await putFloats(db, input.tenantId, update);
      return { ...common, format: 'plain', blob, length: update.length, ciphertexts: 0 };
    },
  };
}

export type ParticipantActivities = ReturnType<typeof createParticipantActivities>;
