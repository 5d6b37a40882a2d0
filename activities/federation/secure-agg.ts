/**
 * Secure aggregation with CKKS (Microsoft SEAL through node-seal 6.0.3): participants encrypt their clipped updates
 * with the campaign's public key, a keyless aggregator adds ciphertexts, and only the decryptor, holding the secret
 * key, decrypts the aggregate.
 *
 * Parameters (additions only: no multiplication, no rescaling, no relinearisation or Galois keys):
 * - polynomial modulus degree N = 8192 → 4096 complex slots; a vector of P parameters fills ⌈P/4096⌉ ciphertexts
 *   (7,850 → 2; 101,770 → 25), parameter i in slot i mod 4096 of ciphertext ⌊i/4096⌋, unused slots zero.
 * - coefficient modulus: three 60-bit primes (180 bits ≤ 218, the HomomorphicEncryption.org bound for N = 8192 at
 *   128-bit classical security, SEAL's tc128, which SEAL enforces when it builds the context). The last prime is the
 *   special (key-switching) prime, so a ciphertext carries two: 2 polynomials × 8192 × 2 × 8 bytes = 262,144 bytes.
 * - scale Δ = 2^40: a value v is encoded as round(v·Δ); the 120-bit ciphertext modulus leaves ~2^79 of headroom, far
 *   beyond any sum of clipped updates (|coordinate| ≤ C per participant), and the encoding/encryption error of a sum
 *   of k ciphertexts is about √k · 1e-9 — the tests bound it.
 *
 * Key custody: `generateCampaignKeys` runs in the decryptor's worker; the public key is published to participants,
 * the secret key stays with the decryptor. `CiphertextAccumulator`/`aggregateCiphertexts` build only a context, an
 * evaluator and ciphertexts — no key object exists in that code path. A keyless aggregator cannot measure an
 * encrypted update's norm: clipping and the finite check happen in `encryptUpdate`, in the participant's worker;
 * the aggregator checks structure (header, parameter tag, ciphertext count, byte sizes, SEAL's own validation of
 * each ciphertext against the context when it loads it, then its size, level and scale).
 *
 * IND-CPA^D (Li & Micciancio 2021): an exact CKKS decryption carries the encryption noise, and publishing it can leak
 * the secret key. `decryptAggregate` rounds every decoded value to a multiple of 2^-roundingBits (default 2^-20 ≈ 1e-6,
 * far above the ≈1e-9 noise), and in DP mode the decryptor's Gaussian noise is added to the rounded values.
 *
 * Exported API (stable; F2 codes against it):
 * ```ts
 * CKKS_PARAMS: { polyModulusDegree: 8192, coeffModulusBits: [60, 60, 60], scaleBits: 40, securityLevel: 'tc128', slots: 4096 }
 * PARAMS_TAG: number                                        // identifies CKKS_PARAMS in every serialised blob
 * ciphertextCount(length): number                           // ⌈length / 4096⌉
 * generateCampaignKeys(): Promise<{ publicKey: Uint8Array; secretKey: Uint8Array; paramsTag: number }>
 * encryptUpdate(publicKey, update: ArrayLike<number>, { clipNorm, noiseStd?, noise? }):
 *   Promise<{ bytes: Uint8Array; norm: number; clipped: boolean }>   // clips to C, refuses non-finite, 1 contributor
 * readHeader(bytes): CiphertextHeader                       // { version, paramsTag, length, count, contributors }
 * checkStructure(bytes, { length, maxContributors? }): CiphertextHeader   // throws SecureAggError
 * validateUpdate(bytes, { length }): Promise<CiphertextHeader>   // + SEAL load, level and scale of each ciphertext
 * class CiphertextAccumulator { static create(length); add(bytes); get contributors; finish(): Uint8Array; dispose() }
 * aggregateCiphertexts(blobs: Uint8Array[], { length }): Promise<Uint8Array>    // keyless sum, contributors summed
 * decryptAggregate(secretKey, bytes, { length, minContributors, roundingBits? }): Promise<{ sum: Float64Array; contributors }>
 * ```
 * Blob layout (little-endian): "AGCK" · u8 version=1 · 3 bytes zero · u32 paramsTag · u32 length · u32 count ·
 * u32 contributors · count × (u32 size · SEAL ciphertext bytes).
 */
import type { SEALLibrary } from 'node-seal/implementation/seal.js';
import type { Context } from 'node-seal/implementation/context.js';
import type { CKKSEncoder } from 'node-seal/implementation/ckks-encoder.js';
import type { Evaluator } from 'node-seal/implementation/evaluator.js';
import type { CipherText } from 'node-seal/implementation/cipher-text.js';
import type { SchemeType } from 'node-seal/implementation/scheme-type.js';
import type { SecurityLevel } from 'node-seal/implementation/security-level.js';
import type { ComprModeType } from 'node-seal/implementation/compr-mode-type.js';
import { clipL2, type NoiseSource } from './dp.js';
import { getSeal } from './seal.js';

export const CKKS_PARAMS = {
  polyModulusDegree: 8192,
  coeffModulusBits: [60, 60, 60],
  scaleBits: 40,
  securityLevel: 'tc128',
  slots: 4096,
} as const;

/** A tag of the parameters above, written into every blob so that a blob made under other parameters is refused. */
export const PARAMS_TAG = 0x0c_2000_3c; // degree 2^13, 3 primes of 60 bits (a fixed tag; bump when CKKS_PARAMS change)

const MAGIC = 0x4b434741; // "AGCK" read as a little-endian u32
const VERSION = 1;
const HEADER_BYTES = 24;
/** SEAL's serialised ciphertext at these parameters (uncompressed) is 262,144 bytes of data plus its own header. */
const MAX_CIPHERTEXT_BYTES = 300_000;

export class SecureAggError extends Error {
  constructor(
    readonly reason: 'malformed' | 'params' | 'length' | 'count' | 'size' | 'contributors' | 'update',
    message: string,
  ) {
    super(message);
    this.name = 'SecureAggError';
  }
}

export interface CiphertextHeader {
  version: number;
  paramsTag: number;
  /** Number of plaintext values (model parameters). */
  length: number;
  /** Number of SEAL ciphertexts. */
  count: number;
  /** How many participants' updates this blob sums (1 for a participant's own). */
  contributors: number;
}

export function ciphertextCount(length: number): number {
  return Math.ceil(length / CKKS_PARAMS.slots);
}

interface Ckks {
  seal: SEALLibrary;
  context: Context;
  /** The parms_id of the first data level: every fresh ciphertext of these parameters carries it. */
  firstParmsId: string;
  encoder: CKKSEncoder;
  evaluator: Evaluator;
  scale: number;
  none: ComprModeType;
}

let ckks: Promise<Ckks> | undefined;

/** One context per process, kept for its lifetime (building it costs ~100 ms; it holds no key). */
function getCkks(): Promise<Ckks> {
  ckks ??= (async () => {
    const seal = await getSeal();
    const parms = seal.EncryptionParameters(seal.SchemeType.ckks as SchemeType);
    parms.setPolyModulusDegree(CKKS_PARAMS.polyModulusDegree);
    parms.setCoeffModulus(
      seal.CoeffModulus.Create(CKKS_PARAMS.polyModulusDegree, Int32Array.from(CKKS_PARAMS.coeffModulusBits)),
    );
    const context = seal.Context(parms, true, seal.SecurityLevel.tc128 as SecurityLevel);
    parms.delete();
    if (!context.parametersSet()) throw new Error(`SEAL refused the CKKS parameters ${JSON.stringify(CKKS_PARAMS)}`);
    const first = context.firstParmsId;
    const firstParmsId = first.values.join(',');
    first.delete();
    return {
      seal,
      context,
      firstParmsId,
      encoder: seal.CKKSEncoder(context),
      evaluator: seal.Evaluator(context),
      scale: 2 ** CKKS_PARAMS.scaleBits,
      none: seal.ComprModeType.none as ComprModeType,
    };
  })();
  return ckks;
}

export function readHeader(bytes: Uint8Array): CiphertextHeader {
  if (bytes.byteLength < HEADER_BYTES) throw new SecureAggError('malformed', `blob of ${bytes.byteLength} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new SecureAggError('malformed', 'not a CKKS update blob');
  return {
    version: view.getUint8(4),
    paramsTag: view.getUint32(8, true),
    length: view.getUint32(12, true),
    count: view.getUint32(16, true),
    contributors: view.getUint32(20, true),
  };
}

/** The ciphertexts' bytes inside a blob (views, no copies), after checking the framing. */
function splitBlob(bytes: Uint8Array, header: CiphertextHeader): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: Uint8Array[] = [];
  let at = HEADER_BYTES;
  for (let k = 0; k < header.count; k++) {
    if (at + 4 > bytes.byteLength) throw new SecureAggError('size', `blob truncated before ciphertext ${k}`);
    const size = view.getUint32(at, true);
    if (size === 0 || size > MAX_CIPHERTEXT_BYTES)
      throw new SecureAggError('size', `ciphertext ${k} has ${size} bytes (at most ${MAX_CIPHERTEXT_BYTES})`);
    if (at + 4 + size > bytes.byteLength) throw new SecureAggError('size', `blob truncated inside ciphertext ${k}`);
    parts.push(bytes.subarray(at + 4, at + 4 + size));
    at += 4 + size;
  }
  if (at !== bytes.byteLength) throw new SecureAggError('size', `${bytes.byteLength - at} trailing bytes`);
  return parts;
}

/**
 * Structure-only validation, what a keyless aggregator can check: framing, parameter tag, the plaintext length the
 * round expects, the ciphertext count that length implies, sizes. (SEAL checks each ciphertext against the context
 * again when the accumulator loads it.)
 */
export function checkStructure(
  bytes: Uint8Array,
  expected: { length: number; maxContributors?: number },
): CiphertextHeader {
  const header = readHeader(bytes);
  if (header.version !== VERSION) throw new SecureAggError('malformed', `blob version ${header.version}`);
  if (header.paramsTag !== PARAMS_TAG)
    throw new SecureAggError('params', `made under other CKKS parameters (tag ${header.paramsTag.toString(16)})`);
  if (header.length !== expected.length)
    throw new SecureAggError('length', `holds ${header.length} values, the model has ${expected.length}`);
  if (header.count !== ciphertextCount(header.length))
    throw new SecureAggError('count', `${header.count} ciphertexts for ${header.length} values`);
  if (header.contributors < 1 || header.contributors > (expected.maxContributors ?? 1))
    throw new SecureAggError('contributors', `claims ${header.contributors} contributors`);
  splitBlob(bytes, header);
  return header;
}

function writeBlob(header: Omit<CiphertextHeader, 'version' | 'paramsTag'>, parts: Uint8Array[]): Uint8Array {
  const total = HEADER_BYTES + parts.reduce((s, p) => s + 4 + p.byteLength, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint8(4, VERSION);
  view.setUint32(8, PARAMS_TAG, true);
  view.setUint32(12, header.length, true);
  view.setUint32(16, header.count, true);
  view.setUint32(20, header.contributors, true);
  let at = HEADER_BYTES;
  for (const p of parts) {
    view.setUint32(at, p.byteLength, true);
    out.set(p, at + 4);
    at += 4 + p.byteLength;
  }
  return out;
}

/** A new key pair for a campaign. Run by the decryptor; only the public key leaves it. */
export async function generateCampaignKeys(): Promise<{
  publicKey: Uint8Array;
  secretKey: Uint8Array;
  paramsTag: number;
}> {
  const { seal, context, none } = await getCkks();
  const keys = seal.KeyGenerator(context);
  const publicKey = keys.createPublicKey();
  const secretKey = keys.secretKey();
  try {
    return { publicKey: publicKey.saveArray(none), secretKey: secretKey.saveArray(none), paramsTag: PARAMS_TAG };
  } finally {
    publicKey.delete();
    secretKey.delete();
    keys.delete();
  }
}

/**
 * Participant side: refuse a non-finite update, clip it to L2 norm `clipNorm`, optionally add this participant's
 * share of the DP noise (distributed mode), encode and encrypt with the campaign's public key.
 */
export async function encryptUpdate(
  publicKeyBytes: Uint8Array,
  update: ArrayLike<number>,
  options: { clipNorm: number; noiseStd?: number; noise?: NoiseSource },
): Promise<{ bytes: Uint8Array; norm: number; clipped: boolean }> {
  if (update.length === 0) throw new SecureAggError('update', 'empty update');
  let clipped: ReturnType<typeof clipL2>;
  try {
    clipped = clipL2(update, options.clipNorm);
  } catch (err) {
    throw new SecureAggError('update', (err as Error).message);
  }
  const values = Float64Array.from(clipped.clipped);
  if (options.noiseStd && options.noiseStd > 0) {
    if (!options.noise) throw new RangeError('noiseStd given without a noise source');
    for (let i = 0; i < values.length; i++) values[i]! += options.noiseStd * options.noise.gaussian();
  }
  const { seal, context, encoder, scale, none } = await getCkks();
  const publicKey = seal.PublicKey();
  publicKey.loadArray(context, publicKeyBytes);
  const encryptor = seal.Encryptor(context, publicKey);
  const parts: Uint8Array[] = [];
  try {
    const slots = CKKS_PARAMS.slots;
    for (let start = 0; start < values.length; start += slots) {
      const chunk = new Float64Array(slots);
      chunk.set(values.subarray(start, Math.min(start + slots, values.length)));
      const plain = encoder.encode(chunk, scale) as ReturnType<SEALLibrary['PlainText']>;
      const cipher = encryptor.encrypt(plain) as CipherText;
      parts.push(cipher.saveArray(none));
      plain.delete();
      cipher.delete();
    }
  } finally {
    encryptor.delete();
    publicKey.delete();
  }
  return {
    bytes: writeBlob({ length: values.length, count: parts.length, contributors: 1 }, parts),
    norm: clipped.norm,
    clipped: clipped.scale < 1,
  };
}

/**
 * What SEAL's load does not check but an honest participant's ciphertext always satisfies: two polynomials, the first
 * data level's parms_id and the scale 2^40. One ciphertext at another scale or level would otherwise make SEAL's add
 * throw a raw error and sink the whole round, instead of being rejected (and audited) as one bad update.
 */
function checkCiphertext(ckks: Ckks, c: CipherText): void {
  if (c.size !== 2) throw new SecureAggError('params', `ciphertext of size ${c.size}, expected 2`);
  if (c.scale !== ckks.scale) throw new SecureAggError('params', `ciphertext at scale 2^${Math.log2(c.scale)}`);
  const id = c.parmsId;
  const same = id.values.join(',') === ckks.firstParmsId;
  id.delete();
  if (!same) throw new SecureAggError('params', 'ciphertext at another level of the modulus chain');
}

/**
 * Everything a keyless aggregator can check on one participant's blob, without summing it: `checkStructure`, then
 * SEAL's validation and `checkCiphertext` on every ciphertext. Run it when an update arrives, so that one bad blob is
 * rejected on its own rather than failing the sum later.
 */
export async function validateUpdate(bytes: Uint8Array, expected: { length: number }): Promise<CiphertextHeader> {
  const header = checkStructure(bytes, { length: expected.length, maxContributors: 1 });
  const ckks = await getCkks();
  for (const part of splitBlob(bytes, header)) {
    const c = ckks.seal.CipherText();
    try {
      try {
        c.loadArray(ckks.context, part);
      } catch (err) {
        throw new SecureAggError('params', `SEAL refused a ciphertext: ${String(err)}`);
      }
      checkCiphertext(ckks, c);
    } finally {
      c.delete();
    }
  }
  return header;
}

/**
 * The keyless running sum: holds one ciphertext per slot block and adds blobs (participants' updates or partial
 * sums) into it. Call `dispose()` when done (SEAL objects live in WebAssembly memory, not the JS heap).
 */
export class CiphertextAccumulator {
  private sums: CipherText[] = [];
  private count = 0;

  private constructor(
    private readonly ckks: Ckks,
    readonly length: number,
    private readonly maxContributors: number,
  ) {}

  /** `maxContributors`: the most participants a blob may claim (a partial sum's size; default: no limit). */
  static async create(length: number, maxContributors = Number.MAX_SAFE_INTEGER): Promise<CiphertextAccumulator> {
    return new CiphertextAccumulator(await getCkks(), length, maxContributors);
  }

  get contributors(): number {
    return this.count;
  }

  add(bytes: Uint8Array): CiphertextHeader {
    const header = checkStructure(bytes, { length: this.length, maxContributors: this.maxContributors });
    const parts = splitBlob(bytes, header);
    const { seal, context, evaluator } = this.ckks;
    const loaded: CipherText[] = [];
    try {
      for (const part of parts) {
        const c = seal.CipherText();
        loaded.push(c);
        try {
          c.loadArray(context, part); // SEAL validates the ciphertext against the context here
        } catch (err) {
          throw new SecureAggError('params', `SEAL refused a ciphertext: ${String(err)}`);
        }
        checkCiphertext(this.ckks, c);
      }
      if (this.sums.length === 0) {
        this.sums = loaded.splice(0);
      } else {
        loaded.forEach((c, k) => evaluator.add(this.sums[k]!, c, this.sums[k]));
      }
      this.count += header.contributors;
      return header;
    } finally {
      for (const c of loaded) c.delete();
    }
  }

  finish(): Uint8Array {
    if (this.count === 0) throw new SecureAggError('contributors', 'nothing to aggregate');
    const parts = this.sums.map((c) => c.saveArray(this.ckks.none));
    return writeBlob({ length: this.length, count: parts.length, contributors: this.count }, parts);
  }

  dispose(): void {
    for (const c of this.sums) c.delete();
    this.sums = [];
  }
}

/** Keyless sum of blobs (updates or partial sums) into one blob whose header counts all contributors. */
export async function aggregateCiphertexts(
  blobs: readonly Uint8Array[],
  options: { length: number },
): Promise<Uint8Array> {
  const acc = await CiphertextAccumulator.create(options.length);
  try {
    for (const blob of blobs) acc.add(blob);
    return acc.finish();
  } finally {
    acc.dispose();
  }
}

/**
 * Decryptor side: decrypt an aggregate of at least `minContributors` updates and round the decoded values to a
 * multiple of 2^-roundingBits. The header's contributor count is the aggregator's claim; the caller must also check
 * it against the round's recorded aggregate.
 */
export async function decryptAggregate(
  secretKeyBytes: Uint8Array,
  bytes: Uint8Array,
  options: { length: number; minContributors: number; roundingBits?: number },
): Promise<{ sum: Float64Array; contributors: number }> {
  const header = checkStructure(bytes, { length: options.length, maxContributors: Number.MAX_SAFE_INTEGER });
  if (header.contributors < options.minContributors)
    throw new SecureAggError(
      'contributors',
      `aggregate of ${header.contributors} updates; at least ${options.minContributors} required`,
    );
  const parts = splitBlob(bytes, header);
  const ckks = await getCkks();
  const { seal, context, encoder } = ckks;
  const secretKey = seal.SecretKey();
  secretKey.loadArray(context, secretKeyBytes);
  const decryptor = seal.Decryptor(context, secretKey);
  const grid = 2 ** (options.roundingBits ?? 20);
  const sum = new Float64Array(options.length);
  try {
    parts.forEach((part, k) => {
      const c = seal.CipherText();
      const plain = seal.PlainText();
      try {
        c.loadArray(context, part);
        checkCiphertext(ckks, c);
        decryptor.decrypt(c, plain);
        const decoded = encoder.decode(plain);
        const start = k * CKKS_PARAMS.slots;
        const end = Math.min(start + CKKS_PARAMS.slots, options.length);
        for (let i = start; i < end; i++) sum[i] = Math.round(decoded[i - start]! * grid) / grid;
      } finally {
        c.delete();
        plain.delete();
      }
    });
  } finally {
    decryptor.delete();
    secretKey.delete();
  }
  return { sum, contributors: header.contributors };
}
