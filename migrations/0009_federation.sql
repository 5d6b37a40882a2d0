-- Up Migration

-- Federated learning (common/federation.ts). A participant is a site of one tenant whose data never leaves the worker
-- that serves its own task queue (agency-federation-<id>); ids are global because queue names are. data_source says
-- where that worker finds its data (a description, never the data).
CREATE TABLE federation_participants (
  id            text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  tenant_id     text NOT NULL REFERENCES tenants(id),
  display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
  data_source   text NOT NULL CHECK (length(data_source) BETWEEN 1 AND 1024),
  status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'retired')),
  created_by    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX federation_participants_tenant ON federation_participants (tenant_id);

-- A campaign belongs to the tenant that started it; its config (model, rounds, privacy, mode) is fixed at start.
CREATE TABLE federation_campaigns (
  id            text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  tenant_id     text NOT NULL REFERENCES tenants(id),
  model_name    text NOT NULL,
  config        jsonb NOT NULL,
  status        text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'paused', 'stopped', 'completed', 'failed')),
  reason        text,
  public_key    jsonb,           -- BlobRef of the CKKS public key (encrypted mode); the secret key is never here
  model         jsonb,           -- BlobRef of the current global parameters
  rounds_done   integer NOT NULL DEFAULT 0,
  result        jsonb,           -- the final model: blob, ONNX blob, metrics, registry version when registered
  created_by    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX federation_campaigns_tenant ON federation_campaigns (tenant_id);

-- Who takes part. A participant of the owner's tenant is opted in when the owner names it; one of another tenant is
-- only invited until an admin of that tenant opts it in. Rounds select among opted-in, active participants.
CREATE TABLE federation_campaign_participants (
  campaign_id     text NOT NULL REFERENCES federation_campaigns(id) ON DELETE CASCADE,
  participant_id  text NOT NULL REFERENCES federation_participants(id),
  tenant_id       text NOT NULL REFERENCES tenants(id),
  status          text NOT NULL CHECK (status IN ('invited', 'opted_in', 'withdrawn')),
  decided_by      text,
  decided_at      timestamptz,
  PRIMARY KEY (campaign_id, participant_id)
);
CREATE INDEX federation_campaign_participants_tenant ON federation_campaign_participants (tenant_id);

-- Per-tenant privacy budgets for the tenant's own data: (epsilon, delta).
CREATE TABLE federation_budgets (
  tenant_id   text PRIMARY KEY REFERENCES tenants(id),
  epsilon     double precision NOT NULL CHECK (epsilon > 0),
  delta       double precision NOT NULL CHECK (delta > 0 AND delta < 1),
  updated_by  text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One round: its recorded selection (who was a candidate, who was drawn, how: q and the accounted q) and outcome.
CREATE TABLE federation_rounds (
  campaign_id   text NOT NULL REFERENCES federation_campaigns(id) ON DELETE CASCADE,
  round         integer NOT NULL CHECK (round >= 1),
  status        text NOT NULL DEFAULT 'training'
                CHECK (status IN ('training', 'aggregated', 'completed', 'failed')),
  candidates    jsonb NOT NULL,  -- participant ids that could be drawn
  selected      jsonb NOT NULL,  -- participant ids drawn
  sampling      text NOT NULL,   -- poisson | full
  q             double precision NOT NULL,
  accounted_q   double precision NOT NULL,
  contributors  integer,         -- updates in the recorded aggregate
  aggregate     jsonb,           -- BlobRef of the recorded aggregate (what the decryptor may decrypt)
  model         jsonb,           -- BlobRef of the global parameters after the round
  metrics       jsonb,
  reason        text,
  started_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  PRIMARY KEY (campaign_id, round)
);

-- Privacy spent: exactly one row per (campaign, round, tenant), written in the same transaction that records the
-- round, so a retried activity or a worker that dies mid-round never spends twice. rdp holds the round's Rényi-DP
-- cost at the accountant's orders; a tenant's epsilon is the conversion of the sum over its rows.
CREATE TABLE federation_budget_spend (
  campaign_id  text NOT NULL,
  round        integer NOT NULL,
  tenant_id    text NOT NULL REFERENCES tenants(id),
  orders       double precision[] NOT NULL,
  rdp          double precision[] NOT NULL,
  q            double precision NOT NULL,
  noise_multiplier double precision NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (campaign_id, round, tenant_id),
  FOREIGN KEY (campaign_id, round) REFERENCES federation_rounds (campaign_id, round) ON DELETE CASCADE
);
-- Spending is a record, never revised.
REVOKE UPDATE, DELETE, TRUNCATE ON federation_budget_spend FROM agency_app;

-- Down Migration
DROP TABLE federation_budget_spend;
DROP TABLE federation_rounds;
DROP TABLE federation_budgets;
DROP TABLE federation_campaign_participants;
DROP TABLE federation_campaigns;
DROP TABLE federation_participants;
