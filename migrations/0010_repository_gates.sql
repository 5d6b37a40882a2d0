-- Up Migration

-- The commands of the gates the tier policy requires, registered with the repository (common/gate-commands.ts):
-- {"tests": {"run": [...], "report": "junit.xml"}, "coverage": {...}}. A task on the repository runs them whether or
-- not its spec lists them; the tenant's default (TENANT_GATE_COMMANDS) stands in for a kind not registered here.
ALTER TABLE repositories ADD COLUMN gates jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(gates) = 'object');


-- Down Migration
ALTER TABLE repositories DROP COLUMN gates;
