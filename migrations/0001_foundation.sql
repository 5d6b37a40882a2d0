-- Up Migration

-- Tenants own every object in the platform (tasks, artifacts, models, budgets, audit events).
CREATE TABLE tenants (
  id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  name        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys: only a SHA-256 of the secret is stored; the secret is shown once at creation.
CREATE TABLE api_keys (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id     text NOT NULL REFERENCES tenants(id),
  name          text NOT NULL,
  key_prefix    text NOT NULL,
  key_hash      text NOT NULL UNIQUE,
  roles         text[] NOT NULL CHECK (roles <@ ARRAY['viewer','operator','approver','admin']::text[] AND cardinality(roles) > 0),
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz,
  revoked_at    timestamptz,
  last_used_at  timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

-- Append-only audit trail. Each row carries the hash of the previous row (hash chain);
-- idempotency_key makes a retried activity's event land once.
CREATE TABLE audit_events (
  seq              bigserial PRIMARY KEY,
  id               uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  occurred_at      timestamptz NOT NULL DEFAULT now(),
  tenant_id        text NOT NULL,
  actor            text NOT NULL CHECK (actor ~ '^(user:|worker:|council:|system$)'),
  action           text NOT NULL,
  subject          text,
  workflow_id      text,
  correlation_id   text,
  idempotency_key  text UNIQUE,
  payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
  prev_hash        text NOT NULL,
  hash             text NOT NULL UNIQUE
);
CREATE INDEX audit_events_tenant_idx ON audit_events (tenant_id, seq);
CREATE INDEX audit_events_workflow_idx ON audit_events (workflow_id, seq);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Artifacts are content-addressed: the key is the SHA-256 of the bytes, per tenant.
CREATE TABLE artifacts (
  tenant_id    text NOT NULL REFERENCES tenants(id),
  sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  media_type   text NOT NULL,
  size_bytes   integer NOT NULL,
  content      bytea NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, sha256)
);

INSERT INTO tenants (id, name) VALUES ('default', 'Default tenant');

-- Down Migration
DROP TABLE artifacts;
DROP TRIGGER audit_events_no_truncate ON audit_events;
DROP TRIGGER audit_events_no_update ON audit_events;
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
DROP TABLE api_keys;
DROP TABLE tenants;
