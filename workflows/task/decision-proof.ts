/**
 * Signed decisions: what makes a person's approval or rejection verifiable inside a workflow. The API signs each
 * decision it makes for an authenticated principal (api/approval-signer.ts): the task's workflow id, its tenant, the
 * hash decided on, the approver, their roles, the decision, when, until when, and a nonce; Ed25519 over the canonical
 * JSON (RFC 8785) of that grant, the same construction as signed council verdicts (common/signing.ts signJson). The
 * workflow checks the signature against the public keys it was given (its input, or an activity whose result is in
 * its history), and that the nonce is new. Pure JavaScript (@noble/curves): deterministic and workflow-safe.
 */
import { ed25519 } from '@noble/curves/ed25519';
import { sha256 } from '@noble/hashes/sha2';
import canonicalize from 'canonicalize';

/** What the API signs. Every field is bound by the signature. */
export interface DecisionGrant {
  v: 1;
  /** The workflow id of the task (task-<id>). */
  task: string;
  tenant: string;
  /** The hash of the plan, diff or tool call the approver saw. */
  hash: string;
  /** The authenticated principal (user:<key name> or the JWT subject). */
  approver: string;
  roles: string[];
  decision: 'approve' | 'reject';
  reason?: string;
  /** When it was signed and until when the workflow takes it (ISO 8601). */
  at: string;
  expires: string;
  /** Random, once: the workflow refuses a nonce it has seen. */
  nonce: string;
}

/** As common/signing.ts JsonSignature. */
export interface DecisionSignature {
  alg: 'Ed25519';
  keyId: string;
  /** base64url of the Ed25519 signature over the canonical JSON of the grant. */
  signature: string;
  /** SHA-256 (hex) of that canonical JSON. */
  payloadSha256: string;
}

/** A signed decision: the input of the `approve`/`reject` signals and the `decide` update (also their legacy shape). */
export interface SignedDecision {
  grant: DecisionGrant;
  signature: DecisionSignature;
}

/** Trusted public keys: key id → the raw 32-byte Ed25519 public key, base64. */
export type ApprovalPublicKeys = Record<string, string>;

/**
 * The value temporal/codec.ts decodes an unencrypted payload into while payload encryption is on (and
 * PAYLOAD_ACCEPT_PLAINTEXT is not set): a workflow refuses it, and records the attempt.
 */
export const UNTRUSTED_PLAINTEXT_TAG = '__agencyUntrustedPlaintext';
export interface UntrustedPlaintext {
  [UNTRUSTED_PLAINTEXT_TAG]: true;
  /** The payload's own encoding (json/plain, …). */
  encoding: string;
  sizeBytes: number;
}

export function isUntrustedPlaintext(value: unknown): value is UntrustedPlaintext {
  return (
    typeof value === 'object' && value !== null && (value as Record<string, unknown>)[UNTRUSTED_PLAINTEXT_TAG] === true
  );
}

/** A decision signed up to this far in the future (clock skew between the API and the workflow's time) is taken. */
const MAX_SKEW_MS = 5 * 60_000;

export type ProofCheck =
  | { ok: true; grant: DecisionGrant; keyId: string }
  | { ok: false; reason: string; /** The key id, when it is the one thing missing. */ unknownKeyId?: string };

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** base64 or base64url (padding optional) → bytes; undefined when it is neither. No Buffer in the workflow sandbox. */
export function base64Bytes(text: string): Uint8Array | undefined {
  const s = text.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(s) || s.length % 4 === 1) return undefined;
  const out: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const ch of s) {
    buffer = (buffer << 6) | B64.indexOf(ch);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push((buffer >> bits) & 0xff);
    }
  }
  return Uint8Array.from(out);
}

function utf8(text: string): Uint8Array {
  const out: number[] = [];
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return Uint8Array.from(out);
}

const hex = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

const isString = (v: unknown): v is string => typeof v === 'string';

/** The grant's shape (a signature over a malformed grant is still refused). */
function grantProblem(g: unknown): string | undefined {
  if (typeof g !== 'object' || g === null) return 'no grant';
  const r = g as Record<string, unknown>;
  if (r.v !== 1) return 'unknown grant version';
  for (const f of ['task', 'tenant', 'hash', 'approver', 'at', 'expires', 'nonce'] as const)
    if (!isString(r[f]) || r[f] === '') return `grant.${f} missing`;
  if (r.decision !== 'approve' && r.decision !== 'reject') return 'grant.decision is neither approve nor reject';
  if (!Array.isArray(r.roles) || !r.roles.every(isString)) return 'grant.roles missing';
  if (r.reason !== undefined && !isString(r.reason)) return 'grant.reason is not text';
  if (Number.isNaN(Date.parse(r.at as string)) || Number.isNaN(Date.parse(r.expires as string)))
    return 'grant times are not dates';
  return undefined;
}

/**
 * Checks a message that claims to be a signed decision: shape, a known key, the signature over the canonical JSON of
 * the grant, the task and tenant it was signed for, and its validity window at `nowMs` (workflow time). The nonce and
 * the hash are the caller's to check (they depend on the workflow's state).
 */
export function checkSignedDecision(
  message: unknown,
  keys: ApprovalPublicKeys,
  expected: { task: string; tenant: string; nowMs: number },
): ProofCheck {
  if (isUntrustedPlaintext(message))
    return { ok: false, reason: 'an unencrypted payload while payload encryption is on: not trusted' };
  if (typeof message !== 'object' || message === null) return { ok: false, reason: 'not a decision' };
  const { grant, signature } = message as Partial<SignedDecision>;
  if (grant === undefined || signature === undefined)
    return { ok: false, reason: 'unsigned: a decision must be signed by the API (POST …/approval-token)' };
  const problem = grantProblem(grant);
  if (problem) return { ok: false, reason: `malformed signed decision: ${problem}` };
  if (
    typeof signature !== 'object' ||
    signature === null ||
    signature.alg !== 'Ed25519' ||
    !isString(signature.keyId) ||
    !isString(signature.signature) ||
    !isString(signature.payloadSha256)
  )
    return { ok: false, reason: 'malformed signature' };
  const publicKey = Object.prototype.hasOwnProperty.call(keys, signature.keyId)
    ? base64Bytes(keys[signature.keyId]!)
    : undefined;
  if (!publicKey || publicKey.length !== 32)
    return { ok: false, reason: `signed with an unknown key "${signature.keyId}"`, unknownKeyId: signature.keyId };
  const text = canonicalize(grant);
  if (text === undefined) return { ok: false, reason: 'malformed signed decision' };
  const payload = utf8(text);
  if (hex(sha256(payload)) !== signature.payloadSha256) return { ok: false, reason: 'bad signature (payload hash)' };
  const sig = base64Bytes(signature.signature);
  let valid: boolean;
  try {
    valid = sig !== undefined && sig.length === 64 && ed25519.verify(sig, payload, publicKey, { zip215: false });
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, reason: `bad signature (key "${signature.keyId}")` };
  if (grant.task !== expected.task) return { ok: false, reason: `signed for another task (${grant.task})` };
  if (grant.tenant !== expected.tenant) return { ok: false, reason: `signed for another tenant (${grant.tenant})` };
  if (Date.parse(grant.expires) < expected.nowMs) return { ok: false, reason: `expired at ${grant.expires}` };
  if (Date.parse(grant.at) > expected.nowMs + MAX_SKEW_MS)
    return { ok: false, reason: `signed in the future (${grant.at})` };
  return { ok: true, grant, keyId: signature.keyId };
}

/**
 * Nonces of signed decisions already seen, each kept until its decision expires (after that the decision is refused
 * as expired anyway). Bounded: past `max` entries the one expiring first is dropped and its expiry becomes a floor,
 * below which every decision is refused, so a dropped nonce can never be replayed. Serialisable for continue-as-new.
 */
export interface NonceState {
  seen: Record<string, number>;
  floorMs: number;
}

export class SeenNonces {
  private readonly seen: Map<string, number>;
  private floorMs: number;
  constructor(
    state: NonceState | undefined,
    private readonly max = 1000,
  ) {
    this.seen = new Map(Object.entries(state?.seen ?? {}));
    this.floorMs = state?.floorMs ?? 0;
  }

  /** Records the grant's nonce; the reason it is refused when seen before (or below the floor). */
  use(grant: Pick<DecisionGrant, 'nonce' | 'expires'>, nowMs: number): string | undefined {
    const expiresMs = Date.parse(grant.expires);
    for (const [nonce, exp] of this.seen) if (exp < nowMs) this.seen.delete(nonce);
    if (this.seen.has(grant.nonce)) return `replayed: nonce ${grant.nonce} was used before`;
    if (expiresMs <= this.floorMs) return 'replayed or too old: signed before the oldest nonce still remembered';
    this.seen.set(grant.nonce, expiresMs);
    while (this.seen.size > this.max) {
      let oldest: [string, number] | undefined;
      for (const entry of this.seen) if (!oldest || entry[1] < oldest[1]) oldest = entry;
      this.seen.delete(oldest![0]);
      this.floorMs = Math.max(this.floorMs, oldest![1]);
    }
    return undefined;
  }

  toState(): NonceState {
    return { seen: Object.fromEntries(this.seen), floorMs: this.floorMs };
  }
}
