/**
 * Static checks of deploy/monitoring: every metric a Prometheus rule or a Grafana panel queries is one the code
 * registers (common/metrics.ts, imported here), a Temporal SDK metric listed in workers/metrics-server.ts, a
 * recording rule of the rule file, or a Node process metric of prom-client's defaults — with labels that metric has.
 * A renamed metric or a mistyped label fails here instead of leaving an alert that never fires.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Histogram } from 'prom-client';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import '../../common/circuit-breaker.js';
import { PROJECT_ROOT } from '../../common/config.js';
import { enableDefaultMetrics, registry } from '../../common/metrics.js';
import { TEMPORAL_SDK_METRICS } from '../../workers/metrics-server.js';

const DIR = path.join(PROJECT_ROOT, 'deploy', 'monitoring');

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; refId: string }[];
}

const rules = (
  YAML.parse(readFileSync(path.join(DIR, 'prometheus-rules.yaml'), 'utf8')) as {
    groups: { name: string; rules: Rule[] }[];
  }
).groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(readFileSync(path.join(DIR, 'grafana-dashboard.json'), 'utf8')) as {
  uid: string;
  title: string;
  panels: Panel[];
};
const panelQueries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: p.title, expr: t.expr })));
const ruleQueries = rules.map((r) => ({ where: r.alert ?? r.record ?? '?', expr: r.expr }));

/** Labels every scraped series has, from the scrape itself. */
const TARGET_LABELS = ['job', 'instance'];

/** What a metric name (as written in a query) can be, with the labels it carries. */
function knownMetrics(): Map<string, Set<string>> {
  enableDefaultMetrics();
  const known = new Map<string, Set<string>>();
  const add = (name: string, labels: readonly string[], histogram: boolean): void => {
    const all = new Set([...labels, ...TARGET_LABELS]);
    known.set(name, all);
    if (histogram) {
      known.set(`${name}_bucket`, new Set([...all, 'le']));
      known.set(`${name}_sum`, all);
      known.set(`${name}_count`, all);
    }
  };
  for (const metric of registry.getMetricsAsArray()) {
    const { name, labelNames = [] } = metric as unknown as { name: string; labelNames?: string[] };
    add(name, labelNames, metric instanceof Histogram);
  }
  for (const [name, sdk] of Object.entries(TEMPORAL_SDK_METRICS)) add(name, sdk.labels, sdk.histogram ?? false);
  for (const rule of rules.filter((r) => r.record)) add(rule.record!, ['phase'], false);
  return known;
}

const known = knownMetrics();

/** Metric names in a PromQL expression: identifiers with our prefixes, or recording-rule names (with a colon). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b((?:agent_agency|temporal|process|nodejs)_[a-zA-Z0-9_]+|[a-z_]+:[a-z0-9_:]+)\b/g)].map(
    (m) => m[1]!,
  );
}

/** `name{a="…", b=~"…"}` → label names per occurrence. */
function selectorsIn(expr: string): { metric: string; labels: string[] }[] {
  return [...expr.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)].map((m) => ({
    metric: m[1]!,
    labels: [...m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!),
  }));
}

/** Labels of `by (…)` / `without (…)` clauses. */
function groupingIn(expr: string): string[] {
  return [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) =>
    m[1]!
      .split(',')
      .map((l) => l.trim())
      .filter(Boolean),
  );
}

describe('deploy/monitoring/prometheus-rules.yaml', () => {
  it('has the documented alerts (HighErrorRate, CircuitBreakerOpen, HighRiskTask) and the worker ones', () => {
    const alerts = rules.filter((r) => r.alert).map((r) => r.alert);
    expect(alerts).toEqual(
      expect.arrayContaining([
        'HighErrorRate',
        'CircuitBreakerOpen',
        'HighRiskTask',
        'WorkerTaskSlotsExhausted',
        'ActivityScheduleToStartLatencyHigh',
      ]),
    );
    expect(new Set(alerts).size, 'alert names are unique').toBe(alerts.length);
  });

  it('every alert has a severity, a summary and, when it waits, a duration Prometheus reads', () => {
    for (const rule of rules.filter((r) => r.alert)) {
      expect(['critical', 'warning', 'info'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toEqual(expect.any(String));
      if (rule.for !== undefined) expect(rule.for, rule.alert).toMatch(/^\d+[smhd]$/);
    }
  });

  it('every rule is a record or an alert with an expression whose brackets balance', () => {
    for (const rule of rules) {
      expect(Boolean(rule.record) !== Boolean(rule.alert), JSON.stringify(rule)).toBe(true);
      for (const [open, close] of [
        ['(', ')'],
        ['{', '}'],
        ['[', ']'],
      ] as const) {
        expect(rule.expr.split(open).length, `${rule.alert ?? rule.record} ${open}${close}`).toBe(
          rule.expr.split(close).length,
        );
      }
      if (rule.record) expect(rule.record).toMatch(/^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/);
    }
  });
});

describe('deploy/monitoring/grafana-dashboard.json', () => {
  it('is a dashboard with a stable uid, unique panel ids, and panels inside the 24-column grid', () => {
    expect(dashboard.uid).toBe('agent-agency');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      if (p.type !== 'row') expect(p.targets?.length, p.title).toBeGreaterThan(0);
    }
  });

  it('shows every metric the code registers under agent_agency_', () => {
    const used = new Set(panelQueries.flatMap((q) => metricsIn(q.expr)));
    const ours = registry
      .getMetricsAsArray()
      .map((m) => (m as unknown as { name: string }).name)
      .filter((n) => n.startsWith('agent_agency_'));
    expect(ours.length).toBeGreaterThanOrEqual(12);
    const missing = ours.filter((n) => ![n, `${n}_bucket`, `${n}_count`, `${n}_sum`].some((v) => used.has(v)));
    expect(missing).toEqual([]);
  });
});

describe('metric names and labels used in the rules and the dashboard', () => {
  const queries = [...ruleQueries, ...panelQueries];

  it('the product metric names are all registered', () => {
    for (const name of [
      'agent_agency_requests_total',
      'agent_agency_request_duration_seconds',
      'agent_agency_council_reviews_total',
      'agent_agency_tasks_completed_total',
      'agent_agency_circuit_breaker_state',
      'agent_agency_error_recovery_attempts',
      'agent_agency_audit_events_total',
      'agent_agency_risk_score',
    ]) {
      expect(registry.getSingleMetric(name), name).toBeDefined();
    }
  });

  it('when a query names a metric, then the code registers it or it is a listed SDK metric or recording rule', () => {
    const unknown = queries.flatMap((q) =>
      metricsIn(q.expr)
        .filter((m) => !known.has(m))
        .map((m) => `${q.where}: ${m}`),
    );
    expect(queries.length).toBeGreaterThan(20);
    expect(unknown).toEqual([]);
  });

  it('when a query selects or groups by a label, then a metric of that query has it', () => {
    const problems: string[] = [];
    for (const q of queries) {
      for (const s of selectorsIn(q.expr).filter((s) => known.has(s.metric))) {
        for (const label of s.labels) {
          if (!known.get(s.metric)!.has(label)) problems.push(`${q.where}: ${s.metric} has no label ${label}`);
        }
      }
      const labels = new Set(metricsIn(q.expr).flatMap((m) => [...(known.get(m) ?? [])]));
      for (const label of groupingIn(q.expr)) {
        if (!labels.has(label)) problems.push(`${q.where}: no metric of the query has the label ${label}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
