/**
 * Secure aggregation with CKKS (activities/federation/secure-agg.ts, node-seal 6.0.3): the decrypted sum of encrypted
 * updates equals the plaintext sum within 1e-5 per coordinate (stated tolerance: the rounding grid 2^-20 ≈ 9.5e-7
 * plus CKKS noise of order 1e-8 per sum); the aggregator adds without any key; participants clip and refuse
 * non-finite updates before encrypting; the structure checks refuse what a keyless aggregator can see is wrong; the
 * decryptor refuses aggregates below the minimum; the decoded values are rounded.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createRng } from '../../activities/federation/data.js';
import { getSeal } from '../../activities/federation/seal.js';
import type { ComprModeType } from 'node-seal/implementation/compr-mode-type.js';
import type { SchemeType } from 'node-seal/implementation/scheme-type.js';
import type { SecurityLevel } from 'node-seal/implementation/security-level.js';
import { l2Norm } from '../../activities/federation/dp.js';
import {
  aggregateCiphertexts,
  checkStructure,
  CiphertextAccumulator,
  ciphertextCount,
  CKKS_PARAMS,
  decryptAggregate,
  encryptUpdate,
  generateCampaignKeys,
  readHeader,
  SecureAggError,
  validateUpdate,
} from '../../activities/federation/secure-agg.js';

const TOLERANCE = 1e-5;
const LENGTH = 7850; // softmax regression: two ciphertexts, the second partly filled

let keys: { publicKey: Uint8Array; secretKey: Uint8Array };
beforeAll(async () => {
  keys = await generateCampaignKeys();
});

function randomUpdates(count: number, length: number, seed: number, scale = 0.01): Float32Array[] {
  const rng = createRng(seed);
  return Array.from({ length: count }, () => Float32Array.from({ length }, () => rng.normal() * scale));
}

function plainSum(updates: Float32Array[]): Float64Array {
  const sum = new Float64Array(updates[0]!.length);
  for (const u of updates) u.forEach((v, i) => (sum[i]! += v));
  return sum;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function reason(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    if (err instanceof SecureAggError) return err.reason;
    throw err;
  }
  return 'accepted';
}

describe('CKKS secure aggregation', () => {
  it('when 12 encrypted updates are summed without a key, then the decrypted sum equals the plaintext sum within 1e-5', async () => {
    const updates = randomUpdates(12, LENGTH, 1);
    const blobs = await Promise.all(
      updates.map(async (u) => (await encryptUpdate(keys.publicKey, u, { clipNorm: 100 })).bytes),
    );
    expect(blobs[0]!.byteLength).toBeGreaterThan(2 * 262_144); // two ciphertexts of 2 × 8192 × 2 × 8 bytes each
    expect(blobs[0]!.byteLength).toBeLessThan(2 * 262_144 + 1024);
    const aggregate = await aggregateCiphertexts(blobs, { length: LENGTH });
    expect(readHeader(aggregate)).toMatchObject({ length: LENGTH, count: 2, contributors: 12 });
    const { sum, contributors } = await decryptAggregate(keys.secretKey, aggregate, {
      length: LENGTH,
      minContributors: 12,
    });
    expect(contributors).toBe(12);
    expect(maxAbsDiff(sum, plainSum(updates))).toBeLessThan(TOLERANCE);
  });

  it('when the aggregator adds, then no key, key generator, encryptor or decryptor is ever constructed', async () => {
    const blobs = await Promise.all(
      randomUpdates(3, 300, 7).map(async (u) => (await encryptUpdate(keys.publicKey, u, { clipNorm: 10 })).bytes),
    );
    const seal = (await getSeal()) as unknown as Record<string, unknown>;
    const guarded = ['SecretKey', 'PublicKey', 'KeyGenerator', 'Encryptor', 'Decryptor'];
    const originals = guarded.map((name) => seal[name]);
    const touched: string[] = [];
    for (const name of guarded)
      seal[name] = () => {
        touched.push(name);
        throw new Error(`${name} constructed on the aggregator's path`);
      };
    let aggregate: Uint8Array;
    try {
      aggregate = await aggregateCiphertexts(blobs, { length: 300 });
    } finally {
      guarded.forEach((name, k) => (seal[name] = originals[k]));
    }
    expect(touched).toEqual([]);
    expect(readHeader(aggregate).contributors).toBe(3);
  });

  it('when partial sums are summed again (a tree over the federation pool), then the result is the same sum', async () => {
    const updates = randomUpdates(6, LENGTH, 2);
    const blobs = await Promise.all(
      updates.map(async (u) => (await encryptUpdate(keys.publicKey, u, { clipNorm: 100 })).bytes),
    );
    const left = await aggregateCiphertexts(blobs.slice(0, 4), { length: LENGTH });
    const right = await aggregateCiphertexts(blobs.slice(4), { length: LENGTH });
    const acc = await CiphertextAccumulator.create(LENGTH);
    try {
      acc.add(left);
      acc.add(right);
      expect(acc.contributors).toBe(6);
      const { sum } = await decryptAggregate(keys.secretKey, acc.finish(), { length: LENGTH, minContributors: 6 });
      expect(maxAbsDiff(sum, plainSum(updates))).toBeLessThan(TOLERANCE);
    } finally {
      acc.dispose();
    }
  });

  it('when an update is longer than C, then the participant clips it before encrypting; NaN is refused there', async () => {
    const [u] = randomUpdates(1, 100, 3, 1); // norm ≈ 10
    const clipNorm = 2;
    const enc = await encryptUpdate(keys.publicKey, u!, { clipNorm });
    expect(enc.clipped).toBe(true);
    expect(enc.norm).toBeCloseTo(l2Norm(u!), 4);
    const { sum } = await decryptAggregate(keys.secretKey, enc.bytes, { length: 100, minContributors: 1 });
    expect(l2Norm(sum)).toBeLessThan(clipNorm + TOLERANCE * 10);
    expect(l2Norm(sum)).toBeGreaterThan(clipNorm - TOLERANCE * 10);
    const poisoned = Float32Array.from(u!);
    poisoned[5] = Number.NaN;
    expect(await reason(encryptUpdate(keys.publicKey, poisoned, { clipNorm }))).toBe('update');
  });

  it('when decoded, then values are rounded to the 2^-20 grid (no exact CKKS decryption leaves the decryptor)', async () => {
    const [u] = randomUpdates(1, 64, 4);
    const enc = await encryptUpdate(keys.publicKey, u!, { clipNorm: 100 });
    const { sum } = await decryptAggregate(keys.secretKey, enc.bytes, { length: 64, minContributors: 1 });
    for (const v of sum) expect(Number.isInteger(v * 2 ** 20)).toBe(true);
  });

  it('when the aggregate holds fewer than min contributors, then the decryptor refuses it', async () => {
    const blobs = await Promise.all(
      randomUpdates(2, 50, 5).map(async (u) => (await encryptUpdate(keys.publicKey, u, { clipNorm: 10 })).bytes),
    );
    const aggregate = await aggregateCiphertexts(blobs, { length: 50 });
    expect(await reason(decryptAggregate(keys.secretKey, aggregate, { length: 50, minContributors: 3 }))).toBe(
      'contributors',
    );
    // A single participant's update is an "aggregate" of one: refused whenever min > 1.
    expect(await reason(decryptAggregate(keys.secretKey, blobs[0]!, { length: 50, minContributors: 2 }))).toBe(
      'contributors',
    );
  });

  it('when a blob is malformed, of another length, truncated or claims many contributors, then the keyless checks refuse it', async () => {
    const { bytes } = await encryptUpdate(keys.publicKey, randomUpdates(1, LENGTH, 6)[0]!, { clipNorm: 100 });
    expect(checkStructure(bytes, { length: LENGTH })).toMatchObject({
      count: ciphertextCount(LENGTH),
      contributors: 1,
    });
    expect(await reason(() => checkStructure(bytes, { length: 101_770 }))).toBe('length');
    expect(await reason(() => checkStructure(bytes.subarray(0, bytes.byteLength - 10), { length: LENGTH }))).toBe(
      'size',
    );
    expect(await reason(() => checkStructure(new Uint8Array(100), { length: LENGTH }))).toBe('malformed');
    const otherParams = Uint8Array.from(bytes);
    new DataView(otherParams.buffer).setUint32(8, 0x1234, true);
    expect(await reason(() => checkStructure(otherParams, { length: LENGTH }))).toBe('params');
    const forgedCount = Uint8Array.from(bytes);
    new DataView(forgedCount.buffer).setUint32(20, 50, true);
    expect(await reason(() => checkStructure(forgedCount, { length: LENGTH }))).toBe('contributors');
    // Garbage in place of a SEAL ciphertext: the framing is right, SEAL's own validation refuses it.
    const garbage = Uint8Array.from(bytes);
    garbage.fill(7, 40, 4000);
    const acc = await CiphertextAccumulator.create(LENGTH, 1);
    try {
      expect(await reason(() => acc.add(garbage))).toBe('params');
      expect(acc.contributors).toBe(0);
    } finally {
      acc.dispose();
    }
  });

  it('when a participant encrypts at another scale, then aggregator and decryptor refuse that update as a bad one', async () => {
    const honest = (await encryptUpdate(keys.publicKey, randomUpdates(1, 50, 8)[0]!, { clipNorm: 10 })).bytes;
    // The same parameters built by hand, the same public key, but scale 2^50 instead of 2^40.
    const seal = await getSeal();
    const parms = seal.EncryptionParameters(seal.SchemeType.ckks as SchemeType);
    parms.setPolyModulusDegree(8192);
    parms.setCoeffModulus(seal.CoeffModulus.Create(8192, Int32Array.from([60, 60, 60])));
    const context = seal.Context(parms, true, seal.SecurityLevel.tc128 as SecurityLevel);
    const publicKey = seal.PublicKey();
    publicKey.loadArray(context, keys.publicKey);
    const encryptor = seal.Encryptor(context, publicKey);
    const encoder = seal.CKKSEncoder(context);
    const plain = encoder.encode(new Float64Array(4096).fill(0.01), 2 ** 50)!;
    const cipher = encryptor.encrypt(plain)!;
    const scaled = cipher.saveArray(seal.ComprModeType.none as ComprModeType);
    for (const o of [parms, context, publicKey, encryptor, encoder, plain, cipher]) o.delete();
    // Swap it into the honest blob: header (24 bytes), then u32 size and the ciphertext.
    const size = new DataView(honest.buffer, honest.byteOffset).getUint32(24, true);
    expect(scaled.byteLength).toBe(size);
    const forged = Uint8Array.from(honest);
    forged.set(scaled, 28);
    const acc = await CiphertextAccumulator.create(50, 1);
    try {
      acc.add(honest);
      expect(await reason(() => acc.add(forged))).toBe('params');
      expect(acc.contributors).toBe(1);
    } finally {
      acc.dispose();
    }
    expect(await reason(decryptAggregate(keys.secretKey, forged, { length: 50, minContributors: 1 }))).toBe('params');
    expect(await validateUpdate(honest, { length: 50 })).toMatchObject({ contributors: 1 });
    expect(await reason(validateUpdate(forged, { length: 50 }))).toBe('params');
  });

  it('when the parameters are read, then they are the documented additions-only set', () => {
    expect(CKKS_PARAMS).toEqual({
      polyModulusDegree: 8192,
      coeffModulusBits: [60, 60, 60],
      scaleBits: 40,
      securityLevel: 'tc128',
      slots: 4096,
    });
    expect(ciphertextCount(7850)).toBe(2);
    expect(ciphertextCount(101_770)).toBe(25);
  });
});
