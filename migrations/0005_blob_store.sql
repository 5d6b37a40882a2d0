-- Up Migration

-- The blob store (common/blob-store): large binary objects, content-addressed by SHA-256 per tenant, that travel
-- through Temporal only by reference. Two backends share this catalog: PostgreSQL (chunked rows, below) and
-- S3-compatible object storage (the bytes in the bucket, the catalog row here).
--
-- An upload writes its chunks under its own id first; the blob becomes visible only when its catalog row is inserted,
-- in one short transaction at the end. A put that dies half-way leaves an unpublished upload that nothing reads and
-- that retention sweeps once it has been idle for an hour.
CREATE TABLE blob_uploads (
  id            uuid PRIMARY KEY,
  tenant_id     text NOT NULL REFERENCES tenants(id),
  started_at    timestamptz NOT NULL DEFAULT now(),
  -- Moved forward while chunks arrive, so a slow upload is not taken for an abandoned one.
  active_at     timestamptz NOT NULL DEFAULT now(),
  -- Set when the upload became a blob's bytes; unpublished uploads are in progress or orphaned.
  published_at  timestamptz
);
CREATE INDEX blob_uploads_orphan_idx ON blob_uploads (active_at) WHERE published_at IS NULL;

-- The bytes of the PostgreSQL backend, in chunks of BLOB_CHUNK_BYTES (1 MiB by default), each with its own digest so
-- a corrupted chunk is found before any of its bytes are handed out. Read one at a time by (upload_id, seq).
CREATE TABLE blob_chunks (
  upload_id  uuid NOT NULL REFERENCES blob_uploads(id) ON DELETE CASCADE,
  seq        integer NOT NULL CHECK (seq >= 0),
  sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  data       bytea NOT NULL,
  PRIMARY KEY (upload_id, seq)
);
-- Out of line and uncompressed: ciphertexts, models and bundles do not compress, and trying costs every put and get.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- The catalog of published blobs, of both backends. A blob is (backend, tenant, sha256); another tenant's blob with the
-- same content is another blob. For PostgreSQL the row names the upload that holds the bytes.
CREATE TABLE blobs (
  backend      text NOT NULL CHECK (backend IN ('postgres', 's3')),
  tenant_id    text NOT NULL REFERENCES tenants(id),
  sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
  media_type   text NOT NULL DEFAULT 'application/octet-stream',
  upload_id    uuid UNIQUE REFERENCES blob_uploads(id),
  chunk_count  integer CHECK (chunk_count >= 0),
  created_at   timestamptz NOT NULL DEFAULT now(),
  -- The last put of this content or release of a reference to it: retention's age (BLOB_RETENTION_AGE) counts from it.
  touched_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (backend, tenant_id, sha256),
  CHECK (backend <> 'postgres' OR (upload_id IS NOT NULL AND chunk_count IS NOT NULL))
);
CREATE INDEX blobs_retention_idx ON blobs (backend, touched_at);
CREATE INDEX blobs_content_idx ON blobs (tenant_id, sha256);

-- What keeps a blob from retention: an owner that still needs it (an artifact, a running task's checkpoint, an open
-- federation round's ciphertext). Releasing an owner's references (a finished task, a closed round) lets its blobs go
-- after BLOB_RETENTION_AGE. A reference names content, whichever backend holds it.
CREATE TABLE blob_refs (
  tenant_id   text NOT NULL REFERENCES tenants(id),
  sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  owner_kind  text NOT NULL CHECK (owner_kind ~ '^[a-z][a-z0-9_.-]{0,63}$'),
  owner_id    text NOT NULL CHECK (length(owner_id) BETWEEN 1 AND 256),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, sha256, owner_kind, owner_id)
);
CREATE INDEX blob_refs_owner_idx ON blob_refs (tenant_id, owner_kind, owner_id);

-- Existing artifacts move into the blob store without loss: each bytea is cut into 1 MiB chunks with substring, under
-- an upload id derived from the artifact's key, published as a PostgreSQL blob and referenced by the artifact (so
-- retention keeps it). The artifacts table keeps its metadata (media type, size) and loses only its content column.
INSERT INTO blob_uploads (id, tenant_id, started_at, active_at, published_at)
SELECT md5('artifact:' || tenant_id || ':' || sha256)::uuid, tenant_id, created_at, created_at, created_at
  FROM artifacts;

INSERT INTO blob_chunks (upload_id, seq, sha256, data)
SELECT md5('artifact:' || a.tenant_id || ':' || a.sha256)::uuid, c.seq,
       encode(sha256(substring(a.content FROM c.seq * 1048576 + 1 FOR 1048576)), 'hex'),
       substring(a.content FROM c.seq * 1048576 + 1 FOR 1048576)
  FROM artifacts a
 CROSS JOIN LATERAL generate_series(0, (octet_length(a.content) + 1048575) / 1048576 - 1) AS c(seq);

INSERT INTO blobs (backend, tenant_id, sha256, size_bytes, media_type, upload_id, chunk_count, created_at, touched_at)
SELECT 'postgres', tenant_id, sha256, octet_length(content), media_type,
       md5('artifact:' || tenant_id || ':' || sha256)::uuid, (octet_length(content) + 1048575) / 1048576,
       created_at, created_at
  FROM artifacts;

INSERT INTO blob_refs (tenant_id, sha256, owner_kind, owner_id, created_at)
SELECT tenant_id, sha256, 'artifact', sha256, created_at FROM artifacts;

ALTER TABLE artifacts DROP COLUMN content;

-- Down Migration
-- The content goes back into artifacts from the PostgreSQL backend. An artifact whose bytes are elsewhere (S3) or
-- missing stops the rollback (NOT NULL) rather than lose them.
ALTER TABLE artifacts ADD COLUMN content bytea;
UPDATE artifacts a
   SET content = (SELECT COALESCE(string_agg(c.data, ''::bytea ORDER BY c.seq), ''::bytea)
                    FROM blob_chunks c WHERE c.upload_id = b.upload_id)
  FROM blobs b
 WHERE b.backend = 'postgres' AND b.tenant_id = a.tenant_id AND b.sha256 = a.sha256;
ALTER TABLE artifacts ALTER COLUMN content SET NOT NULL;
DROP TABLE blob_refs;
DROP TABLE blobs;
DROP TABLE blob_chunks;
DROP TABLE blob_uploads;
