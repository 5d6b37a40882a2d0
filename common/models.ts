/**
 * The model registry (migrations/0007_models.sql): a tenant's models and their semantically versioned versions, each
 * with its ONNX artifact in the blob store (by BlobRef, content-addressed), the signature ONNX Runtime reported at
 * validation, provenance, metrics, settings, and a status that moves only along the state machine below, each move
 * recorded with its evidence (model_version_transitions) and in the audit trail (action model.version.<status>).
 *
 *   registered ──▶ validated ──▶ canary ──▶ active ──▶ retired
 *        │  ▲           │  │         └──▶ rolled_back
 *        ▼  └ (re-run)  │  └──▶ active (first version, or blue-green) ; validated/registered ──▶ retired
 *     rejected ◀────────┘ (validation failed: evidence names why)
 *
 * Exported API (M2 serving/rollout, F2 federation and the API call these):
 *   registerModelVersion(db, { tenantId, name, version?, artifact: BlobRef, signature?, provenance, metrics?, settings?,
 *     createdBy }): Promise<ModelVersion>          version omitted → next patch after the latest (first: 1.0.0).
 *     Idempotent: the same version with the same artifact returns the existing row; another artifact under an
 *     existing version is ModelVersionExistsError. The artifact must be a stored blob of the tenant (BlobNotFoundError).
 *   getModelVersion(db, tenantId, name, version): Promise<ModelVersion | undefined>
 *   listModelVersions(db, tenantId, name, { status? }?): Promise<ModelVersion[]>      newest semver first
 *   listModels(db, tenantId): Promise<ModelSummary[]>
 *   activeVersion(db, tenantId, name): Promise<ModelVersion | undefined>
 *   setVersionStatus(db, tenantId, name, version, { to, evidence, actor, from? }): Promise<ModelVersion>
 *     Moves along the state machine in one conditional UPDATE (concurrent movers cannot both win). Already in `to`:
 *     returns the row unchanged (activity retries are harmless). `from` (optional) demands the current status.
 *     to 'active' retires the previously active version in the same transaction (evidence { replacedBy }).
 *     Illegal move → ModelTransitionError (the API answers 409). Unknown version → ModelNotFoundError.
 *   recordValidation(db, tenantId, name, version, { passed, signature?, report, actor }): Promise<ModelVersion>
 *     stores the report (and the signature) and moves registered|validated → validated or → rejected.
 *   updateVersionSettings(db, tenantId, name, version, settings): Promise<ModelVersion>   (tuning writes here)
 *   versionTransitions(db, tenantId, name, version): Promise<VersionTransition[]>       oldest first
 *   ModelVersion { tenantId, name, version, artifact: BlobRef, signature: ModelSignature | null, provenance, metrics,
 *     settings: { session?, serving? }, status, validation: ValidationReport | null, createdBy, createdAt,
 *     statusChangedAt }  (times as ISO strings: these rows cross the Temporal payload boundary)
 */
import type { PoolClient } from 'pg';
import { z } from 'zod';
import { appendAuditEvent } from './audit.js';
import { addBlobRef, inTransaction } from './blob-store/catalog.js';
import type { BlobRef } from './blob-store/types.js';
import type { Db } from './db.js';
import { ModelSignatureSchema, type ModelSignature } from './onnx/signature.js';
import { SessionSettingsSchema } from './onnx/session-settings.js';
import { ServingPolicySchema, type ServingPolicy } from './serving-policy.js';

export const MODEL_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const ModelNameSchema = z
  .string()
  .regex(MODEL_NAME, 'a model name is 1-63 characters: a-z, 0-9, then also . _ -, starting with a letter or digit');

/** semver.org 2.0.0 without build metadata (it does not order versions, so it would only make two names for one). */
const SEMVER =
  /^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$/;
export const SemverSchema = z.string().max(128).regex(SEMVER, 'a semantic version such as 1.4.0 or 2.0.0-rc.1');

export const VERSION_STATUSES = [
  'registered',
  'validated',
  'rejected',
  'canary',
  'active',
  'retired',
  'rolled_back',
] as const;
export type VersionStatus = (typeof VERSION_STATUSES)[number];

/** The state machine: for each target status, the statuses a version may come from. */
export const TRANSITIONS: Record<VersionStatus, readonly VersionStatus[]> = {
  registered: [],
  // validated → validated: a re-validation against a newer active version.
  validated: ['registered', 'validated'],
  rejected: ['registered', 'validated'],
  canary: ['validated'],
  // validated → active: the first version of a model, or a blue-green switch.
  active: ['validated', 'canary'],
  retired: ['registered', 'validated', 'active'],
  rolled_back: ['canary'],
};

export { ServingPolicySchema, type ServingPolicy };

export const VersionSettingsSchema = z
  .object({ session: SessionSettingsSchema.optional(), serving: ServingPolicySchema.optional() })
  .strict();
export type VersionSettings = z.infer<typeof VersionSettingsSchema>;

export const ProvenanceSchema = z
  .object({
    by: z.discriminatedUnion('kind', [
      z
        .object({
          kind: z.literal('workflow'),
          workflowId: z.string().min(1).max(256),
          workflowType: z.string().max(256).optional(),
          runId: z.string().max(256).optional(),
        })
        .strict(),
      z.object({ kind: z.literal('person'), principal: z.string().min(1).max(256) }).strict(),
    ]),
    /** What it was trained on: free keys, e.g. { dataset: 'mnist', partition: 'dirichlet(0.5)', campaignId }. */
    data: z.record(z.string().max(64), z.union([z.string().max(2000), z.number(), z.boolean()])).default({}),
  })
  .strict();
export type Provenance = z.infer<typeof ProvenanceSchema>;

export const MetricsSchema = z.record(z.string().min(1).max(64), z.number());

export interface ValidationReport {
  passed: boolean;
  /** Why not, in sentences (signature differences, NaN, latency, load error). */
  reasons: string[];
  [key: string]: unknown;
}

export interface ModelVersion {
  tenantId: string;
  name: string;
  version: string;
  artifact: BlobRef;
  signature: ModelSignature | null;
  provenance: Provenance;
  metrics: Record<string, number>;
  settings: VersionSettings;
  status: VersionStatus;
  validation: ValidationReport | null;
  createdBy: string;
  createdAt: string;
  statusChangedAt: string;
}

export interface ModelSummary {
  name: string;
  createdAt: string;
  versions: number;
  latest: string | null;
  active: string | null;
}

export interface VersionTransition {
  from: VersionStatus | null;
  to: VersionStatus;
  actor: string;
  evidence: Record<string, unknown>;
  at: string;
}

export class ModelNotFoundError extends Error {
  override name = 'ModelNotFoundError';
}
export class ModelVersionExistsError extends Error {
  override name = 'ModelVersionExistsError';
}
export class ModelTransitionError extends Error {
  override name = 'ModelTransitionError';
  constructor(
    message: string,
    readonly current: VersionStatus,
    readonly to: VersionStatus,
  ) {
    super(message);
  }
}

export interface RegisterVersionInput {
  tenantId: string;
  name: string;
  version?: string;
  artifact: BlobRef;
  signature?: ModelSignature;
  provenance: Provenance;
  metrics?: Record<string, number>;
  settings?: VersionSettings;
  /** A person's principal (user:<id>) or a workflow id. */
  createdBy: string;
}

/** A row of model_versions: the columns stored as they are read, and the snake_case ones toVersion renames. */
interface VersionRow extends Pick<
  ModelVersion,
  'version' | 'signature' | 'provenance' | 'metrics' | 'settings' | 'status' | 'validation'
> {
  tenant_id: string;
  model_name: string;
  artifact_sha256: string;
  artifact_size: string;
  created_by: string;
  created_at: Date;
  status_changed_at: Date;
}

function toVersion(r: VersionRow): ModelVersion {
  return {
    tenantId: r.tenant_id,
    name: r.model_name,
    version: r.version,
    artifact: { tenantId: r.tenant_id, sha256: r.artifact_sha256, sizeBytes: Number(r.artifact_size) },
    signature: r.signature,
    provenance: r.provenance,
    metrics: r.metrics,
    settings: r.settings,
    status: r.status,
    validation: r.validation,
    createdBy: r.created_by,
    createdAt: r.created_at.toISOString(),
    statusChangedAt: r.status_changed_at.toISOString(),
  };
}

const NEWEST_FIRST = 'major DESC, minor DESC, patch DESC, prerelease IS NULL DESC, prerelease DESC';

export function parseSemver(version: string): {
  major: number;
  minor: number;
  patch: number;
  prerelease: string | null;
} {
  const m = SEMVER.exec(version);
  if (!m) throw new Error(`not a semantic version: ${version}`);
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), prerelease: m[4] ?? null };
}

async function selectVersion(
  q: Db | PoolClient,
  tenantId: string,
  name: string,
  version: string,
  lock = false,
): Promise<ModelVersion | undefined> {
  const { rows } = await q.query<VersionRow>(
    `SELECT * FROM model_versions WHERE tenant_id = $1 AND model_name = $2 AND version = $3${lock ? ' FOR UPDATE' : ''}`,
    [tenantId, name, version],
  );
  return rows[0] && toVersion(rows[0]);
}

/** The next patch after the newest release (prereleases aside); 1.0.0 for a model's first version. */
async function nextVersion(client: PoolClient, tenantId: string, name: string): Promise<string> {
  const { rows } = await client.query<{ major: number; minor: number; patch: number }>(
    `SELECT major, minor, patch FROM model_versions WHERE tenant_id = $1 AND model_name = $2
      ORDER BY major DESC, minor DESC, patch DESC LIMIT 1`,
    [tenantId, name],
  );
  const r = rows[0];
  return r ? `${r.major}.${r.minor}.${r.patch + 1}` : '1.0.0';
}

export async function registerModelVersion(db: Db, input: RegisterVersionInput): Promise<ModelVersion> {
  ModelNameSchema.parse(input.name);
  const provenance = ProvenanceSchema.parse(input.provenance);
  const metrics = MetricsSchema.parse(input.metrics ?? {});
  const settings = VersionSettingsSchema.parse(input.settings ?? {});
  const signature = input.signature ? ModelSignatureSchema.parse(input.signature) : null;
  if (input.artifact.tenantId !== input.tenantId) throw new Error('the artifact is another tenant’s blob');
  const { version, created } = await inTransaction(db, async (client) => {
    // One registration per model at a time: the version auto-numbering reads then writes.
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
      `model:${input.tenantId}/${input.name}`,
    ]);
    await client.query(`INSERT INTO models (tenant_id, name, created_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [
      input.tenantId,
      input.name,
      input.createdBy,
    ]);
    if (input.version === undefined) {
      // A retried registration without a version (an activity run twice) finds its first attempt by content.
      const { rows } = await client.query<VersionRow>(
        `SELECT * FROM model_versions WHERE tenant_id = $1 AND model_name = $2 AND artifact_sha256 = $3
            AND provenance = $4::jsonb ORDER BY created_at LIMIT 1`,
        [input.tenantId, input.name, input.artifact.sha256, JSON.stringify(provenance)],
      );
      if (rows[0]) return { version: toVersion(rows[0]), created: false };
    }
    const version = input.version ?? (await nextVersion(client, input.tenantId, input.name));
    const sv = parseSemver(SemverSchema.parse(version));
    const existing = await selectVersion(client, input.tenantId, input.name, version);
    if (existing) {
      if (existing.artifact.sha256 === input.artifact.sha256) return { version: existing, created: false };
      throw new ModelVersionExistsError(`${input.name} ${version} exists with another artifact`);
    }
    await addBlobRef(client, input.tenantId, input.artifact.sha256, { kind: 'model', id: `${input.name}@${version}` });
    const { rows } = await client.query<VersionRow>(
      `INSERT INTO model_versions (tenant_id, model_name, version, major, minor, patch, prerelease, artifact_sha256,
                                   artifact_size, signature, provenance, metrics, settings, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING *`,
      [
        input.tenantId,
        input.name,
        version,
        sv.major,
        sv.minor,
        sv.patch,
        sv.prerelease,
        input.artifact.sha256,
        input.artifact.sizeBytes,
        signature && JSON.stringify(signature),
        JSON.stringify(provenance),
        JSON.stringify(metrics),
        JSON.stringify(settings),
        input.createdBy,
      ],
    );
    await client.query(
      `INSERT INTO model_version_transitions (tenant_id, model_name, version, from_status, to_status, actor, evidence)
       VALUES ($1, $2, $3, NULL, 'registered', $4, $5)`,
      [input.tenantId, input.name, version, input.createdBy, JSON.stringify({ artifact: input.artifact, provenance })],
    );
    return { version: toVersion(rows[0]!), created: true };
  });
  if (created) await auditTransition(db, version, null, input.createdBy, { provenance });
  return version;
}

export function getModelVersion(
  db: Db,
  tenantId: string,
  name: string,
  version: string,
): Promise<ModelVersion | undefined> {
  return selectVersion(db, tenantId, name, version);
}

export async function listModelVersions(
  db: Db,
  tenantId: string,
  name: string,
  opts: { status?: VersionStatus } = {},
): Promise<ModelVersion[]> {
  const { rows } = await db.query<VersionRow>(
    `SELECT * FROM model_versions WHERE tenant_id = $1 AND model_name = $2 AND ($3::text IS NULL OR status = $3)
      ORDER BY ${NEWEST_FIRST}`,
    [tenantId, name, opts.status ?? null],
  );
  return rows.map(toVersion);
}

export async function listModels(db: Db, tenantId: string): Promise<ModelSummary[]> {
  const { rows } = await db.query<{
    name: string;
    created_at: Date;
    versions: string;
    latest: string | null;
    active: string | null;
  }>(
    `SELECT m.name, m.created_at,
            (SELECT count(*) FROM model_versions v WHERE v.tenant_id = m.tenant_id AND v.model_name = m.name) AS versions,
            (SELECT v.version FROM model_versions v WHERE v.tenant_id = m.tenant_id AND v.model_name = m.name
              ORDER BY ${NEWEST_FIRST} LIMIT 1) AS latest,
            (SELECT v.version FROM model_versions v WHERE v.tenant_id = m.tenant_id AND v.model_name = m.name
                AND v.status = 'active') AS active
       FROM models m WHERE m.tenant_id = $1 ORDER BY m.name`,
    [tenantId],
  );
  return rows.map((r) => ({
    name: r.name,
    createdAt: r.created_at.toISOString(),
    versions: Number(r.versions),
    latest: r.latest,
    active: r.active,
  }));
}

export async function activeVersion(db: Db, tenantId: string, name: string): Promise<ModelVersion | undefined> {
  return (await listModelVersions(db, tenantId, name, { status: 'active' }))[0];
}

export interface StatusChange {
  to: VersionStatus;
  evidence: Record<string, unknown>;
  /** A person's principal (user:<id>), a pool (worker:<pool>) or a workflow id (audited as worker:inference). */
  actor: string;
  /** When given, the move happens only from this status. */
  from?: VersionStatus;
}

async function moveVersion(
  client: PoolClient,
  v: ModelVersion,
  change: StatusChange,
  extra: { validation?: ValidationReport; signature?: ModelSignature | null } = {},
): Promise<ModelVersion> {
  const allowed = TRANSITIONS[change.to].filter((s) => !change.from || s === change.from);
  const { rows } = await client.query<VersionRow>(
    `UPDATE model_versions
        SET status = $4, status_changed_at = now(),
            validation = CASE WHEN $6::boolean THEN $7::jsonb ELSE validation END,
            signature = CASE WHEN $8::boolean THEN $9::jsonb ELSE signature END
      WHERE tenant_id = $1 AND model_name = $2 AND version = $3 AND status = ANY($5::text[])
      RETURNING *`,
    [
      v.tenantId,
      v.name,
      v.version,
      change.to,
      allowed,
      extra.validation !== undefined,
      JSON.stringify(extra.validation ?? null),
      extra.signature !== undefined,
      JSON.stringify(extra.signature ?? null),
    ],
  );
  if (!rows[0]) {
    throw new ModelTransitionError(
      `${v.name} ${v.version} is ${v.status}; it cannot become ${change.to}` +
        (allowed.length ? ` (only from ${allowed.join(' or ')})` : ''),
      v.status,
      change.to,
    );
  }
  await client.query(
    `INSERT INTO model_version_transitions (tenant_id, model_name, version, from_status, to_status, actor, evidence)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [v.tenantId, v.name, v.version, v.status, change.to, change.actor, JSON.stringify(change.evidence)],
  );
  return toVersion(rows[0]);
}

async function auditTransition(
  db: Db,
  v: ModelVersion,
  from: VersionStatus | null,
  actor: string,
  evidence: Record<string, unknown>,
): Promise<void> {
  // The audit trail takes people and pools as actors; anything else (a rollout's workflow id) is the workflow that
  // acted through a worker of the inference pool.
  const person = /^(user:|worker:|council:|system$)/.test(actor);
  await appendAuditEvent(db, {
    tenantId: v.tenantId,
    actor: person ? actor : 'worker:inference',
    ...(person ? {} : { workflowId: actor }),
    action: `model.version.${v.status}`,
    subject: `${v.name}@${v.version}`,
    idempotencyKey: `model.version:${v.tenantId}:${v.name}@${v.version}:${v.status}:${v.statusChangedAt}`,
    payload: { model: v.name, version: v.version, from, to: v.status, evidence },
  });
}

/**
 * Moves a version along the state machine (see the header). Concurrent callers: the row is locked for the move, so
 * exactly one wins and the other sees the new status (the same `to`: returned unchanged; another: refused).
 */
export async function setVersionStatus(
  db: Db,
  tenantId: string,
  name: string,
  version: string,
  change: StatusChange,
  extra: { validation?: ValidationReport; signature?: ModelSignature | null } = {},
): Promise<ModelVersion> {
  const audits: { v: ModelVersion; from: VersionStatus; evidence: Record<string, unknown> }[] = [];
  const result = await inTransaction(db, async (client) => {
    const current = await selectVersion(client, tenantId, name, version, true);
    if (!current) throw new ModelNotFoundError(`no version ${version} of model ${name}`);
    // Idempotent for retried activities, except a re-validation, which must record its new report.
    if (current.status === change.to && !(change.to === 'validated' && extra.validation)) return current;
    if (change.to === 'active') {
      const { rows } = await client.query<VersionRow>(
        `SELECT * FROM model_versions WHERE tenant_id = $1 AND model_name = $2 AND status = 'active' FOR UPDATE`,
        [tenantId, name],
      );
      const previous = rows[0] && toVersion(rows[0]);
      // Check the move is legal before retiring the old one (the transaction rolls back anyway, but fail clearly).
      if (!TRANSITIONS.active.includes(current.status) || (change.from && change.from !== current.status)) {
        return moveVersion(client, current, change);
      }
      if (previous) {
        const evidence = { replacedBy: version, ...change.evidence };
        const retired = await moveVersion(client, previous, { to: 'retired', actor: change.actor, evidence });
        audits.push({ v: retired, from: 'active', evidence });
      }
    }
    const moved = await moveVersion(client, current, change, extra);
    audits.push({ v: moved, from: current.status, evidence: change.evidence });
    return moved;
  });
  for (const a of audits) await auditTransition(db, a.v, a.from, change.actor, a.evidence);
  return result;
}

/** Stores a validation's outcome: registered|validated → validated (with the signature) or → rejected. */
export function recordValidation(
  db: Db,
  tenantId: string,
  name: string,
  version: string,
  outcome: { report: ValidationReport; signature?: ModelSignature; actor: string },
): Promise<ModelVersion> {
  const to: VersionStatus = outcome.report.passed ? 'validated' : 'rejected';
  const evidence = { passed: outcome.report.passed, reasons: outcome.report.reasons };
  return setVersionStatus(
    db,
    tenantId,
    name,
    version,
    { to, actor: outcome.actor, evidence },
    { validation: outcome.report, ...(outcome.signature ? { signature: outcome.signature } : {}) },
  );
}

export async function updateVersionSettings(
  db: Db,
  tenantId: string,
  name: string,
  version: string,
  settings: VersionSettings,
): Promise<ModelVersion> {
  const parsed = VersionSettingsSchema.parse(settings);
  const { rows } = await db.query<VersionRow>(
    `UPDATE model_versions SET settings = $4 WHERE tenant_id = $1 AND model_name = $2 AND version = $3 RETURNING *`,
    [tenantId, name, version, JSON.stringify(parsed)],
  );
  if (!rows[0]) throw new ModelNotFoundError(`no version ${version} of model ${name}`);
  return toVersion(rows[0]);
}

export async function versionTransitions(
  db: Db,
  tenantId: string,
  name: string,
  version: string,
): Promise<VersionTransition[]> {
  const { rows } = await db.query<{
    from_status: VersionStatus | null;
    to_status: VersionStatus;
    actor: string;
    evidence: Record<string, unknown>;
    at: Date;
  }>(
    `SELECT from_status, to_status, actor, evidence, at FROM model_version_transitions
      WHERE tenant_id = $1 AND model_name = $2 AND version = $3 ORDER BY id`,
    [tenantId, name, version],
  );
  return rows.map((r) => ({
    from: r.from_status,
    to: r.to_status,
    actor: r.actor,
    evidence: r.evidence,
    at: r.at.toISOString(),
  }));
}
