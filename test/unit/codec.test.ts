import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { DefaultPayloadConverter, METADATA_ENCODING_KEY, type Payload } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../common/config.js';
import {
  AesGcmCodec,
  codecFromConfig,
  ENCODING_ENCRYPTED,
  METADATA_KEY_ID,
  PayloadDecryptionError,
} from '../../temporal/codec.js';

const converter = new DefaultPayloadConverter();
const key = (): Buffer => randomBytes(32);
const text = (b: Uint8Array | null | undefined): string => Buffer.from(b ?? new Uint8Array()).toString('utf8');
const SECRET_TITLE = 'Rotate the payroll database password';
const values: unknown[] = [
  { title: SECRET_TITLE, workspace: '/srv/repos/payroll', budgets: { steps: 3 } },
  'a plain string',
  42,
  null,
  [1, 'two', { three: 3 }],
  new Uint8Array([0, 1, 2, 255]),
];

describe('AES-256-GCM payload codec', () => {
  it('when payloads are encoded and decoded with the same key, then every value comes back unchanged', async () => {
    const codec = new AesGcmCodec({ keys: new Map([['k1', key()]]), activeKeyId: 'k1' });
    const payloads = values.map((v) => converter.toPayload(v));
    const decoded = await codec.decode(await codec.encode(payloads));
    expect(decoded.map((p) => converter.fromPayload(p))).toEqual(values);
    expect(await codec.encode([])).toEqual([]);
  });

  it('when a payload is encoded, then its metadata says binary/encrypted with the key id and no plaintext is left', async () => {
    const codec = new AesGcmCodec({ keys: new Map([['k1', key()]]), activeKeyId: 'k1' });
    const plain = converter.toPayload(values[0]);
    const [a, b] = await codec.encode([plain, plain]);
    expect(text(a?.metadata?.[METADATA_ENCODING_KEY])).toBe(ENCODING_ENCRYPTED);
    expect(text(a?.metadata?.[METADATA_KEY_ID])).toBe('k1');
    expect(Object.values(a?.metadata ?? {}).map(text)).not.toContain('json/plain');
    expect(Buffer.from(a?.data ?? new Uint8Array()).includes(SECRET_TITLE)).toBe(false);
    expect(Buffer.from(a?.data ?? new Uint8Array()).includes('payroll')).toBe(false);
    // A fresh IV per payload: the same value never encrypts to the same bytes.
    expect(Buffer.from(a?.data ?? []).equals(Buffer.from(b?.data ?? []))).toBe(false);
  });

  it('when a payload is decoded with a different key under the same id, then it fails with a clear error', async () => {
    const writer = new AesGcmCodec({ keys: new Map([['k1', key()]]), activeKeyId: 'k1' });
    const reader = new AesGcmCodec({ keys: new Map([['k1', key()]]), activeKeyId: 'k1' });
    const encoded = await writer.encode([converter.toPayload(values[0])]);
    const failure = reader.decode(encoded);
    await expect(failure).rejects.toBeInstanceOf(PayloadDecryptionError);
    await expect(failure).rejects.toThrow(/key "k1" failed authentication/);
  });

  it('when a payload names a key id that is not configured, then it fails naming the id', async () => {
    const writer = new AesGcmCodec({ keys: new Map([['old', key()]]), activeKeyId: 'old' });
    const reader = new AesGcmCodec({ keys: new Map([['new', key()]]), activeKeyId: 'new' });
    await expect(reader.decode(await writer.encode([converter.toPayload('x')]))).rejects.toThrow(
      /encrypted with key "old", which is not configured \(PAYLOAD_KEYS has: new\)/,
    );
  });

  it('when the ciphertext, IV, tag or key-id label is altered, then decoding fails instead of returning garbage', async () => {
    const k1 = key();
    const codec = new AesGcmCodec({
      keys: new Map([
        ['k1', k1],
        ['k2', k1],
      ]),
      activeKeyId: 'k1',
    });
    const [payload] = (await codec.encode([converter.toPayload(values[0])])) as [Payload];
    const data = Buffer.from(payload.data ?? []);
    for (const index of [0, 11, 12, data.length - 17, data.length - 1]) {
      const tampered = Buffer.from(data);
      tampered[index] = (tampered[index] ?? 0) ^ 0x01;
      await expect(codec.decode([{ ...payload, data: tampered }])).rejects.toThrow(/failed authentication/);
    }
    await expect(codec.decode([{ ...payload, data: data.subarray(0, 20) }])).rejects.toThrow(/truncated/);
    // Relabelling to another id fails even when that id holds the same key material: the id is authenticated too.
    const relabelled = { ...payload, metadata: { ...payload.metadata, [METADATA_KEY_ID]: Buffer.from('k2') } };
    await expect(codec.decode([relabelled])).rejects.toThrow(/key "k2" failed authentication/);
  });

  it('when the active key rotates, then payloads written with the old key id still decode and new ones use the new id', async () => {
    const oldKey = key();
    const newKey = key();
    const before = new AesGcmCodec({ keys: new Map([['2024', oldKey]]), activeKeyId: '2024' });
    const written = await before.encode(values.map((v) => converter.toPayload(v)));
    const after = new AesGcmCodec({
      keys: new Map([
        ['2024', oldKey],
        ['2025', newKey],
      ]),
      activeKeyId: '2025',
    });
    expect((await after.decode(written)).map((p) => converter.fromPayload(p))).toEqual(values);
    const [fresh] = await after.encode([converter.toPayload('new')]);
    expect(text(fresh?.metadata?.[METADATA_KEY_ID])).toBe('2025');
  });

  it('when a payload is not encrypted, then decode passes it through (histories from before encryption stay readable)', async () => {
    const codec = new AesGcmCodec({ keys: new Map([['k1', key()]]), activeKeyId: 'k1' });
    const plain = converter.toPayload({ a: 1 });
    expect(await codec.decode([plain])).toEqual([plain]);
  });

  it('when the codec is built with a short key or an unknown active id, then it refuses', () => {
    expect(() => new AesGcmCodec({ keys: new Map([['k1', randomBytes(16)]]), activeKeyId: 'k1' })).toThrow(
      /16 bytes; expected 32/,
    );
    expect(() => new AesGcmCodec({ keys: new Map([['k1', key()]]), activeKeyId: 'k2' })).toThrow(/"k2" is not among/);
  });
});

describe('payload key configuration', () => {
  const k1 = key().toString('base64');
  const k2 = key().toString('base64');

  it('when PAYLOAD_KEYS is unset, then there is no codec (dev default)', () => {
    expect(codecFromConfig(loadConfig({}))).toBeUndefined();
  });

  it('when PAYLOAD_KEYS and PAYLOAD_KEY_ID are set, then the codec encrypts with the active id and decodes both', async () => {
    const config = loadConfig({ PAYLOAD_KEYS: `old:${k1}, new:${k2}`, PAYLOAD_KEY_ID: 'new' });
    const codec = codecFromConfig(config);
    expect(codec?.activeKeyId).toBe('new');
    expect(codec?.keyIds).toEqual(['old', 'new']);
    const oldOnly = codecFromConfig(loadConfig({ PAYLOAD_KEYS: `old:${k1}`, PAYLOAD_KEY_ID: 'old' }));
    const written = await oldOnly!.encode([converter.toPayload('rotated')]);
    expect(converter.fromPayload((await codec!.decode(written))[0]!)).toBe('rotated');
  });

  it('when the configuration holds keys, then neither JSON nor inspect shows the key material', () => {
    const config = loadConfig({ PAYLOAD_KEYS: `k1:${k1}`, PAYLOAD_KEY_ID: 'k1' });
    expect(JSON.stringify(config)).not.toContain(k1);
    expect(inspect(config, { depth: 10 })).not.toContain(k1);
    expect(inspect(config, { depth: 10 })).toContain('[redacted]');
  });

  const problem = (env: Record<string, string>): string => {
    try {
      loadConfig(env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).message;
    }
    throw new Error('expected a ConfigError');
  };

  it('when a key is not 32 bytes, not base64, or an id repeats, then the message names PAYLOAD_KEYS and never the key', () => {
    const short = randomBytes(16).toString('base64');
    const cases: [Record<string, string>, RegExp][] = [
      [{ PAYLOAD_KEYS: `k1:${short}`, PAYLOAD_KEY_ID: 'k1' }, /PAYLOAD_KEYS: key "k1" is 16 bytes .*expected 32/],
      [{ PAYLOAD_KEYS: 'k1:not*base64!', PAYLOAD_KEY_ID: 'k1' }, /PAYLOAD_KEYS: key "k1" is not base64/],
      [{ PAYLOAD_KEYS: `k1:${k1},k1:${k2}`, PAYLOAD_KEY_ID: 'k1' }, /PAYLOAD_KEYS: key id "k1" appears more than once/],
      [{ PAYLOAD_KEYS: k1, PAYLOAD_KEY_ID: 'k1' }, /PAYLOAD_KEYS: entry 1 is not "id:base64-key"/],
    ];
    for (const [env, expected] of cases) {
      const message = problem(env);
      expect(message).toMatch(expected);
      expect(message).not.toContain(k1);
      expect(message).not.toContain(k2);
      expect(message).not.toContain(short);
    }
  });

  it('when PAYLOAD_KEY_ID is missing or not one of the keys, then the message names PAYLOAD_KEY_ID', () => {
    expect(problem({ PAYLOAD_KEYS: `k1:${k1}` })).toMatch(/PAYLOAD_KEY_ID: required when PAYLOAD_KEYS is set/);
    expect(problem({ PAYLOAD_KEYS: `k1:${k1}`, PAYLOAD_KEY_ID: 'k9' })).toMatch(
      /PAYLOAD_KEY_ID: "k9" is not one of the PAYLOAD_KEYS ids \(k1\)/,
    );
    expect(problem({ PAYLOAD_KEY_ID: 'k1' })).toMatch(/PAYLOAD_KEY_ID: set only together with PAYLOAD_KEYS/);
  });
});
