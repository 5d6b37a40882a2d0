/**
 * Observability against the real stack: a task submitted over HTTP, then
 *   - one correlation id in the API's request log line and in the log lines of the task's activities;
 *   - the API's GET /metrics (request metrics by route template) and the worker process's metrics endpoint (council,
 *     tasks, risk, audit, process metrics, and the Temporal SDK's own metrics merged in), with plausible values;
 *   - the OpenAPI document served without credentials;
 *   - Temporal cut off behind a proxy: the task routes answer 503 with Retry-After (fast once the breaker is open),
 *     and 200 again after the proxy is restored and the cool-down has passed.
 */
import { randomUUID } from 'node:crypto';
import { startCuttableProxy } from '../helpers/proxy.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEMPORAL_PATHS } from '../../api/dependencies.js';
import { OPENAPI_PATH } from '../../api/routes/openapi.js';
import type { Config } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import { enableDefaultMetrics } from '../../common/metrics.js';
import {
  startWorkerMetricsServer,
  TEMPORAL_SDK_METRICS,
  type WorkerMetricsServer,
} from '../../workers/metrics-server.js';
import { installRuntime } from '../../workers/runtime.js';
import { freePort } from '../helpers/ports.js';
import { eventually, json, sampleRepo, startApi, testConfig, useStack, type RunningApi } from '../helpers/stack.js';
import { taskClient } from '../helpers/tasks.js';

interface LogLine {
  msg?: string;
  correlationId?: string;
  workflowId?: string;
  activityType?: string;
  route?: string;
  req?: { method?: string; url?: string; headers?: unknown };
  res?: { statusCode?: number };
  [key: string]: unknown;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || line.startsWith('#')) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The sum of the samples of `name` whose labels include `labels`. */
function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

describe('observability: logs, metrics, OpenAPI and dependency failures against the real stack', () => {
  const lines: LogLine[] = [];
  const log = createLogger(
    'debug',
    { component: 'observability-test' },
    {
      write: (line: string) => void lines.push(JSON.parse(line) as LogLine),
    },
  );
  let config: Config;
  let api: RunningApi;
  let workerMetrics: WorkerMetricsServer;
  let sdkMetricsUrl: string;

  beforeAll(async () => {
    // First runtime of this process (one process per test file): the SDK exports its metrics on a free port.
    const sdkPort = await freePort();
    sdkMetricsUrl = `http://127.0.0.1:${sdkPort}/metrics`;
    expect(installRuntime(log, 'WARN', { bindAddress: `127.0.0.1:${sdkPort}` })).toBe(true);
    enableDefaultMetrics();
  });
  useStack((stack) => ({ config, api } = stack), {
    pools: ['orchestration', 'planning', 'council', 'execution'],
    log,
  });
  beforeAll(async () => {
    workerMetrics = await startWorkerMetricsServer({ host: '127.0.0.1', port: 0, sdkMetricsUrl, log });
  });
  afterAll(async () => {
    await workerMetrics?.close();
  });

  describe('a task submitted with a correlation id', () => {
    const correlationId = `corr-obs-${randomUUID().slice(0, 8)}`;
    let id: string;

    beforeAll(async () => {
      const res = await api.fetch('/api/v1/tasks', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-correlation-id': correlationId },
        body: JSON.stringify({ title: 'Fix average in the sample', workspace: await sampleRepo() }),
      });
      expect(res.status).toBe(202);
      expect(res.headers.get('x-correlation-id')).toBe(correlationId);
      id = (await json<{ id: string }>(res)).id;
      const done = await taskClient(() => api).finished(id);
      expect(done.status).toBe('completed');
    });

    it('when it has run, then its correlation id is in the API request line and in its activities’ log lines', async () => {
      const workflowId = `task-${id}`;
      const apiLine = lines.find(
        (l) => l.correlationId === correlationId && l.req?.method === 'POST' && l.route === '/api/v1/tasks',
      );
      expect(apiLine, 'the API logged the POST with the correlation id').toMatchObject({
        msg: 'request completed',
        res: { statusCode: 202 },
      });
      expect(apiLine?.req?.headers, 'request headers (keys, tokens) are never logged').toBeUndefined();
      expect(JSON.stringify(lines)).not.toContain(api.key);

      // The last activity lines arrive with the final event, which the task's end already waited for.
      await eventually(() => lines.some((l) => l.msg === 'task event recorded' && l.workflowId === workflowId), {
        what: 'the task.completed log line',
      });
      const activityLines = lines.filter((l) => l.workflowId === workflowId && l.activityType);
      for (const line of activityLines) expect(line.correlationId, `${line.msg}`).toBe(correlationId);
      const steps = new Set(activityLines.map((l) => l.msg));
      for (const msg of [
        'task planned',
        'task risk assessed',
        'judge verdict',
        'council verdict recorded',
        'workspace prepared',
        'step applied',
        'gate evaluated',
        'task event recorded',
      ]) {
        expect(steps, `an activity logged "${msg}" with the correlation id`).toContain(msg);
      }
      const activityTypes = new Set(activityLines.map((l) => l.activityType));
      expect([...activityTypes]).toEqual(
        expect.arrayContaining(['planTask', 'assessTaskRisk', 'runJudge', 'recordVerdict', 'applyStep', 'runGate']),
      );
    });

    it('when the API is scraped, then request metrics are by route template, method and status class', async () => {
      await api.fetch(`/api/v1/tasks/${id}`);
      const res = await fetch(`${api.url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await res.text();
      const samples = parseExposition(text);
      const started = { method: 'POST', route: '/api/v1/tasks', status_class: '2xx' };
      expect(total(samples, 'agent_agency_requests_total', started)).toBeGreaterThanOrEqual(1);
      expect(total(samples, 'agent_agency_request_duration_seconds_count', started)).toBeGreaterThanOrEqual(1);
      const sum = total(samples, 'agent_agency_request_duration_seconds_sum', started);
      expect(sum).toBeGreaterThan(0);
      expect(sum).toBeLessThan(60);
      expect(
        total(samples, 'agent_agency_requests_total', { method: 'GET', route: '/api/v1/tasks/:id' }),
      ).toBeGreaterThanOrEqual(1);
      expect(text, 'no raw ids in labels').not.toContain(id);
      expect(total(samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
      expect(total(samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    });

    it('when the worker endpoint is scraped, then council, task, risk and audit metrics and the SDK’s are there', async () => {
      const res = await fetch(workerMetrics.url);
      expect(res.status).toBe(200);
      const text = await res.text();
      const samples = parseExposition(text);

      for (const phase of ['plan', 'result']) {
        expect(
          total(samples, 'agent_agency_council_reviews_total', { phase, decision: 'accept' }),
        ).toBeGreaterThanOrEqual(1);
        expect(total(samples, 'agent_agency_council_consensus_total', { phase })).toBeGreaterThanOrEqual(1);
        const count = total(samples, 'agent_agency_council_decision_seconds_count', { phase });
        const seconds = total(samples, 'agent_agency_council_decision_seconds_sum', { phase });
        expect(count).toBeGreaterThanOrEqual(1);
        expect(seconds / count).toBeGreaterThan(0);
        expect(seconds / count).toBeLessThan(60);
      }
      for (const judge of ['constitutional', 'technical', 'quality', 'integration']) {
        expect(
          total(samples, 'agent_agency_judge_latency_seconds_count', { judge, phase: 'plan' }),
        ).toBeGreaterThanOrEqual(1);
        expect(total(samples, 'agent_agency_judge_verdicts_total', { judge })).toBeGreaterThanOrEqual(2);
      }
      expect(total(samples, 'agent_agency_tasks_completed_total', { status: 'completed' })).toBeGreaterThanOrEqual(1);
      const risks = total(samples, 'agent_agency_risk_score_count');
      expect(risks).toBeGreaterThanOrEqual(1);
      expect(total(samples, 'agent_agency_risk_score_sum') / risks).toBeGreaterThanOrEqual(0);
      expect(total(samples, 'agent_agency_risk_score_sum') / risks).toBeLessThanOrEqual(1);
      for (const action of ['task.started', 'council.verdict', 'step.applied', 'task.completed']) {
        expect(total(samples, 'agent_agency_audit_events_total', { action }), action).toBeGreaterThanOrEqual(1);
      }
      expect(total(samples, 'process_resident_memory_bytes')).toBeGreaterThan(0);

      // The Temporal SDK's metrics, merged in from its exporter.
      expect(text).not.toContain('Temporal SDK metrics unavailable');
      const sdkNames = new Set(samples.filter((s) => s.name.startsWith('temporal_')).map((s) => s.name));
      // What deploy/monitoring relies on (test/unit/monitoring.test.ts) is what a real worker exports, labels too.
      for (const [name, sdk] of Object.entries(TEMPORAL_SDK_METRICS).filter(([, m]) => !m.onFailure)) {
        const series = samples.filter((s) => s.name === (sdk.histogram ? `${name}_bucket` : name));
        expect(series.length, name).toBeGreaterThan(0);
        for (const label of sdk.labels)
          expect(
            series.some((s) => label in s.labels),
            `${name} {${label}}`,
          ).toBe(true);
      }
      expect(sdkNames.size).toBeGreaterThan(10);
      expect(total(samples, 'temporal_worker_task_slots_available', { worker_type: 'ActivityWorker' })).toBeGreaterThan(
        0,
      );
    });
  });

  it('when an anonymous client asks, then the OpenAPI document (3.x) and the worker 404 answer', async () => {
    const res = await fetch(`${api.url}${OPENAPI_PATH}`);
    expect(res.status).toBe(200);
    const doc = await json<{ openapi: string; paths: Record<string, unknown> }>(res);
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/v1/tasks', '/api/v1/tasks/{id}', '/api/v1/council/review', '/api/v1/waivers']),
    );
    expect((await fetch(workerMetrics.url.replace(/\/metrics$/, '/other'))).status).toBe(404);
  });

  it('when Temporal becomes unreachable, then task routes answer 503 with Retry-After, and recover once it is back', async () => {
    const [host = '127.0.0.1', port = '7233'] = config.TEMPORAL_ADDRESS.split(':');
    const proxy = await startCuttableProxy({ host, port: Number(port) });
    const behind = await startApi(testConfig({ TEMPORAL_ADDRESS: `127.0.0.1:${proxy.port}` }), { log });
    const service = `temporal:127.0.0.1:${proxy.port}`;
    const breakerState = async (): Promise<string | undefined> =>
      parseExposition(await (await fetch(`${behind.url}/metrics`)).text()).find(
        (s) => s.name === 'agent_agency_circuit_breaker_state' && s.labels.service === service && s.value === 1,
      )?.labels.state;
    try {
      expect((await behind.fetch('/api/v1/tasks')).status).toBe(200);
      expect(TEMPORAL_PATHS).toContain('/api/v1/tasks');

      await proxy.cut();
      // The first request waits out the Temporal client's own retries, then opens the breaker.
      const first = await behind.fetch('/api/v1/tasks');
      expect(first.status).toBe(503);
      expect(first.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect(Number(first.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(await json(first)).toMatchObject({ status: 503, dependency: 'temporal' });
      expect(await breakerState()).toBe('open');

      // While open: at once, without calling Temporal.
      const startedAt = Date.now();
      const fast = await behind.fetch('/api/v1/council/sessions');
      expect(fast.status).toBe(503);
      expect(Date.now() - startedAt).toBeLessThan(1_000);
      const retryAfter = Number(fast.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(5);
      // Routes that do not need Temporal keep working.
      expect((await behind.fetch('/api/v1/waivers')).status).toBe(200);

      await proxy.open();
      const back = await eventually(
        async () => {
          const res = await behind.fetch('/api/v1/tasks');
          return res.status === 200 ? res : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 500, what: 'the task routes to answer again' },
      );
      expect(back.status).toBe(200);
      expect(await breakerState()).toBe('closed');
      const samples = parseExposition(await (await fetch(`${behind.url}/metrics`)).text());
      expect(
        total(samples, 'agent_agency_requests_total', { route: '/api/v1/council/*', status_class: '5xx' }),
      ).toBeGreaterThanOrEqual(1);
      expect(
        total(samples, 'agent_agency_error_recovery_attempts', { service, outcome: 'recovered' }),
      ).toBeGreaterThanOrEqual(1);
    } finally {
      await behind.stop().catch(() => undefined);
      await proxy.cut();
    }
  });
});
