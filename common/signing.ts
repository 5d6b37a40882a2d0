/**
 * Ed25519 signatures over canonical JSON (RFC 8785), for council verdicts and other records that must be attributable
 * and tamper-evident. The private key lives as PKCS#8 PEM in a file readable by its owner only (0600).
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomUUID,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { canonicalJson, sha256Hex } from './hash.js';

export const SIGNING_KEY_FILE = 'signing-key.pem';

export interface SigningKey {
  /** First 16 hex characters of the SHA-256 of the public key's SPKI DER encoding. */
  keyId: string;
  privateKey: KeyObject;
  publicKeyPem: string;
}

export interface JsonSignature {
  alg: 'Ed25519';
  keyId: string;
  /** base64url of the Ed25519 signature over the canonical JSON of the value. */
  signature: string;
  /** SHA-256 (hex) of the canonical JSON that was signed. */
  payloadSha256: string;
}

export class SigningKeyError extends Error {
  override name = 'SigningKeyError';
}

/** The key id of a public key (see `SigningKey.keyId`). */
export function keyIdOf(publicKey: KeyObject): string {
  return sha256Hex(publicKey.export({ type: 'spki', format: 'der' })).slice(0, 16);
}

function toSigningKey(privateKey: KeyObject, file: string): SigningKey {
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new SigningKeyError(`${file} holds a ${privateKey.asymmetricKeyType ?? 'non-asymmetric'} key, not Ed25519`);
  }
  const publicKey = createPublicKey(privateKey);
  return {
    keyId: keyIdOf(publicKey),
    privateKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

async function readKey(file: string): Promise<SigningKey> {
  if (process.platform !== 'win32') {
    const { mode } = await stat(file);
    if ((mode & 0o077) !== 0) {
      throw new SigningKeyError(
        `${file} is accessible to group or others (mode ${(mode & 0o777).toString(8)}); run chmod 600 on it`,
      );
    }
  }
  return toSigningKey(createPrivateKey(await readFile(file, 'utf8')), file);
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/**
 * Loads the Ed25519 key kept in `dir`, creating it on first use. Creation is atomic and safe against concurrent
 * callers: the key is written to a private temporary file and hard-linked into place, so every process ends up with
 * the same key and no one ever reads a half-written file.
 */
export async function loadOrCreateSigningKey(dir: string): Promise<SigningKey> {
  const file = path.join(dir, SIGNING_KEY_FILE);
  try {
    return await readKey(file);
  } catch (err) {
    if (!isCode(err, 'ENOENT')) throw err;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const temporary = path.join(dir, `.${SIGNING_KEY_FILE}.${process.pid}.${randomUUID()}.tmp`);
  await writeFile(temporary, pem, { mode: 0o600, flag: 'wx' });
  try {
    await chmod(temporary, 0o600); // the umask can only remove bits, even the owner's read: set 0600 exactly
    await link(temporary, file);
  } catch (err) {
    if (!isCode(err, 'EEXIST')) throw err;
  } finally {
    await unlink(temporary);
  }
  return readKey(file);
}

/** Signs the canonical JSON of `value`. Throws when `value` cannot be written as JSON. */
export function signJson(value: unknown, key: Pick<SigningKey, 'keyId' | 'privateKey'>): JsonSignature {
  const payload = Buffer.from(canonicalJson(value), 'utf8');
  return {
    alg: 'Ed25519',
    keyId: key.keyId,
    signature: sign(null, payload, key.privateKey).toString('base64url'),
    payloadSha256: sha256Hex(payload),
  };
}

/**
 * True when `signature` is a valid Ed25519 signature by `publicKeyPem` over the canonical JSON of `value` (so key
 * order does not matter), and its key id and payload hash agree. False for any mismatch, a malformed signature or a
 * value that cannot be written as JSON; throws only when `publicKeyPem` is not a public key.
 */
export function verifyJson(value: unknown, signature: JsonSignature, publicKeyPem: string): boolean {
  const publicKey = createPublicKey(publicKeyPem);
  if (publicKey.asymmetricKeyType !== 'ed25519') return false;
  if (signature.alg !== 'Ed25519' || signature.keyId !== keyIdOf(publicKey)) return false;
  let payload: Buffer;
  try {
    payload = Buffer.from(canonicalJson(value), 'utf8');
  } catch {
    return false;
  }
  if (sha256Hex(payload) !== signature.payloadSha256) return false;
  const bytes = Buffer.from(signature.signature, 'base64url');
  if (bytes.length !== 64) return false;
  return verify(null, payload, publicKey, bytes);
}

// ---- the public halves in PostgreSQL (signing_keys: insert-only for the application's role) ------------------------

/** A pool or a client (inside a transaction or a consistent snapshot). */
type Queryable = Pick<pg.ClientBase, 'query'>;

/** Records a key's public half, once, so that what it signs can be verified later. */
export async function registerSigningKey(
  db: Queryable,
  key: Pick<SigningKey, 'keyId' | 'publicKeyPem'>,
): Promise<void> {
  await db.query('INSERT INTO signing_keys (key_id, public_key_pem) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING', [
    key.keyId,
    key.publicKeyPem,
  ]);
}

/** Every registered public key. */
export async function listSigningKeys(db: Queryable): Promise<Pick<SigningKey, 'keyId' | 'publicKeyPem'>[]> {
  const { rows } = await db.query<{ key_id: string; public_key_pem: string }>(
    'SELECT key_id, public_key_pem FROM signing_keys',
  );
  return rows.map((r) => ({ keyId: r.key_id, publicKeyPem: r.public_key_pem }));
}
