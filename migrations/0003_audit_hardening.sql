-- Up Migration

-- The role the application runs as. Without UPDATE, DELETE or TRUNCATE on the audit tables, a compromised API or
-- worker cannot rewrite history: the append-only triggers stop mistakes, these privileges stop the application.
--
-- Production: give the application its own LOGIN role that is a member of agency_app (or grant agency_app LOGIN) and
-- put that role in DATABASE_URL; run migrations as the owner. Fallback (the dev setup, the tests): DATABASE_URL names
-- the owner and common/db.ts createDb switches every pooled connection to agency_app with SET ROLE, which anyone who
-- can run SQL on that connection could undo with RESET ROLE, so a dedicated login role is the stronger setup.
--
-- Roles are cluster-wide and several databases (test runs) may run this at the same moment: create it only if missing,
-- and treat losing that race as success.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'agency_app') THEN
    BEGIN
      CREATE ROLE agency_app NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END IF;
  -- The owner (a non-superuser with CREATEROLE, say) must be a member to SET ROLE to it.
  IF NOT pg_has_role(current_user, 'agency_app', 'MEMBER') THEN
    EXECUTE format('GRANT agency_app TO %I', current_user);
  END IF;
END $$;

-- Signed checkpoints of the chain head: a truncated tail or a rewritten chain no longer matches a checkpoint, and a
-- checkpoint itself cannot be forged without the Ed25519 private key (public halves in signing_keys).
CREATE TABLE audit_checkpoints (
  id              bigserial PRIMARY KEY,
  head_seq        bigint NOT NULL,
  head_hash       text NOT NULL CHECK (head_hash ~ '^[0-9a-f]{64}$'),
  event_count     bigint NOT NULL CHECK (event_count > 0),
  signed_at       timestamptz NOT NULL,
  key_id          text NOT NULL CHECK (key_id ~ '^[0-9a-f]{16}$'),
  signature       text NOT NULL,
  payload_sha256  text NOT NULL CHECK (payload_sha256 ~ '^[0-9a-f]{64}$')
);
CREATE INDEX audit_checkpoints_head_idx ON audit_checkpoints (head_seq);

CREATE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END $$;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION append_only();

-- Privileges of agency_app: read and write everything, except that the audit trail, its checkpoints and the signing
-- keys (which decide whether a checkpoint verifies) are insert-only, and the migrations table is read-only.
GRANT USAGE ON SCHEMA public TO agency_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO agency_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO agency_app;
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_events, audit_checkpoints, signing_keys FROM agency_app;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM agency_app;
-- Tables and sequences later migrations create are readable and writable by agency_app; a migration that adds another
-- append-only table revokes UPDATE and DELETE on it as above.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO agency_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO agency_app;

-- Down Migration
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM agency_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM agency_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM agency_app;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM agency_app;
REVOKE USAGE ON SCHEMA public FROM agency_app;
DROP TRIGGER audit_checkpoints_no_truncate ON audit_checkpoints;
DROP TRIGGER audit_checkpoints_no_update ON audit_checkpoints;
DROP TABLE audit_checkpoints;
DROP FUNCTION append_only();
-- The role is cluster-wide (other databases may use it): it is kept.
