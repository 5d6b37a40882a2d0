-- Up Migration

-- CAWS waivers: created pending, made active by an approver, expired by time, revoked by a person.
-- Only waivers a spec lists in waiver_ids apply to its task; expiry is checked at every gate evaluation.
CREATE TABLE waivers (
  tenant_id     text NOT NULL REFERENCES tenants(id),
  id            text NOT NULL CHECK (id ~ '^WV-[0-9]{4,}$'),
  gates         text[] NOT NULL CHECK (cardinality(gates) > 0),
  reason        text NOT NULL,
  impact_level  text NOT NULL CHECK (impact_level IN ('low', 'medium', 'high', 'critical')),
  mitigation    text NOT NULL,
  budget_delta  jsonb,
  status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'expired', 'revoked')),
  created_by    text NOT NULL,
  approved_by   text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  approved_at   timestamptz,
  expires_at    timestamptz NOT NULL,
  CHECK (expires_at > created_at AND expires_at <= created_at + interval '90 days'),
  CHECK (status = 'pending' OR approved_by IS NOT NULL OR status = 'revoked'),
  PRIMARY KEY (tenant_id, id)
);

-- Public halves of the Ed25519 keys that sign council verdicts, so that any verdict can be verified later.
CREATE TABLE signing_keys (
  key_id          text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{16}$'),
  public_key_pem  text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE signing_keys;
DROP TABLE waivers;
