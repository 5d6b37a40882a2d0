/**
 * The blob store's contract (common/blob-store/types.ts), the same for every backend:
 *
 *   describeBlobStore('PostgreSQL', () => createPostgresBlobStore(db), corruptChunk)
 *
 * `makeStore` gives the store under test (once per describe block); `corrupt(tenantId, sha256)` flips a byte of that
 * blob in the backend's own storage. Each run uses two tenants of its own (created in the run's database, which the
 * catalog's foreign keys need whatever the backend), so it shares nothing with other files or runs.
 *
 * Options: `largeBytes` is a size that spans several of the backend's chunks or parts (default 2.5 MiB + 3 bytes, for
 * 1 MiB chunks); `countStored(tenantId, sha256)`, when given, counts what the backend holds for the blob (one row, one
 * object) and is checked after idempotent and concurrent puts.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureTenant } from '../../common/api-keys.js';
import { BlobIntegrityError, BlobNotFoundError, type BlobStore } from '../../common/blob-store/types.js';
import { createDb, type Db } from '../../common/db.js';
import { drain, seededSha256, seededStream } from './blob-data.js';

export interface BlobContractOptions {
  largeBytes?: number;
  countStored?: (tenantId: string, sha256: string) => Promise<number>;
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** `bytes` as a stream of irregular pieces (1, 7, 4093, 65 536 … bytes), as a socket might deliver them. */
function irregular(bytes: Buffer): Readable {
  const sizes = [1, 7, 4093, 65_536, 300_001];
  const pieces: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    pieces.push(bytes.subarray(at, at + size));
    at += size;
  }
  return Readable.from(pieces, { objectMode: false });
}

export function describeBlobStore(
  name: string,
  makeStore: () => BlobStore | Promise<BlobStore>,
  corrupt: (tenantId: string, sha256: string) => Promise<void>,
  { largeBytes = 2.5 * 1024 * 1024 + 3, countStored }: BlobContractOptions = {},
): void {
  describe(`blob store contract: ${name}`, () => {
    let store: BlobStore;
    let db: Db;
    const run = randomUUID().slice(0, 8);
    const tenantA = `blob-a-${run}`;
    const tenantB = `blob-b-${run}`;

    beforeAll(async () => {
      db = createDb(inject('databaseUrl'), 2);
      await ensureTenant(db, tenantA, 'blob contract A');
      await ensureTenant(db, tenantB, 'blob contract B');
      store = await makeStore();
    });
    afterAll(async () => {
      await db?.end();
    });

    it('when small blobs are put, then head describes them and get returns their bytes', async () => {
      for (const bytes of [Buffer.from('hello, blob store'), Buffer.alloc(0), Buffer.from([0, 255, 1, 254])]) {
        const ref = await store.put(tenantA, bytes, { mediaType: 'text/plain' });
        expect(ref).toEqual({ tenantId: tenantA, sha256: sha256(bytes), sizeBytes: bytes.length });
        expect(await store.head(tenantA, ref.sha256)).toMatchObject({
          ...ref,
          mediaType: 'text/plain',
          backend: store.backend,
          createdAt: expect.any(Date) as Date,
        });
        expect(await drain(await store.get(tenantA, ref.sha256))).toEqual({ bytes });
      }
    });

    it('when a multi-chunk blob is put from a stream of irregular pieces, then it reads back byte for byte', async () => {
      const { bytes } = await drain(seededStream(`large-${run}`, largeBytes));
      const ref = await store.put(tenantA, irregular(bytes), { mediaType: 'application/x-test' });
      expect(ref).toEqual({ tenantId: tenantA, sha256: sha256(bytes), sizeBytes: largeBytes });
      expect(await store.head(tenantA, ref.sha256)).toMatchObject({ sizeBytes: largeBytes });
      const read = await drain(await store.get(tenantA, ref.sha256));
      expect(read.error).toBeUndefined();
      expect(read.bytes.equals(bytes)).toBe(true);
    });

    it('when the same content is put twice, then both puts return the same ref and it is one blob', async () => {
      const bytes = Buffer.from(`twice ${run}`);
      const first = await store.put(tenantA, bytes);
      const created = (await store.head(tenantA, first.sha256))!.createdAt;
      expect(await store.put(tenantA, Readable.from([bytes]))).toEqual(first);
      expect(await store.put(tenantA, bytes, { expectedSha256: first.sha256 })).toEqual(first);
      expect((await store.head(tenantA, first.sha256))!.createdAt).toEqual(created);
      if (countStored) expect(await countStored(tenantA, first.sha256)).toBe(1);
    });

    it('when 10 puts of the same content run at once, then all return the same ref and one blob reads back', async () => {
      const seed = `concurrent-${run}`;
      const expected = await seededSha256(seed, largeBytes);
      const refs = await Promise.all(
        Array.from({ length: 10 }, () => store.put(tenantA, seededStream(seed, largeBytes))),
      );
      for (const ref of refs) expect(ref).toEqual({ tenantId: tenantA, sha256: expected, sizeBytes: largeBytes });
      const read = await drain(await store.get(tenantA, expected));
      expect(read.error).toBeUndefined();
      expect(sha256(read.bytes)).toBe(expected);
      if (countStored) expect(await countStored(tenantA, expected)).toBe(1);
    });

    it('when a stored blob is corrupted, then reading it fails with BlobIntegrityError and never yields all its bytes', async () => {
      const seed = `corrupt-${run}`;
      const ref = await store.put(tenantA, seededStream(seed, largeBytes));
      await corrupt(tenantA, ref.sha256);
      let result: { bytes: Buffer; error?: unknown };
      try {
        result = await drain(await store.get(tenantA, ref.sha256));
      } catch (error) {
        result = { bytes: Buffer.alloc(0), error }; // a backend may find it before the stream starts
      }
      expect(result.error).toBeInstanceOf(BlobIntegrityError);
      expect(result.bytes.length).toBeLessThan(largeBytes);
      expect(sha256(result.bytes)).not.toBe(ref.sha256);
    });

    it("when another tenant's blob is asked for, then get is BlobNotFoundError, head undefined, delete false", async () => {
      const ref = await store.put(tenantA, Buffer.from(`tenant A only ${run}`));
      await expect(store.get(tenantB, ref.sha256)).rejects.toThrow(BlobNotFoundError);
      expect(await store.head(tenantB, ref.sha256)).toBeUndefined();
      expect(await store.delete(tenantB, ref.sha256)).toBe(false);
      expect(await store.head(tenantA, ref.sha256)).toBeDefined();
      await expect(store.get(tenantA, '0'.repeat(64))).rejects.toThrow(BlobNotFoundError);
      expect(await store.head(tenantA, '0'.repeat(64))).toBeUndefined();
    });

    it('when a blob is deleted twice, then the first says true, the second false, and it is gone', async () => {
      const ref = await store.put(tenantA, Buffer.from(`to be deleted ${run}`));
      expect(await store.delete(tenantA, ref.sha256)).toBe(true);
      expect(await store.delete(tenantA, ref.sha256)).toBe(false);
      expect(await store.head(tenantA, ref.sha256)).toBeUndefined();
      await expect(store.get(tenantA, ref.sha256)).rejects.toThrow(BlobNotFoundError);
      // And it can be stored again.
      expect((await store.put(tenantA, Buffer.from(`to be deleted ${run}`))).sha256).toBe(ref.sha256);
    });

    it('when the bytes do not match expectedSha256, then the put fails with BlobIntegrityError and nothing is visible', async () => {
      const seed = `claimed-${run}`;
      const claimed = await seededSha256(seed, largeBytes);
      const actual = await seededSha256(`other-${run}`, largeBytes);
      await expect(
        store.put(tenantA, seededStream(`other-${run}`, largeBytes), { expectedSha256: claimed }),
      ).rejects.toThrow(BlobIntegrityError);
      await expect(store.put(tenantA, Buffer.from('x'), { expectedSha256: claimed })).rejects.toThrow(
        BlobIntegrityError,
      );
      expect(await store.head(tenantA, claimed)).toBeUndefined();
      expect(await store.head(tenantA, actual)).toBeUndefined();
      await expect(store.get(tenantA, claimed)).rejects.toThrow(BlobNotFoundError);
    });
  });
}
