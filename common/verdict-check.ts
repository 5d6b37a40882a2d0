/**
 * Verifies a council verdict where it is read (the API's task, session and review views): the signed artifact the
 * record names is read back, its Ed25519 signature checked with the platform's registered key of that id (never a key
 * the artifact carries itself), and the verdict shown compared with the one signed. A verdict that fails any of these
 * is flagged, with the reason; it is never shown as valid.
 */
import { getArtifact } from './artifacts.js';
import type { Db } from './db.js';
import { canonicalJson } from './hash.js';
import { listSigningKeys, verifyJson, type JsonSignature } from './signing.js';
import type { VerdictRecord } from '../workflows/task/definitions.js';

export interface VerdictCheck {
  sessionId: string;
  phase: VerdictRecord['phase'];
  /** The key the signature names. */
  keyId: string;
  verified: boolean;
  /** Why it verifies, or what failed. */
  reason: string;
}

const MAX_VERDICT_BYTES = 4 * 1024 * 1024;

function same(a: unknown, b: unknown): boolean {
  try {
    return canonicalJson(a) === canonicalJson(b);
  } catch {
    return false;
  }
}

/** The check of one verdict record; `keys` are the registered signing keys (read once per view). */
export async function checkVerdict(
  db: Db,
  tenantId: string,
  record: VerdictRecord,
  keys?: { keyId: string; publicKeyPem: string }[],
): Promise<VerdictCheck> {
  const keyId = record.signature.keyId;
  const flagged = (reason: string): VerdictCheck => ({
    sessionId: record.sessionId,
    phase: record.phase,
    keyId,
    verified: false,
    reason,
  });
  const key = (keys ?? (await listSigningKeys(db))).find((k) => k.keyId === keyId);
  if (!key) return flagged(`key ${keyId} is not a registered signing key`);
  const artifact = await getArtifact(db, tenantId, record.verdictRef.sha256, { maxBytes: MAX_VERDICT_BYTES }).catch(
    () => undefined,
  );
  if (!artifact) return flagged(`the signed verdict ${record.verdictRef.sha256} is not in the artifact store`);
  let signed: { payload?: Record<string, unknown>; signature?: JsonSignature };
  try {
    signed = JSON.parse(artifact.content.toString('utf8')) as typeof signed;
  } catch {
    return flagged('the signed verdict artifact is not JSON');
  }
  if (!signed.payload || !signed.signature) return flagged('the signed verdict artifact has no payload or signature');
  if (!same(signed.signature, record.signature)) return flagged("the record's signature is not the artifact's");
  let valid: boolean;
  try {
    valid = verifyJson(signed.payload, record.signature, key.publicKeyPem);
  } catch {
    valid = false; // a registered key that is not a public key verifies nothing
  }
  if (!valid) return flagged(`the signature does not verify with key ${keyId}`);
  const p = signed.payload;
  if (p.tenantId !== tenantId || p.sessionId !== record.sessionId || p.phase !== record.phase)
    return flagged('the signed verdict is for another tenant, session or phase');
  if (!same(p.verdict, record.verdict)) return flagged('the verdict shown differs from the verdict signed');
  return {
    sessionId: record.sessionId,
    phase: record.phase,
    keyId,
    verified: true,
    reason: `Ed25519 signature by registered key ${keyId} verifies over the verdict shown`,
  };
}

/** The checks of a task's verdicts, in the same order. */
export async function checkVerdicts(
  db: Db,
  tenantId: string,
  records: readonly VerdictRecord[],
): Promise<VerdictCheck[]> {
  if (records.length === 0) return [];
  const keys = await listSigningKeys(db);
  return Promise.all(records.map((r) => checkVerdict(db, tenantId, r, keys)));
}
