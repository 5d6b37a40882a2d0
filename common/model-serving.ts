/**
 * The serving tables (migrations/0008_model_serving.sql): what each model sends where, which serving processes have
 * applied it, and every prediction (with its label once feedback arrives). Used by the serving host
 * (activities/inference/serving), the rollout's activities and the predictions routes.
 */
import type { Db } from './db.js';

export interface ServingRow {
  tenantId: string;
  model: string;
  baselineVersion: string;
  canaryVersion: string | null;
  /** Basis points, 0..10000. */
  canaryWeight: number;
  shadowShare: number;
  warmVersions: string[];
  generation: number;
  rolloutId: string | null;
}

const SERVING_COLUMNS = `tenant_id, model, baseline_version, canary_version, canary_weight, shadow_share,
  warm_versions, generation::int AS generation, rollout_id`;

type Row = Record<string, unknown>;

function servingRow(r: Row): ServingRow {
  return {
    tenantId: r.tenant_id as string,
    model: r.model as string,
    baselineVersion: r.baseline_version as string,
    canaryVersion: (r.canary_version as string | null) ?? null,
    canaryWeight: r.canary_weight as number,
    shadowShare: r.shadow_share as number,
    warmVersions: r.warm_versions as string[],
    generation: r.generation as number,
    rolloutId: (r.rollout_id as string | null) ?? null,
  };
}

/** Every version a row needs loaded (and warm) in each serving process. */
export function versionsOf(row: ServingRow): string[] {
  return [...new Set([row.baselineVersion, ...(row.canaryVersion ? [row.canaryVersion] : []), ...row.warmVersions])];
}

export async function getServing(db: Db, tenantId: string, model: string): Promise<ServingRow | undefined> {
  const { rows } = await db.query<Row>(
    `SELECT ${SERVING_COLUMNS} FROM model_serving WHERE tenant_id = $1 AND model = $2`,
    [tenantId, model],
  );
  return rows[0] ? servingRow(rows[0]) : undefined;
}

export async function listServing(db: Db): Promise<ServingRow[]> {
  const { rows } = await db.query<Row>(`SELECT ${SERVING_COLUMNS} FROM model_serving`);
  return rows.map(servingRow);
}

export type ServingChange = Partial<
  Pick<ServingRow, 'baselineVersion' | 'canaryVersion' | 'canaryWeight' | 'shadowShare' | 'warmVersions' | 'rolloutId'>
>;

/**
 * Creates or changes a model's row and bumps its generation; the trigger notifies every serving process. Returns the
 * row as written. A missing row needs baselineVersion.
 */
export async function setServing(db: Db, tenantId: string, model: string, change: ServingChange): Promise<ServingRow> {
  const params = [
    tenantId,
    model,
    change.baselineVersion ?? null,
    change.canaryVersion ?? null,
    change.canaryWeight ?? null,
    change.shadowShare ?? null,
    change.warmVersions ?? null,
    change.rolloutId ?? null,
    'canaryVersion' in change,
    'rolloutId' in change,
  ];
  // UPDATE, else INSERT: an INSERT … ON CONFLICT would check its proposed row (partial here) against the CHECKs.
  const updated = await db.query<Row>(
    `UPDATE model_serving SET
       baseline_version = coalesce($3, baseline_version),
       canary_version = CASE WHEN $9 THEN $4 ELSE canary_version END,
       canary_weight = coalesce($5, canary_weight),
       shadow_share = coalesce($6, shadow_share),
       warm_versions = coalesce($7, warm_versions),
       rollout_id = CASE WHEN $10 THEN $8 ELSE rollout_id END,
       generation = generation + 1,
       updated_at = now()
     WHERE tenant_id = $1 AND model = $2
     RETURNING ${SERVING_COLUMNS}`,
    params,
  );
  if (updated.rows[0]) return servingRow(updated.rows[0]);
  const inserted = await db.query<Row>(
    `INSERT INTO model_serving (tenant_id, model, baseline_version, canary_version, canary_weight, shadow_share,
                                warm_versions, rollout_id)
     VALUES ($1, $2, $3, $4, coalesce($5, 0), coalesce($6, 0), coalesce($7, '{}'::text[]), $8)
     ON CONFLICT (tenant_id, model) DO NOTHING
     RETURNING ${SERVING_COLUMNS}`,
    params.slice(0, 8),
  );
  // Two first writers at once: the loser applies its change to the winner's row.
  return inserted.rows[0] ? servingRow(inserted.rows[0]) : setServing(db, tenantId, model, change);
}

/** A serving process reports the generation it applies and what it has loaded (also its heartbeat). */
export async function reportReplica(
  db: Db,
  replicaId: string,
  row: Pick<ServingRow, 'tenantId' | 'model'>,
  generation: number,
  loaded: string[],
): Promise<void> {
  await db.query(
    `INSERT INTO model_serving_replicas (replica_id, tenant_id, model, generation, loaded, seen_at)
     VALUES ($1, $2, $3, $4, $5, now())
     ON CONFLICT (replica_id, tenant_id, model) DO UPDATE SET generation = $4, loaded = $5, seen_at = now()`,
    [replicaId, row.tenantId, row.model, generation, loaded],
  );
}

export async function forgetReplica(db: Db, replicaId: string): Promise<void> {
  await db.query(`DELETE FROM model_serving_replicas WHERE replica_id = $1`, [replicaId]);
}

export interface ReplicaState {
  replicaId: string;
  generation: number;
  loaded: string[];
}

/** The replicas seen within `liveMs` for a model: the ones a change must reach. */
export async function liveReplicas(db: Db, tenantId: string, model: string, liveMs: number): Promise<ReplicaState[]> {
  const { rows } = await db.query<{ replica_id: string; generation: number; loaded: string[] }>(
    `SELECT replica_id, generation::int AS generation, loaded FROM model_serving_replicas
      WHERE tenant_id = $1 AND model = $2 AND seen_at > now() - make_interval(secs => $3::float8 / 1000)`,
    [tenantId, model, liveMs],
  );
  return rows.map((r) => ({ replicaId: r.replica_id, generation: r.generation, loaded: r.loaded }));
}

export type Route = 'weights' | 'sticky' | 'pin' | 'fallback' | 'shadow';

export interface PredictionRecord {
  id: string;
  tenantId: string;
  model: string;
  version: string;
  arm: 'baseline' | 'canary';
  route: Route;
  replicaId: string;
  ok: boolean;
  latencyMs: number;
  predicted: number | null;
  primaryPredicted: number | null;
  at: Date;
}

/** One multi-row insert (unnest), so a busy process writes its predictions in a few statements a second. */
export async function insertPredictions(db: Db, records: readonly PredictionRecord[]): Promise<void> {
  if (records.length === 0) return;
  const col = <K extends keyof PredictionRecord>(k: K) => records.map((r) => r[k]);
  await db.query(
    `INSERT INTO model_predictions (id, tenant_id, model, version, arm, route, replica_id, ok, latency_ms, predicted,
                                    primary_predicted, created_at)
     SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                          $8::boolean[], $9::real[], $10::int[], $11::int[], $12::timestamptz[])
     ON CONFLICT (id) DO NOTHING`,
    [
      col('id'),
      col('tenantId'),
      col('model'),
      col('version'),
      col('arm'),
      col('route'),
      col('replicaId'),
      col('ok'),
      col('latencyMs'),
      col('predicted'),
      col('primaryPredicted'),
      col('at'),
    ],
  );
}

export interface FeedbackResult {
  version: string;
  predicted: number | null;
  correct: boolean | null;
}

/** Attaches a label to a prediction (and so to its version); undefined when no such prediction is recorded (yet). */
export async function attachLabel(
  db: Db,
  tenantId: string,
  model: string,
  id: string,
  label: number,
): Promise<FeedbackResult | undefined> {
  const { rows } = await db.query<{ version: string; predicted: number | null; correct: boolean | null }>(
    `UPDATE model_predictions SET label = $4, correct = (predicted = $4), labelled_at = now()
      WHERE tenant_id = $1 AND model = $2 AND id = $3 AND route <> 'shadow'
      RETURNING version, predicted, correct`,
    [tenantId, model, id, label],
  );
  return rows[0] ? { version: rows[0].version, predicted: rows[0].predicted, correct: rows[0].correct } : undefined;
}

/** Labels for many predictions in one statement (a client returning a batch of truths). Returns how many matched. */
export async function attachLabels(
  db: Db,
  tenantId: string,
  model: string,
  labels: readonly { id: string; label: number }[],
): Promise<number> {
  if (labels.length === 0) return 0;
  const { rowCount } = await db.query(
    `UPDATE model_predictions p SET label = l.label, correct = (p.predicted = l.label), labelled_at = now()
       FROM unnest($3::uuid[], $4::int[]) AS l(id, label)
      WHERE p.tenant_id = $1 AND p.model = $2 AND p.id = l.id AND p.route <> 'shadow'`,
    [tenantId, model, labels.map((l) => l.id), labels.map((l) => l.label)],
  );
  return rowCount ?? 0;
}

export interface ArmCounts {
  requests: number;
  errors: number;
  labelled: number;
  wrong: number;
}

/**
 * Counts per arm for the analysis, between two instants, for requests routed by the weights or a sticky key (pins,
 * fallbacks and shadows say nothing about the split).
 */
export async function armCounts(
  db: Db,
  tenantId: string,
  model: string,
  versions: { baseline: string; canary: string },
  from: Date,
  to: Date,
): Promise<{ baseline: ArmCounts; canary: ArmCounts }> {
  const { rows } = await db.query<ArmCounts & { arm: string }>(
    `SELECT arm, count(*)::int AS requests, count(*) FILTER (WHERE NOT ok)::int AS errors,
            count(label)::int AS labelled, count(*) FILTER (WHERE correct = false)::int AS wrong
       FROM model_predictions
      WHERE tenant_id = $1 AND model = $2 AND route IN ('weights', 'sticky') AND created_at >= $3 AND created_at < $4
        AND ((arm = 'baseline' AND version = $5) OR (arm = 'canary' AND version = $6))
      GROUP BY arm`,
    [tenantId, model, from, to, versions.baseline, versions.canary],
  );
  const empty: ArmCounts = { requests: 0, errors: 0, labelled: 0, wrong: 0 };
  const of = (arm: string): ArmCounts => {
    const r = rows.find((x) => x.arm === arm);
    return r ? { requests: r.requests, errors: r.errors, labelled: r.labelled, wrong: r.wrong } : empty;
  };
  return { baseline: of('baseline'), canary: of('canary') };
}

/** Latencies (ms) of successful weighted requests per arm in a window, the most recent `limit` of each. */
export async function armLatencies(
  db: Db,
  tenantId: string,
  model: string,
  versions: { baseline: string; canary: string },
  from: Date,
  to: Date,
  limit = 2000,
): Promise<{ baseline: number[]; canary: number[] }> {
  const q = (arm: string, version: string) =>
    db.query<{ latency_ms: number }>(
      `SELECT latency_ms FROM model_predictions
        WHERE tenant_id = $1 AND model = $2 AND arm = $3 AND version = $4 AND ok AND route IN ('weights', 'sticky')
          AND created_at >= $5 AND created_at < $6
        ORDER BY created_at DESC LIMIT $7`,
      [tenantId, model, arm, version, from, to, limit],
    );
  const [b, c] = await Promise.all([q('baseline', versions.baseline), q('canary', versions.canary)]);
  return { baseline: b.rows.map((r) => r.latency_ms), canary: c.rows.map((r) => r.latency_ms) };
}
