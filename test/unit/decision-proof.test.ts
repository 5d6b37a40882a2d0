import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { DefaultPayloadConverter } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { loadApprovalSigner, rawPublicKey, signDecision } from '../../common/approval-keys.js';
import { ConfigError, loadConfig } from '../../common/config.js';
import { AesGcmCodec, dataConverterFromConfig } from '../../temporal/codec.js';
import {
  checkSignedDecision,
  isUntrustedPlaintext,
  SeenNonces,
  type DecisionGrant,
  type ProofCheck,
} from '../../workflows/task/decision-proof.js';

const converter = new DefaultPayloadConverter();
const NOW = Date.parse('2026-12-01T12:00:00Z');

function grant(overrides: Partial<DecisionGrant> = {}): DecisionGrant {
  return {
    v: 1,
    task: 'task-a',
    tenant: 'default',
    hash: 'a'.repeat(64),
    approver: 'user:alice',
    roles: ['approver'],
    decision: 'approve',
    at: new Date(NOW).toISOString(),
    expires: new Date(NOW + 60_000).toISOString(),
    nonce: randomUUID(),
    ...overrides,
  };
}

function key(keyId = 'k1') {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { keyId, privateKey, publicKeys: { [keyId]: rawPublicKey(privateKey) } };
}

const expected = { task: 'task-a', tenant: 'default', nowMs: NOW };
const reasonOf = (c: ProofCheck): string => (c.ok ? 'ok' : c.reason);

describe('signed decisions (workflow-side check, pure JavaScript Ed25519)', () => {
  it('when a grant is signed with node:crypto, then the workflow check verifies it; any changed field does not', () => {
    const k = key();
    const signed = signDecision(k, grant());
    expect(checkSignedDecision(signed, k.publicKeys, expected)).toMatchObject({ ok: true, keyId: 'k1' });
    for (const change of [{ approver: 'user:mallory' }, { hash: 'b'.repeat(64) }, { decision: 'reject' as const }]) {
      const forged = { ...signed, grant: { ...signed.grant, ...change } };
      expect(checkSignedDecision(forged, k.publicKeys, expected)).toMatchObject({ ok: false });
      // Recomputing the payload hash does not help: the signature is over the bytes.
      const rehashed = signDecision(key('k1'), forged.grant);
      expect(reasonOf(checkSignedDecision(rehashed, k.publicKeys, expected))).toMatch(/^bad signature/);
    }
  });

  it('when a decision is unsigned, for another task or tenant, expired, or signed with an unknown key, then it is refused with the reason', () => {
    const k = key();
    expect(reasonOf(checkSignedDecision({ approver: 'user:ceo', hash: 'a' }, k.publicKeys, expected))).toMatch(
      /^unsigned/,
    );
    const other = (g: Partial<DecisionGrant>) => checkSignedDecision(signDecision(k, grant(g)), k.publicKeys, expected);
    expect(other({ task: 'task-b' })).toMatchObject({ reason: 'signed for another task (task-b)' });
    expect(other({ tenant: 'acme' })).toMatchObject({ reason: 'signed for another tenant (acme)' });
    expect(reasonOf(other({ expires: new Date(NOW - 1).toISOString() }))).toMatch(/^expired/);
    expect(checkSignedDecision(signDecision(key('k2'), grant()), k.publicKeys, expected)).toMatchObject({
      ok: false,
      unknownKeyId: 'k2',
    });
    expect(
      checkSignedDecision(
        { __agencyUntrustedPlaintext: true, encoding: 'json/plain', sizeBytes: 10 },
        k.publicKeys,
        expected,
      ),
    ).toMatchObject({ ok: false, reason: 'an unencrypted payload while payload encryption is on: not trusted' });
  });

  it('when nonces are used, then a repeat is refused, and past the bound the oldest ones become a floor, not a gap', () => {
    const nonces = new SeenNonces(undefined, 3);
    const at = (i: number) => ({ nonce: `n${i}`, expires: new Date(NOW + i * 1000).toISOString() });
    for (const i of [1, 2, 3]) expect(nonces.use(at(i), NOW)).toBeUndefined();
    expect(nonces.use(at(2), NOW)).toMatch(/replayed/);
    expect(nonces.use(at(4), NOW)).toBeUndefined(); // n1 dropped: its expiry is the floor
    expect(nonces.use(at(1), NOW)).toMatch(/too old/);
    const carried = new SeenNonces(nonces.toState(), 3); // across continue-as-new
    expect(carried.use(at(3), NOW)).toMatch(/replayed/);
    // Once a decision has expired its nonce is dropped; the decision itself is refused as expired.
    expect(Object.keys(nonces.toState().seen)).toEqual(['n2', 'n3', 'n4']);
    nonces.use(at(9), NOW + 5_000);
    expect(Object.keys(nonces.toState().seen)).toEqual(['n9']);
  });
});

describe('the approval signing key', () => {
  it('when APPROVAL_SIGNING_KEY is configured, then every process signs with it, and retired public keys stay trusted', async () => {
    const seed = randomBytes(32).toString('base64');
    const retired = rawPublicKey(generateKeyPairSync('ed25519').privateKey);
    const env = {
      APPROVAL_SIGNING_KEY: seed,
      APPROVAL_SIGNING_KEY_ID: '2026-12',
      APPROVAL_PUBLIC_KEYS: `2026-06:${retired}`,
      NODE_ENV: 'production',
    };
    const one = await loadApprovalSigner(loadConfig(env));
    const two = await loadApprovalSigner(loadConfig(env));
    expect(one!.keyId).toBe('2026-12');
    expect(one!.publicKeys).toEqual(two!.publicKeys);
    expect(Object.keys(one!.publicKeys).sort()).toEqual(['2026-06', '2026-12']);
    const signed = signDecision(one!, grant());
    expect(checkSignedDecision(signed, two!.publicKeys, expected)).toMatchObject({ ok: true });
    // Production without a key signs nothing.
    expect(await loadApprovalSigner(loadConfig({ NODE_ENV: 'production' }))).toBeUndefined();
  });

  it('when the key is malformed or set without its id, then start-up names the variable and never the secret', () => {
    const secret = 'not-a-real-key-but-secret';
    try {
      loadConfig({ APPROVAL_SIGNING_KEY: secret, APPROVAL_SIGNING_KEY_ID: 'x' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect(String(err)).toMatch(/APPROVAL_SIGNING_KEY/);
      expect(String(err)).not.toContain(secret);
    }
    expect(() => loadConfig({ APPROVAL_SIGNING_KEY: randomBytes(32).toString('base64') })).toThrow(
      /APPROVAL_SIGNING_KEY_ID/,
    );
  });
});

describe('plaintext payloads with encryption on', () => {
  const keys = `k1:${randomBytes(32).toString('base64')}`;
  it('when a worker or client decodes an unencrypted payload, then it gets the untrusted tag instead of the value, without throwing', async () => {
    const codec = dataConverterFromConfig(loadConfig({ PAYLOAD_KEYS: keys, PAYLOAD_KEY_ID: 'k1' }))!.payloadCodecs[0]!;
    const forged = converter.toPayload({ approver: 'user:ceo-of-everything', hash: 'a'.repeat(64) });
    const [decoded] = await codec.decode([forged]);
    const value = converter.fromPayload(decoded!);
    expect(isUntrustedPlaintext(value)).toBe(true);
    expect(JSON.stringify(value)).not.toContain('ceo-of-everything');
    // Encrypted payloads are unaffected.
    const [back] = await codec.decode(await codec.encode([converter.toPayload({ a: 1 })]));
    expect(converter.fromPayload(back!)).toEqual({ a: 1 });
  });

  it('when PAYLOAD_ACCEPT_PLAINTEXT=true (migration), or for the Web UI codec endpoint, then plaintext passes through', async () => {
    const migrating = dataConverterFromConfig(
      loadConfig({ PAYLOAD_KEYS: keys, PAYLOAD_KEY_ID: 'k1', PAYLOAD_ACCEPT_PLAINTEXT: 'true' }),
    )!.payloadCodecs[0]!;
    const plain = converter.toPayload({ old: true });
    expect(converter.fromPayload((await migrating.decode([plain]))[0]!)).toEqual({ old: true });
    const display = new AesGcmCodec({ keys: new Map([['k1', randomBytes(32)]]), activeKeyId: 'k1' });
    expect(converter.fromPayload((await display.decode([plain]))[0]!)).toEqual({ old: true });
  });
});
