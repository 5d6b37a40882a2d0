/**
 * Activities of the federation pool (queue agency-federation). Today: a self-check that the homomorphic-encryption
 * library works on this worker (CKKS: encrypt two vectors, add the ciphertexts, decrypt the sum).
 * Local training and secure aggregation arrive here.
 */
import type { SchemeType } from 'node-seal/implementation/scheme-type.js';
import type { SecurityLevel } from 'node-seal/implementation/security-level.js';
import { getSeal } from './seal.js';

export function createFederationActivities() {
  return {
    async federationSelfCheck(): Promise<{ ok: boolean; maxError: number; polyModulusDegree: number }> {
      const seal = await getSeal();
      const degree = 8192;
      const parms = seal.EncryptionParameters(seal.SchemeType.ckks as SchemeType);
      parms.setPolyModulusDegree(degree);
      parms.setCoeffModulus(seal.CoeffModulus.Create(degree, Int32Array.from([60, 40, 40, 60])));
      const context = seal.Context(parms, true, seal.SecurityLevel.tc128 as SecurityLevel);
      const keys = seal.KeyGenerator(context);
      const publicKey = keys.createPublicKey();
      const encoder = seal.CKKSEncoder(context);
      const encryptor = seal.Encryptor(context, publicKey);
      const decryptor = seal.Decryptor(context, keys.secretKey());
      const evaluator = seal.Evaluator(context);
      const a = Float64Array.from({ length: 16 }, (_, i) => i / 10);
      const b = Float64Array.from({ length: 16 }, (_, i) => 1 - i / 20);
      const scale = 2 ** 40;
      const ca = encryptor.encrypt(encoder.encode(a, scale)!)!;
      const cb = encryptor.encrypt(encoder.encode(b, scale)!)!;
      const sum = evaluator.add(ca, cb)!;
      const decoded = encoder.decode(decryptor.decrypt(sum)!);
      let maxError = 0;
      for (let i = 0; i < a.length; i++) maxError = Math.max(maxError, Math.abs(decoded[i]! - (a[i]! + b[i]!)));
      for (const obj of [parms, context, keys, publicKey, encoder, encryptor, decryptor, evaluator, ca, cb, sum])
        obj.delete();
      return { ok: maxError < 1e-4, maxError, polyModulusDegree: degree };
    },
  };
}

export type FederationActivities = ReturnType<typeof createFederationActivities>;
