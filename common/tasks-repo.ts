/**
 * What the API reads about a task from PostgreSQL, beyond its audit events (common/audit.ts) and its artifacts by id
 * (common/artifacts.ts): the artifacts its audit trail refers to, and its events after a sequence number. The SQL
 * lives here; who may read which task is the API's business (api/task-service.ts).
 */
import type { ArtifactRef } from './artifacts.js';
import type { Db } from './db.js';

/**
 * Every string value anywhere in an event payload that is a sha256 hex digest: how payloads refer to artifacts
 * (`diff: <sha256>`, `artifact: <sha256>`, `logRef: { sha256 }`, …). Strict mode, so `.**` visits each value once.
 */
const SHA256_VALUES = `strict $.** ? (@.type() == "string" && @ like_regex "^[0-9a-f]{64}$")`;

/**
 * The tenant's artifacts that the workflow's audit events refer to. The workflow's events come by their index
 * (audit_events_workflow_idx), their sha256 values are taken out of the JSONB payloads with a jsonpath, and each is
 * joined on the artifacts' primary key (tenant_id, sha256); payload text is never searched.
 */
export async function artifactsReferencedBy(db: Db, tenantId: string, workflowId: string): Promise<ArtifactRef[]> {
  const { rows } = await db.query<{ sha256: string; media_type: string; size_bytes: number }>(
    `SELECT DISTINCT a.sha256, a.media_type, a.size_bytes
       FROM audit_events e
      CROSS JOIN LATERAL jsonb_path_query(e.payload, '${SHA256_VALUES}') AS ref(value)
       JOIN artifacts a ON a.tenant_id = e.tenant_id AND a.sha256 = ref.value #>> '{}'
      WHERE e.tenant_id = $1 AND e.workflow_id = $2`,
    [tenantId, workflowId],
  );
  return rows.map((r) => ({ sha256: r.sha256, mediaType: r.media_type, sizeBytes: r.size_bytes }));
}

export interface TaskEventRow {
  seq: string;
  action: string;
  actor: string;
  occurred_at: Date;
  payload: unknown;
}

/** Up to `limit` of the workflow's audit events with a sequence number above `seq`, in order. */
export async function taskEventsAfter(
  db: Db,
  tenantId: string,
  workflowId: string,
  seq: number,
  limit: number,
): Promise<TaskEventRow[]> {
  const { rows } = await db.query<TaskEventRow>(
    'SELECT seq, action, actor, occurred_at, payload FROM audit_events WHERE tenant_id = $1 AND workflow_id = $2 AND seq > $3 ORDER BY seq LIMIT $4',
    [tenantId, workflowId, seq, limit],
  );
  return rows;
}
