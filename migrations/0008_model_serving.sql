-- Up Migration

-- What each served model sends where (activities/inference/serving). One row per (tenant, model): the baseline
-- version that answers by default, the canary and its weight in basis points (exact weighted round-robin in every
-- serving process), a shadow share (mirrored to the canary, never returned), and versions kept warm without traffic
-- (blue-green's previous version, for an instant rollback). The canaryRollout workflow writes it; every serving
-- process reads it, woken within a second by NOTIFY model_serving, with a periodic re-read as a backstop.
CREATE TABLE model_serving (
  tenant_id         text NOT NULL REFERENCES tenants(id),
  model             text NOT NULL,
  baseline_version  text NOT NULL,
  canary_version    text,
  canary_weight     integer NOT NULL DEFAULT 0 CHECK (canary_weight BETWEEN 0 AND 10000),
  shadow_share      integer NOT NULL DEFAULT 0 CHECK (shadow_share BETWEEN 0 AND 10000),
  warm_versions     text[] NOT NULL DEFAULT '{}',
  -- Bumped on every change; a serving process reports the generation it applies (model_serving_replicas).
  generation        bigint NOT NULL DEFAULT 1,
  rollout_id        text,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, model),
  CHECK (canary_version IS NOT NULL OR (canary_weight = 0 AND shadow_share = 0))
);

CREATE FUNCTION model_serving_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('model_serving', json_build_object('tenant_id', NEW.tenant_id, 'model', NEW.model,
                                                       'generation', NEW.generation)::text);
  RETURN NEW;
END $$;

CREATE TRIGGER model_serving_changed AFTER INSERT OR UPDATE ON model_serving
  FOR EACH ROW EXECUTE FUNCTION model_serving_notify();

-- Each serving process (replica) reports, per model, the generation it has applied: it has loaded and warmed every
-- version that generation names. seen_at is its heartbeat; a replica silent for a while no longer counts as serving.
CREATE TABLE model_serving_replicas (
  replica_id   text NOT NULL,
  tenant_id    text NOT NULL,
  model        text NOT NULL,
  generation   bigint NOT NULL,
  loaded       text[] NOT NULL DEFAULT '{}',
  seen_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (replica_id, tenant_id, model)
);

-- Every prediction, written in batches by the process that answered it: which version and arm, how it was routed,
-- whether it failed, how long it took, its predicted class; feedback adds the label. The canary analysis reads it.
-- route: weights | sticky | pin | fallback (a failed canary answered by the baseline) | shadow (mirrored, not returned)
CREATE TABLE model_predictions (
  id           uuid PRIMARY KEY,
  tenant_id    text NOT NULL,
  model        text NOT NULL,
  version      text NOT NULL,
  arm          text NOT NULL CHECK (arm IN ('baseline', 'canary')),
  route        text NOT NULL CHECK (route IN ('weights', 'sticky', 'pin', 'fallback', 'shadow')),
  replica_id   text NOT NULL,
  ok           boolean NOT NULL,
  latency_ms   real NOT NULL,
  predicted    integer,
  -- shadow rows: the answer the caller got (from the primary), for comparison
  primary_predicted integer,
  label        integer,
  correct      boolean,
  created_at   timestamptz NOT NULL DEFAULT now(),
  labelled_at  timestamptz
);
CREATE INDEX model_predictions_by_model ON model_predictions (tenant_id, model, created_at);

-- Down Migration
DROP TABLE model_predictions;
DROP TABLE model_serving_replicas;
DROP TRIGGER model_serving_changed ON model_serving;
DROP FUNCTION model_serving_notify();
DROP TABLE model_serving;
