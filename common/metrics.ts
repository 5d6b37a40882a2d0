/**
 * The process's Prometheus metrics (prom-client): one Registry per process, served by the API at GET /metrics and by
 * a worker process on WORKER_METRICS_PORT (workers/metrics-server.ts, merged there with the Temporal SDK's own).
 *
 * The names marked "product" are the documented ones (CAWS.md) and must not change; deploy/monitoring uses them.
 * Labels stay low-cardinality: route templates (never raw paths), methods, status classes, judge ids, decisions,
 * tiers, task statuses, audit actions and configured service names — never ids (one exception: the tenant of
 * agent_agency_blob_stored_bytes).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();

let defaultsEnabled = false;
/** Process metrics (CPU, memory, event-loop lag, GC, handles). Once per process; the entry points call it. */
export function enableDefaultMetrics(): void {
  if (defaultsEnabled) return;
  defaultsEnabled = true;
  collectDefaultMetrics({ register: registry });
}

/** The exposition text of this process's registry. */
export function renderMetrics(): Promise<string> {
  return registry.metrics();
}

export const METRICS_CONTENT_TYPE = registry.contentType;

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

// ---- API ----------------------------------------------------------------------------------------------------------

/** product: API requests, by route template (e.g. /api/v1/tasks/:id), method and status class (2xx … 5xx). */
export const requestsTotal = new Counter({
  name: 'agent_agency_requests_total',
  help: 'HTTP requests answered by the API',
  labelNames: ['method', 'route', 'status_class'] as const,
  registers: [registry],
});

/** product: API request duration. */
export const requestDuration = new Histogram({
  name: 'agent_agency_request_duration_seconds',
  help: 'HTTP request duration in seconds, from arrival to the last byte of the answer',
  labelNames: ['method', 'route', 'status_class'] as const,
  buckets: SECONDS,
  registers: [registry],
});

// ---- council ------------------------------------------------------------------------------------------------------

/** product: council sessions that ended, by phase (plan|result) and decision (accept|reject|modify|escalate). */
export const councilReviewsTotal = new Counter({
  name: 'agent_agency_council_reviews_total',
  help: 'Council sessions that reached a final verdict or escalated to a person',
  labelNames: ['phase', 'decision'] as const,
  registers: [registry],
});

/** Council decision time: from the session's start (its workflow's start) to its recorded verdict or escalation. */
export const councilDecisionSeconds = new Histogram({
  name: 'agent_agency_council_decision_seconds',
  help: 'Seconds from the start of a council session to its recorded verdict or escalation',
  labelNames: ['phase', 'decision'] as const,
  buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300],
  registers: [registry],
});

/**
 * Consensus: `unanimous` (every judge gave the same verdict in the deciding round), `split` (decided with dissent) or
 * `escalated` (no decision; a person decides). The consensus rate is unanimous / all (recording rule
 * agent_agency:council_consensus_rate:ratio_rate1h in deploy/monitoring/prometheus-rules.yaml).
 */
export const councilConsensusTotal = new Counter({
  name: 'agent_agency_council_consensus_total',
  help: 'Council sessions by how far the judges agreed in the deciding round',
  labelNames: ['phase', 'consensus'] as const,
  registers: [registry],
});

/** Per-judge latency: one runJudge activity (rules, plus the model when one is configured). */
export const judgeLatencySeconds = new Histogram({
  name: 'agent_agency_judge_latency_seconds',
  help: 'Seconds one judge took to give its verdict',
  labelNames: ['judge', 'phase'] as const,
  buckets: SECONDS,
  registers: [registry],
});

export const judgeVerdictsTotal = new Counter({
  name: 'agent_agency_judge_verdicts_total',
  help: 'Verdicts given by each judge',
  labelNames: ['judge', 'phase', 'verdict'] as const,
  registers: [registry],
});

// ---- tools (MCP) --------------------------------------------------------------------------------------------------

/** One MCP tool call from the execution pool, by outcome (ok|tool_error|invalid_arguments|timeout|unavailable). */
export const toolCallsTotal = new Counter({
  name: 'agent_agency_tool_calls_total',
  help: 'MCP tool calls made by the execution pool, by server, tool and outcome',
  labelNames: ['server', 'tool', 'outcome'] as const,
  registers: [registry],
});

export const toolCallSeconds = new Histogram({
  name: 'agent_agency_tool_call_seconds',
  help: 'Seconds one MCP tool call took',
  labelNames: ['server', 'tool'] as const,
  buckets: SECONDS,
  registers: [registry],
});

// ---- tasks --------------------------------------------------------------------------------------------------------

/** product: tasks that ended, by status (completed|failed|canceled). */
export const tasksCompletedTotal = new Counter({
  name: 'agent_agency_tasks_completed_total',
  help: 'Tasks that reached a final status',
  labelNames: ['status'] as const,
  registers: [registry],
});

/** product: risk assessments, by the tier they call for (1 is the most critical); scores are 0..1. */
export const riskScore = new Histogram({
  name: 'agent_agency_risk_score',
  help: 'Overall risk score (0..1, heuristic) of each assessed task, by the tier the assessment calls for',
  labelNames: ['tier'] as const,
  buckets: [0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1],
  registers: [registry],
});

// ---- audit --------------------------------------------------------------------------------------------------------

/** product: audit events appended (an idempotent replay of an existing event is not counted), by action. */
export const auditEventsTotal = new Counter({
  name: 'agent_agency_audit_events_total',
  help: 'Events appended to the audit trail',
  labelNames: ['action'] as const,
  registers: [registry],
});

/** Audit actions are code-defined (task.started, council.verdict …); anything else is reported as `other`. */
export function auditActionLabel(action: string): string {
  return /^[a-z][a-z0-9_]*(\.[a-z0-9_]+){0,3}$/.test(action) && action.length <= 64 ? action : 'other';
}

// ---- blob store ---------------------------------------------------------------------------------------------------

/**
 * Bytes of published blobs per tenant and backend, read from the blob catalog (common/blob-store/catalog.ts) when
 * scraped. Only a process that was handed the catalog reports it (the API, api/app.ts), so one series per tenant and
 * backend exists across the deployment rather than one per process. Tenants are few and named by the operator: the one
 * label here that carries an id.
 */
let blobBytesSource: (() => Promise<Iterable<{ tenant: string; backend: string; bytes: number }>>) | undefined;
export function reportBlobBytesFrom(
  source: () => Promise<Iterable<{ tenant: string; backend: string; bytes: number }>>,
): void {
  blobBytesSource = source;
}

export const blobStoredBytes = new Gauge({
  name: 'agent_agency_blob_stored_bytes',
  help: 'Bytes of published blobs in the blob store, by tenant and backend (postgres, s3)',
  labelNames: ['tenant', 'backend'] as const,
  registers: [registry],
  async collect() {
    if (!blobBytesSource) return;
    let rows;
    try {
      rows = await blobBytesSource();
    } catch {
      return; // the database is unreachable: keep the last values rather than fail the scrape
    }
    this.reset();
    for (const { tenant, backend, bytes } of rows) this.set({ tenant, backend }, bytes);
  },
});

const BLOB_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** One put, from the call to the blob being stored (or the failure), by backend and outcome (ok|error). */
export const blobPutSeconds = new Histogram({
  name: 'agent_agency_blob_put_seconds',
  help: 'Seconds one blob store put took, from the call until the blob was stored or the put failed',
  labelNames: ['backend', 'outcome'] as const,
  buckets: BLOB_SECONDS,
  registers: [registry],
});

/** One get, from the call to the stream's end (all bytes read and verified) or failure, by backend and outcome. */
export const blobGetSeconds = new Histogram({
  name: 'agent_agency_blob_get_seconds',
  help: 'Seconds one blob store get took, from the call until its stream ended or failed',
  labelNames: ['backend', 'outcome'] as const,
  buckets: BLOB_SECONDS,
  registers: [registry],
});

/** Bytes through the blob store, by backend and direction (put|get): with the histograms, the throughput. */
export const blobBytesTotal = new Counter({
  name: 'agent_agency_blob_bytes_total',
  help: 'Bytes written to (put) and read from (get) the blob store',
  labelNames: ['backend', 'direction'] as const,
  registers: [registry],
});

// ---- resilience ---------------------------------------------------------------------------------------------------

export const BREAKER_STATES = ['closed', 'half_open', 'open'] as const;
export type BreakerState = (typeof BREAKER_STATES)[number];

let breakerStates: () => Iterable<{ service: string; state: BreakerState }> = () => [];
/** circuit-breaker.ts hands over its breakers, so that a scrape reads each one's state as of now. */
export function reportBreakerStatesFrom(source: () => Iterable<{ service: string; state: BreakerState }>): void {
  breakerStates = source;
}

/**
 * product: circuit-breaker state as a state set: for each breaker (service), one series per state, 1 for the state it
 * is in and 0 for the others. `agent_agency_circuit_breaker_state{state="open"} == 1` is an open breaker.
 */
export const circuitBreakerState = new Gauge({
  name: 'agent_agency_circuit_breaker_state',
  help: 'Circuit breaker state: 1 for the state each breaker is in (closed, half_open, open), 0 for the others',
  labelNames: ['service', 'state'] as const,
  registers: [registry],
  collect() {
    for (const { service, state } of breakerStates()) {
      for (const s of BREAKER_STATES) this.set({ service, state: s }, s === state ? 1 : 0);
    }
  },
});

/**
 * product: recovery attempts — calls made to a service while it was failing (after a counted failure, or the probe of
 * a half-open breaker), with their outcome (`recovered` or `failed`). Temporal's activity retries of a failed model
 * call land here too, since each retry is such a call.
 */
export const errorRecoveryAttempts = new Counter({
  name: 'agent_agency_error_recovery_attempts',
  help: 'Calls made to a failing service (retries and half-open probes), by outcome: recovered or failed',
  labelNames: ['service', 'outcome'] as const,
  registers: [registry],
});

export const circuitBreakerRejectionsTotal = new Counter({
  name: 'agent_agency_circuit_breaker_rejections_total',
  help: 'Calls refused without being made because the service’s breaker was open',
  labelNames: ['service'] as const,
  registers: [registry],
});

/** Label value for a status code: 2xx, 3xx, 4xx, 5xx. */
export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}
