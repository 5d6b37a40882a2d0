-- Up Migration

-- Repositories a tenant's tasks may work on (common/repositories.ts). A task names one by id; another tenant's is
-- not found. The URL is https://, ssh:// or file:// (file:// only under a root the operator configures for the tenant,
-- REPOSITORY_FILE_ROOTS, checked with realpath at registration and again at clone time). Credentials are by
-- reference only: auth_secret_ref names an environment variable of the execution workers, as tool servers' does
-- (0004); the secret itself is never stored here, nor in a workflow's history.
CREATE TABLE repositories (
  tenant_id        text NOT NULL REFERENCES tenants(id),
  id               text NOT NULL CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  url              text NOT NULL CHECK (url ~ '^(https|ssh|file)://' AND length(url) <= 2048),
  default_ref      text NOT NULL DEFAULT 'main' CHECK (length(default_ref) BETWEEN 1 AND 255),
  auth_secret_ref  text CHECK (auth_secret_ref ~ '^[A-Z][A-Z0-9_]{0,127}$'),
  -- Delivery (opt-in): a task on this repository pushes its result as a branch agency/<task id> unless it says not to.
  deliver_branch   boolean NOT NULL DEFAULT false,
  created_by       text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);


-- Down Migration
DROP TABLE repositories;
