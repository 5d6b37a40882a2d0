-- Up Migration

-- The model registry (common/models.ts): a tenant's models and their versions. A version's ONNX file lives in the blob
-- store (content-addressed by SHA-256, referenced from blob_refs as owner 'model' so retention keeps it); the row
-- holds its digest and size, never the bytes. The signature (input/output names, element types, shapes) is what ONNX
-- Runtime reported when the validation activity loaded the file, so it is null until then.
CREATE TABLE models (
  tenant_id    text NOT NULL REFERENCES tenants(id),
  name         text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  created_by   text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name)
);

-- Status moves along registered → validated → canary → active → retired, or to rejected (validation failed) or
-- rolled_back (a canary that lost); common/models.ts holds the transition table and moves a row only from a status
-- that allows the target, in one conditional UPDATE. Major/minor/patch/prerelease order versions (semver).
CREATE TABLE model_versions (
  tenant_id          text NOT NULL,
  model_name         text NOT NULL,
  version            text NOT NULL CHECK (length(version) <= 128),
  major              integer NOT NULL CHECK (major >= 0),
  minor              integer NOT NULL CHECK (minor >= 0),
  patch              integer NOT NULL CHECK (patch >= 0),
  prerelease         text,
  artifact_sha256    text NOT NULL CHECK (artifact_sha256 ~ '^[0-9a-f]{64}$'),
  artifact_size      bigint NOT NULL CHECK (artifact_size >= 0),
  signature          jsonb,
  provenance         jsonb NOT NULL,
  metrics            jsonb NOT NULL DEFAULT '{}',
  -- { session?: SessionSettings, serving?: { maxBatchSize, maxWaitMs, concurrency } }
  settings           jsonb NOT NULL DEFAULT '{}',
  status             text NOT NULL DEFAULT 'registered'
                     CHECK (status IN ('registered', 'validated', 'rejected', 'canary', 'active', 'retired', 'rolled_back')),
  -- The last validation's report (outputs of the golden set, latency, signature differences).
  validation         jsonb,
  created_by         text NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  status_changed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, model_name, version),
  FOREIGN KEY (tenant_id, model_name) REFERENCES models (tenant_id, name)
);
-- At most one active version per model: promotion retires the previous one in the same transaction.
CREATE UNIQUE INDEX model_versions_one_active ON model_versions (tenant_id, model_name) WHERE status = 'active';
CREATE INDEX model_versions_order_idx ON model_versions (tenant_id, model_name, major DESC, minor DESC, patch DESC);

-- Evidence of every status change: who (a person's principal or a workflow id), when, and why (validation report,
-- the analysis that rolled a canary back, the promotion that replaced an active version). Append-only by convention.
CREATE TABLE model_version_transitions (
  id           bigserial PRIMARY KEY,
  tenant_id    text NOT NULL,
  model_name   text NOT NULL,
  version      text NOT NULL,
  from_status  text,
  to_status    text NOT NULL,
  actor        text NOT NULL,
  evidence     jsonb NOT NULL DEFAULT '{}',
  at           timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (tenant_id, model_name, version) REFERENCES model_versions (tenant_id, model_name, version)
);
CREATE INDEX model_version_transitions_version_idx ON model_version_transitions (tenant_id, model_name, version, id);


-- Down Migration
DROP TABLE model_version_transitions;
DROP TABLE model_versions;
DROP TABLE models;
