/**
 * Per-version serving metrics (prom-client, the process registry of common/metrics.ts): requests by arm, route and
 * outcome; a latency histogram; labelled answers by correctness (the accuracy where labels come back); the canary
 * weight each process applies. Labels are the model and version names, never prediction ids.
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from '../../../common/metrics.js';

export const modelRequestsTotal = new Counter({
  name: 'agent_agency_model_requests_total',
  help: 'Predictions answered (or failed) by a model version, by arm (baseline|canary), route and outcome (ok|error)',
  labelNames: ['model', 'version', 'arm', 'route', 'outcome'] as const,
  registers: [registry],
});

export const modelLatencySeconds = new Histogram({
  name: 'agent_agency_model_latency_seconds',
  help: 'Seconds from a prediction request reaching the router to its answer (batching wait included)',
  labelNames: ['model', 'version'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  registers: [registry],
});

export const modelLabelledTotal = new Counter({
  name: 'agent_agency_model_labelled_total',
  help: 'Predictions whose label came back, by version and whether the prediction was correct (accuracy)',
  labelNames: ['model', 'version', 'correct'] as const,
  registers: [registry],
});

export const modelShadowTotal = new Counter({
  name: 'agent_agency_model_shadow_total',
  help: 'Mirrored (shadow) predictions by version and whether they agreed with the answer the caller got',
  labelNames: ['model', 'version', 'agrees'] as const,
  registers: [registry],
});

export const modelCanaryWeight = new Gauge({
  name: 'agent_agency_model_canary_weight',
  help: 'The canary weight (basis points) this serving process applies',
  labelNames: ['model'] as const,
  registers: [registry],
});
