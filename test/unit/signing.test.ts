import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson, sha256Hex } from '../../common/hash.js';
import { loadOrCreateSigningKey, SIGNING_KEY_FILE, signJson, verifyJson } from '../../common/signing.js';

const verdict = {
  decision: 'accept',
  score: 0.92,
  votes: [
    { judge_id: 'constitutional', weight: 0.4, verdict: 'pass', score: 1 },
    { judge_id: 'technical', weight: 0.2, verdict: 'pass', score: 0.85 },
  ],
  dissent: [],
  remediation: [],
  constitutional_refs: [],
  escalated: false,
  rounds: 1,
};

describe('Ed25519 signing over canonical JSON', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'agency-signing-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('when no key exists, then one is created with mode 0600 and loaded again unchanged', async () => {
    const keyDir = path.join(dir, 'keys');
    const created = await loadOrCreateSigningKey(keyDir);
    expect(created.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(created.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect((await stat(path.join(keyDir, SIGNING_KEY_FILE))).mode & 0o777).toBe(0o600);

    const loaded = await loadOrCreateSigningKey(keyDir);
    expect(loaded.keyId).toBe(created.keyId);
    expect(loaded.publicKeyPem).toBe(created.publicKeyPem);
  });

  it('when several callers create the key at once, then they all get the same key', async () => {
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateSigningKey(dir)));
    expect(new Set(keys.map((k) => k.keyId)).size).toBe(1);
  });

  it('when the key file is readable by others, then loading refuses it', async () => {
    await loadOrCreateSigningKey(dir);
    await chmod(path.join(dir, SIGNING_KEY_FILE), 0o644);
    await expect(loadOrCreateSigningKey(dir)).rejects.toThrow(/chmod 600/);
  });

  it('when the key file holds a non-Ed25519 key, then loading refuses it', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(path.join(dir, SIGNING_KEY_FILE), privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o600,
    });
    await expect(loadOrCreateSigningKey(dir)).rejects.toThrow(/not Ed25519/);
  });

  it('when a value is signed, then the signature verifies and names its key and canonical payload hash', async () => {
    const key = await loadOrCreateSigningKey(dir);
    const signature = signJson(verdict, key);
    expect(signature).toMatchObject({
      alg: 'Ed25519',
      keyId: key.keyId,
      payloadSha256: sha256Hex(canonicalJson(verdict)),
    });
    expect(signature.signature).toMatch(/^[A-Za-z0-9_-]{86}$/);
    expect(verifyJson(verdict, signature, key.publicKeyPem)).toBe(true);
  });

  it('when the payload is tampered with, then verification fails', async () => {
    const key = await loadOrCreateSigningKey(dir);
    const signature = signJson(verdict, key);
    expect(verifyJson({ ...verdict, decision: 'reject' }, signature, key.publicKeyPem)).toBe(false);
    // A forged hash that matches the tampered payload does not help: the signature itself no longer verifies.
    const tampered = { ...verdict, score: 0.99 };
    const forged = { ...signature, payloadSha256: sha256Hex(canonicalJson(tampered)) };
    expect(verifyJson(tampered, forged, key.publicKeyPem)).toBe(false);
  });

  it('when the signature bytes are altered, then verification fails', async () => {
    const key = await loadOrCreateSigningKey(dir);
    const signature = signJson(verdict, key);
    const bytes = Buffer.from(signature.signature, 'base64url');
    bytes[0] = (bytes[0] ?? 0) ^ 1;
    expect(verifyJson(verdict, { ...signature, signature: bytes.toString('base64url') }, key.publicKeyPem)).toBe(false);
    expect(verifyJson(verdict, { ...signature, signature: 'not-a-signature' }, key.publicKeyPem)).toBe(false);
  });

  it('when a different key verifies, then verification fails, even with the key id rewritten', async () => {
    const key = await loadOrCreateSigningKey(path.join(dir, 'a'));
    const other = await loadOrCreateSigningKey(path.join(dir, 'b'));
    expect(other.keyId).not.toBe(key.keyId);
    const signature = signJson(verdict, key);
    expect(verifyJson(verdict, signature, other.publicKeyPem)).toBe(false);
    expect(verifyJson(verdict, { ...signature, keyId: other.keyId }, other.publicKeyPem)).toBe(false);
  });

  it('when the JSON keys are reordered, then the signature still verifies (canonical JSON)', async () => {
    const key = await loadOrCreateSigningKey(dir);
    const signature = signJson(verdict, key);
    const reordered = JSON.parse(
      '{"rounds":1,"escalated":false,"constitutional_refs":[],"remediation":[],"dissent":[],' +
        '"votes":[{"score":1,"verdict":"pass","weight":0.4,"judge_id":"constitutional"},' +
        '{"score":0.85,"verdict":"pass","weight":0.2,"judge_id":"technical"}],"score":0.92,"decision":"accept"}',
    ) as unknown;
    expect(JSON.stringify(reordered)).not.toBe(JSON.stringify(verdict));
    expect(verifyJson(reordered, signature, key.publicKeyPem)).toBe(true);
  });
});
