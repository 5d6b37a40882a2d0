/**
 * Payload encryption: a Temporal PayloadCodec with AES-256-GCM, so workflow inputs, results, signals and memos are
 * stored by the Temporal server as ciphertext.
 *
 * Each encrypted payload is the whole original Payload (metadata + data, protobuf) sealed with a fresh 12-byte IV:
 *   metadata: { encoding: "binary/encrypted", encryption-cipher: "AES-256-GCM", encryption-key-id: <id> }
 *   data:     IV (12) ‖ ciphertext ‖ GCM tag (16)
 * The key id is also the GCM additional data, so a payload cannot be relabelled to another key.
 * Encoding uses the active key; decoding picks the key named in the payload, so after a rotation (new active key,
 * old key kept in PAYLOAD_KEYS) old histories still decrypt. A payload whose key is not configured or whose tag does
 * not verify throws PayloadDecryptionError: never garbage.
 *
 * A payload that is not encrypted was not written by a holder of the keys (a signal from the CLI or the Web UI without
 * the codec, say). Clients and workers (dataConverterFromConfig) decode it into a tagged value, never the value it
 * carries: `{__agencyUntrustedPlaintext: true, encoding, sizeBytes}`, which workflows refuse and record
 * (workflows/task/decision-proof.ts). Never a throw: a decode error on a signal would fail the workflow task at every
 * replay. PAYLOAD_ACCEPT_PLAINTEXT=true (a migration setting) passes plaintext through as it is, so histories written
 * before encryption was turned on stay readable; so does the Web UI's codec endpoint, which only displays.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { METADATA_ENCODING_KEY, type Payload, type PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { Config } from '../common/config.js';
import { UNTRUSTED_PLAINTEXT_TAG } from '../workflows/task/decision-proof.js';

export const ENCODING_ENCRYPTED = 'binary/encrypted';
export const METADATA_KEY_ID = 'encryption-key-id';
export const METADATA_CIPHER = 'encryption-cipher';
const CIPHER_NAME = 'AES-256-GCM';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

const ProtoPayload = proto.temporal.api.common.v1.Payload;
const utf8 = (s: string): Uint8Array => Buffer.from(s, 'utf8');
const text = (b: Uint8Array | null | undefined): string | undefined =>
  b ? Buffer.from(b).toString('utf8') : undefined;
const aad = (keyId: string): Buffer => Buffer.from(`agency-payload/${CIPHER_NAME}/${keyId}`, 'utf8');

/** A payload that cannot be decrypted: unknown key id, malformed, or its authentication tag does not verify. */
export class PayloadDecryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadDecryptionError';
  }
}

export interface AesGcmCodecOptions {
  /** Key id → 32 bytes of key material. */
  keys: ReadonlyMap<string, Uint8Array>;
  /** The id of the key new payloads are encrypted with. */
  activeKeyId: string;
  /** What an unencrypted payload decodes into: itself (`pass`, the default) or a tagged, untrusted value (`tag`). */
  plaintext?: 'pass' | 'tag';
}

/** The tagged value an unencrypted payload decodes into with `plaintext: 'tag'` (json/plain). */
export function untrustedPlaintextPayload(payload: Payload): Payload {
  const value = {
    [UNTRUSTED_PLAINTEXT_TAG]: true,
    encoding: text(payload.metadata?.[METADATA_ENCODING_KEY]) ?? 'unknown',
    sizeBytes: payload.data?.length ?? 0,
  };
  return { metadata: { [METADATA_ENCODING_KEY]: utf8('json/plain') }, data: utf8(JSON.stringify(value)) };
}

export class AesGcmCodec implements PayloadCodec {
  readonly #keys: ReadonlyMap<string, Buffer>;
  readonly activeKeyId: string;
  readonly plaintext: 'pass' | 'tag';

  constructor({ keys, activeKeyId, plaintext = 'pass' }: AesGcmCodecOptions) {
    this.plaintext = plaintext;
    const copy = new Map<string, Buffer>();
    for (const [id, key] of keys) {
      if (key.length !== KEY_BYTES)
        throw new Error(`payload key "${id}" has ${key.length} bytes; expected ${KEY_BYTES}`);
      copy.set(id, Buffer.from(key));
    }
    if (!copy.has(activeKeyId)) throw new Error(`the active payload key "${activeKeyId}" is not among the keys`);
    this.#keys = copy;
    this.activeKeyId = activeKeyId;
  }

  /** The configured key ids (never the keys). */
  get keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  encode(payloads: Payload[]): Promise<Payload[]> {
    const keyId = this.activeKeyId;
    const key = this.#keys.get(keyId) as Buffer;
    return Promise.resolve(
      payloads.map((payload) => {
        const iv = randomBytes(IV_BYTES);
        const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
        cipher.setAAD(aad(keyId));
        const plaintext = ProtoPayload.encode(payload).finish();
        const sealed = Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
        return {
          metadata: {
            [METADATA_ENCODING_KEY]: utf8(ENCODING_ENCRYPTED),
            [METADATA_CIPHER]: utf8(CIPHER_NAME),
            [METADATA_KEY_ID]: utf8(keyId),
          },
          data: sealed,
        };
      }),
    );
  }

  decode(payloads: Payload[]): Promise<Payload[]> {
    // A payload that does not decrypt rejects the whole batch: never a partial or garbled answer.
    return new Promise((resolve) => resolve(payloads.map((payload) => this.decodeOne(payload))));
  }

  private decodeOne(payload: Payload): Payload {
    if (text(payload.metadata?.[METADATA_ENCODING_KEY]) !== ENCODING_ENCRYPTED)
      return this.plaintext === 'tag' ? untrustedPlaintextPayload(payload) : payload;
    const keyId = text(payload.metadata?.[METADATA_KEY_ID]);
    if (!keyId) throw new PayloadDecryptionError(`encrypted payload has no ${METADATA_KEY_ID} in its metadata`);
    const cipherName = text(payload.metadata?.[METADATA_CIPHER]);
    if (cipherName !== undefined && cipherName !== CIPHER_NAME) {
      throw new PayloadDecryptionError(`encrypted payload uses cipher ${cipherName}; only ${CIPHER_NAME} is supported`);
    }
    const key = this.#keys.get(keyId);
    if (!key) {
      throw new PayloadDecryptionError(
        `payload was encrypted with key "${keyId}", which is not configured (PAYLOAD_KEYS has: ${this.keyIds.join(', ')})`,
      );
    }
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) {
      throw new PayloadDecryptionError(`encrypted payload (key "${keyId}") is truncated: ${data.length} bytes`);
    }
    const iv = data.subarray(0, IV_BYTES);
    const tag = data.subarray(data.length - TAG_BYTES);
    const ciphertext = data.subarray(IV_BYTES, data.length - TAG_BYTES);
    let plaintext: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(aad(keyId));
      decipher.setAuthTag(tag);
      plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    } catch {
      throw new PayloadDecryptionError(
        `payload encrypted with key "${keyId}" failed authentication: the key material for "${keyId}" is not the one ` +
          'it was encrypted with, or the payload was altered',
      );
    }
    try {
      return ProtoPayload.decode(plaintext);
    } catch (err) {
      throw new PayloadDecryptionError(
        `payload decrypted with key "${keyId}" is not a Temporal payload: ${(err as Error).message}`,
      );
    }
  }
}

/** The codec the configuration asks for: AES-256-GCM when PAYLOAD_KEYS is set, otherwise none (no encryption). */
export function codecFromConfig(config: Pick<Config, 'PAYLOAD_KEYS' | 'PAYLOAD_KEY_ID'>): AesGcmCodec | undefined {
  if (!config.PAYLOAD_KEYS || config.PAYLOAD_KEYS.size === 0) return undefined;
  if (!config.PAYLOAD_KEY_ID) throw new Error('PAYLOAD_KEY_ID is required when PAYLOAD_KEYS is set');
  const keys = new Map([...config.PAYLOAD_KEYS].map(([id, secret]) => [id, secret.reveal()] as const));
  return new AesGcmCodec({ keys, activeKeyId: config.PAYLOAD_KEY_ID });
}

/**
 * `{ payloadCodecs }` for a Client or Worker dataConverter, or undefined when payloads are not encrypted. Unencrypted
 * payloads decode into the untrusted tag, unless PAYLOAD_ACCEPT_PLAINTEXT is true.
 */
export function dataConverterFromConfig(
  config: Pick<Config, 'PAYLOAD_KEYS' | 'PAYLOAD_KEY_ID'> & Partial<Pick<Config, 'PAYLOAD_ACCEPT_PLAINTEXT'>>,
): { payloadCodecs: PayloadCodec[] } | undefined {
  const codec = codecFromConfig(config);
  if (!codec) return undefined;
  const plaintext = config.PAYLOAD_ACCEPT_PLAINTEXT ? 'pass' : 'tag';
  const keys = new Map([...(config.PAYLOAD_KEYS ?? [])].map(([id, secret]) => [id, secret.reveal()] as const));
  return { payloadCodecs: [new AesGcmCodec({ keys, activeKeyId: codec.activeKeyId, plaintext })] };
}
