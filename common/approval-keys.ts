/**
 * The key that signs people's decisions (workflows/task/decision-proof.ts), and the public keys workflows trust.
 *
 * - Production: APPROVAL_SIGNING_KEY (base64 of a 32-byte Ed25519 seed, a secret shared by every API replica) with
 *   APPROVAL_SIGNING_KEY_ID. Rotation: make a new key the signing key and move the old one's public half into
 *   APPROVAL_PUBLIC_KEYS (`id:base64-public-key,…`); decisions it signed stay valid. Without a key the API signs
 *   nothing: decisions answer 503 (fail closed), never unsigned.
 * - Development and tests (NODE_ENV ≠ production, no key configured): a key made once under SIGNING_KEY_DIR
 *   (AGENCY_HOME/keys/approval-signing.key, 0600), shared by every process using that directory.
 *
 * The trusted public keys are the signing key's public half plus APPROVAL_PUBLIC_KEYS. The API puts them in each
 * task's input; a workflow that meets an unknown key id asks the `approvalPublicKeys` activity, whose result is in
 * its history (so replay is deterministic).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.js';
import { sha256Hex } from './hash.js';
import { signJson } from './signing.js';
import type { ApprovalPublicKeys, DecisionGrant, SignedDecision } from '../workflows/task/decision-proof.js';

export const APPROVAL_KEY_FILE = 'approval-signing.key';

export interface ApprovalSigner {
  keyId: string;
  privateKey: KeyObject;
  /** Every public key a workflow should trust (this one included). */
  publicKeys: ApprovalPublicKeys;
}

type KeyConfig = Pick<
  Config,
  'NODE_ENV' | 'SIGNING_KEY_DIR' | 'APPROVAL_SIGNING_KEY' | 'APPROVAL_SIGNING_KEY_ID' | 'APPROVAL_PUBLIC_KEYS'
>;

export class ApprovalKeyError extends Error {
  override name = 'ApprovalKeyError';
}

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function privateKeyFromSeed(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The raw 32-byte public key, base64. */
export function rawPublicKey(privateKey: KeyObject): string {
  const x = createPublicKey(privateKey).export({ format: 'jwk' }).x;
  return Buffer.from(String(x), 'base64url').toString('base64');
}

async function loadOrCreateDevKey(dir: string): Promise<{ keyId: string; seed: Buffer }> {
  const file = path.join(dir, APPROVAL_KEY_FILE);
  const parse = (text: string): { keyId: string; seed: Buffer } => {
    const [keyId, encoded] = text.trim().split(':');
    const seed = Buffer.from(encoded ?? '', 'base64');
    if (!keyId || seed.length !== 32) throw new ApprovalKeyError(`${file} is not "id:base64-32-byte-seed"`);
    return { keyId, seed };
  };
  try {
    const { mode } = await stat(file);
    if ((mode & 0o077) !== 0) throw new ApprovalKeyError(`${file} is accessible to group or others; chmod 600 it`);
    return parse(await readFile(file, 'utf8'));
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(String(privateKey.export({ format: 'jwk' }).d), 'base64url');
  const keyId = `dev-${sha256Hex(rawPublicKey(privateKey)).slice(0, 12)}`;
  const temporary = path.join(dir, `.${APPROVAL_KEY_FILE}.${process.pid}.${randomUUID()}.tmp`);
  await writeFile(temporary, `${keyId}:${seed.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await chmod(temporary, 0o600);
    await link(temporary, file); // first writer wins; everyone reads the same file
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'EEXIST') throw err;
  } finally {
    await unlink(temporary);
  }
  return parse(await readFile(file, 'utf8'));
}

/** The signing key, or undefined in production when none is configured (decisions are then refused with 503). */
export async function loadApprovalSigner(config: KeyConfig): Promise<ApprovalSigner | undefined> {
  let keyId: string;
  let seed: Buffer;
  if (config.APPROVAL_SIGNING_KEY && config.APPROVAL_SIGNING_KEY_ID) {
    keyId = config.APPROVAL_SIGNING_KEY_ID;
    seed = config.APPROVAL_SIGNING_KEY.reveal();
  } else if (config.NODE_ENV === 'production') {
    return undefined;
  } else {
    ({ keyId, seed } = await loadOrCreateDevKey(config.SIGNING_KEY_DIR));
  }
  const privateKey = privateKeyFromSeed(seed);
  return { keyId, privateKey, publicKeys: { ...config.APPROVAL_PUBLIC_KEYS, [keyId]: rawPublicKey(privateKey) } };
}

/** The public keys to trust (for workers: the activity `approvalPublicKeys`). */
export async function loadApprovalPublicKeys(config: KeyConfig): Promise<ApprovalPublicKeys> {
  const signer = await loadApprovalSigner(config);
  return signer?.publicKeys ?? { ...config.APPROVAL_PUBLIC_KEYS };
}

/** Signs a grant (canonical JSON, Ed25519: common/signing.ts). */
export function signDecision(
  signer: Pick<ApprovalSigner, 'keyId' | 'privateKey'>,
  grant: DecisionGrant,
): SignedDecision {
  const signature = signJson(grant, signer);
  return { grant, signature: { ...signature, alg: 'Ed25519' } };
}

const signers = new WeakMap<object, Promise<ApprovalSigner | undefined>>();

/** loadApprovalSigner, once per configuration object (the API's routes share it). */
export function approvalSignerFor(config: KeyConfig): Promise<ApprovalSigner | undefined> {
  let signer = signers.get(config);
  if (!signer) {
    signer = loadApprovalSigner(config);
    signers.set(config, signer);
    signer.catch(() => signers.delete(config));
  }
  return signer;
}
