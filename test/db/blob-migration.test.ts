/**
 * Migration 0005 (the blob store) on a database of its own: artifacts written with the old shape (one bytea each)
 * before it are readable after it through common/artifacts.ts, byte for byte, with their media types; they are
 * referenced, so retention keeps them; and the Down Migration puts every byte back into artifacts.content.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { getArtifact, openArtifact, putArtifact } from '../../common/artifacts.js';
import { createPostgresBlobStore } from '../../common/blob-store/postgres.js';
import { sweepBlobs } from '../../common/blob-store/retention.js';
import { PROJECT_ROOT } from '../../common/config.js';
import { createDb, ensureDatabase, migrate, type Db } from '../../common/db.js';
import { drain, seededStream } from '../helpers/blob-data.js';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

describe('migration 0005: existing artifacts move into the blob store', () => {
  const url = new URL(inject('databaseUrl'));
  url.pathname = `${url.pathname}_blobs_${randomUUID().slice(0, 8)}`;
  const databaseUrl = url.toString();
  let owner: Db | undefined;
  let app: Db | undefined;

  const migrateTo = (direction: 'up' | 'down', count: number) =>
    runner({
      databaseUrl,
      dir: path.join(PROJECT_ROOT, 'migrations'),
      direction,
      count,
      migrationsTable: 'schema_migrations',
      checkOrder: true,
      singleTransaction: true,
      log: () => undefined,
    });

  /** Old-shape artifacts: text, empty, binary over several 1 MiB chunks, exactly one chunk, another tenant's. */
  const artifacts: { tenant: string; mediaType: string; content: Buffer }[] = [];

  beforeAll(async () => {
    artifacts.push(
      { tenant: 'default', mediaType: 'text/x-diff', content: Buffer.from('--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n') },
      { tenant: 'default', mediaType: 'text/plain', content: Buffer.alloc(0) },
      {
        tenant: 'default',
        mediaType: 'application/octet-stream',
        content: (await drain(seededStream('migrated', 2 * 1024 * 1024 + 12_345))).bytes,
      },
      { tenant: 'default', mediaType: 'application/json', content: Buffer.alloc(1024 * 1024, 0x7b) },
      { tenant: 'other', mediaType: 'application/json', content: Buffer.from('{"tenant":"other"}') },
    );
    await ensureDatabase(databaseUrl);
    expect((await migrateTo('up', 4)).map((m) => m.name)).toEqual([
      '0001_foundation',
      '0002_waivers',
      '0003_audit_hardening',
      '0004_tool_registry',
    ]);
    owner = createDb(databaseUrl, 2, { role: null });
    await owner.query(`INSERT INTO tenants (id, name) VALUES ('other', 'Other')`);
    for (const a of artifacts) {
      await owner.query(
        'INSERT INTO artifacts (tenant_id, sha256, media_type, size_bytes, content) VALUES ($1, $2, $3, $4, $5)',
        [a.tenant, sha256(a.content), a.mediaType, a.content.length, a.content],
      );
    }
    // 0005 runs first (later migrations may follow it).
    expect((await migrate(databaseUrl))[0]).toBe('0005_blob_store');
    app = createDb(databaseUrl, 4);
  });

  afterAll(async () => {
    await app?.end();
    await owner?.end();
    const admin = new URL(databaseUrl);
    admin.pathname = '/postgres';
    const client = new pg.Client({ connectionString: admin.toString() });
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS "${url.pathname.slice(1)}" WITH (FORCE)`);
    await client.end();
  });

  it('when artifacts written before the migration are read after it, then every byte and media type is there', async () => {
    for (const a of artifacts) {
      const { content, ...read } = (await getArtifact(app!, a.tenant, sha256(a.content)))!;
      expect(read, a.mediaType).toEqual({
        sha256: sha256(a.content),
        mediaType: a.mediaType,
        sizeBytes: a.content.length,
      });
      expect(content.equals(a.content), a.mediaType).toBe(true); // (toEqual on megabytes of Buffer is slow)
      const opened = await openArtifact(app!, a.tenant, sha256(a.content));
      expect((await drain(opened!.stream)).bytes.equals(a.content)).toBe(true);
    }
    // Tenants stay apart.
    expect(await getArtifact(app!, 'other', sha256(artifacts[0]!.content))).toBeUndefined();
    // The bytes are chunks now, and artifacts keeps only metadata.
    const { rows } = await owner!.query<{ sha256: string; chunk_count: number }>(
      `SELECT sha256, chunk_count FROM blobs WHERE backend = 'postgres' ORDER BY size_bytes`,
    );
    expect(rows.map((r) => r.chunk_count)).toEqual([0, 1, 1, 1, 3]);
    const columns = await owner!.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns WHERE table_name = 'artifacts'`,
    );
    expect(columns.rows.map((c) => c.column_name)).not.toContain('content');
  });

  it('when retention runs, then migrated artifacts stay: each is referenced', async () => {
    const summary = await sweepBlobs(app!, createPostgresBlobStore(app!), { ageMs: 0 });
    expect(summary).toMatchObject({ blobsRemoved: 0 });
    const refs = await owner!.query(`SELECT 1 FROM blob_refs WHERE owner_kind = 'artifact'`);
    expect(refs.rowCount).toBe(artifacts.length);
  });

  it('when new artifacts are put after the migration and it is rolled back, then artifacts.content holds every byte again', async () => {
    const added = Buffer.from('written after the migration');
    await putArtifact(app!, 'default', added, 'text/plain');
    await app!.end();
    app = undefined;
    // Back to before 0005: the migrations after it come down first.
    const after = (await readdir(path.join(PROJECT_ROOT, 'migrations'))).filter((f) => f > '0005_blob_store.sql');
    const down = (await migrateTo('down', after.length + 1)).map((m) => m.name);
    expect(down.at(-1)).toBe('0005_blob_store');
    expect(down).toHaveLength(after.length + 1);
    const { rows } = await owner!.query<{ tenant_id: string; sha256: string; media_type: string; content: Buffer }>(
      'SELECT tenant_id, sha256, media_type, content FROM artifacts',
    );
    const byKey = new Map(rows.map((r) => [`${r.tenant_id}/${r.sha256}`, r]));
    for (const a of [...artifacts, { tenant: 'default', mediaType: 'text/plain', content: added }]) {
      const row = byKey.get(`${a.tenant}/${sha256(a.content)}`);
      expect(row?.media_type).toBe(a.mediaType);
      expect(row?.content.equals(a.content)).toBe(true);
    }
    const tables = await owner!.query(`SELECT 1 FROM pg_tables WHERE tablename LIKE 'blob%'`);
    expect(tables.rowCount).toBe(0);
    // And up again.
    // 0005 runs first (later migrations may follow it).
    expect((await migrate(databaseUrl))[0]).toBe('0005_blob_store');
  });
});
