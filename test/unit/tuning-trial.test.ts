/**
 * The tuning trial activity (activities/inference/tuning/trial.ts) with real ONNX Runtime sessions in worker threads
 * (M1's OrtThread) behind M2's dynamic batcher, on an MLP built with M1's builder: figures with their spread, a
 * deadline that stops a candidate too slow to finish, candidate failures reported as results, and the per-process
 * cap on concurrent trials.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { buildMlpOnnx, randomMlp } from '../../common/onnx/builder.js';
import { createTrialActivities, TrialSlots, type TrialInput } from '../../activities/inference/tuning/trial.js';
import {
  GuardrailSchema,
  MeasurementSchema,
  WorkloadSpecSchema,
  type Candidate,
  type TrialResult,
} from '../../workflows/tuning/definitions.js';

const bytes = buildMlpOnnx(randomMlp([64, 128, 10], 7));
const artifacts = () => Promise.resolve({ bytes });
const baseline: Candidate = { session: {}, serving: { maxBatchSize: 1, maxWaitMs: 0, concurrency: 1 } };

function input(over: Partial<TrialInput> = {}): TrialInput {
  return {
    tenantId: 't',
    model: 'mlp',
    version: '1.0.0',
    candidate: baseline,
    baseline,
    workload: WorkloadSpecSchema.parse({ concurrency: 8, requests: 200 }),
    measurement: MeasurementSchema.parse({ warmupRequests: 20, minRepetitions: 2, maxRepetitions: 4, maxSpread: 0.5 }),
    guardrail: GuardrailSchema.parse({ probeRows: 16 }),
    ...over,
  };
}

describe('a tuning trial', () => {
  const slots = new TrialSlots(1);
  const acts = createTrialActivities({ artifacts, slots, heartbeatMs: 50 });
  const env = new MockActivityEnvironment();
  const beats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => beats.push(d));
  const trial = (e: MockActivityEnvironment, i: TrialInput) =>
    e.run<[TrialInput], TrialResult, (x: TrialInput) => Promise<TrialResult>>((x) => acts.runTuningTrial(x), i);

  it('when a candidate batches, then it is measured with medians and spreads, passes the guardrail and heartbeats', async () => {
    const candidate: Candidate = {
      session: { intraOpNumThreads: 1, executionMode: 'sequential' },
      serving: { maxBatchSize: 16, maxWaitMs: 1, concurrency: 1 },
    };
    const r = await trial(env, input({ candidate }));
    expect(r.status).toBe('ok');
    expect(r.guardrail).toMatchObject({ passed: true, agreement: 1 });
    expect(r.guardrail!.maxAbsDiff).toBeLessThanOrEqual(1e-4);
    expect(r.figures!.repetitions).toBeGreaterThanOrEqual(2);
    expect(r.figures!.throughput).toBeGreaterThan(0);
    expect(r.figures!.p95Ms).toBeGreaterThan(0);
    expect(Number.isFinite(r.figures!.throughputSpread)).toBe(true);
    expect(beats.length).toBeGreaterThan(0);
  });

  it('when a candidate cannot finish within the trial deadline, then it stops there and reports a timeout', async () => {
    const started = Date.now();
    const r = await trial(
      env,
      input({
        workload: WorkloadSpecSchema.parse({ concurrency: 1, requests: 100_000, mix: [{ rows: 64, weight: 1 }] }),
        measurement: MeasurementSchema.parse({ warmupRequests: 0, maxRepetitions: 3, trialTimeoutMs: 1500 }),
      }),
    );
    expect(r.status).toBe('timeout');
    expect(r.figures).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('when ONNX Runtime refuses the candidate, then the trial reports it as failed (a result, not a retry)', async () => {
    const candidate: Candidate = {
      session: { intraOpNumThreads: 2, configEntries: { 'session.intra_op_thread_affinities': 'not-a-core-list' } },
      serving: baseline.serving,
    };
    const r = await trial(env, input({ candidate }));
    expect(r.status).toBe('failed');
    expect(r.error).toBeTruthy();
  });

  it('when two trials start at once in one process, then the second waits for the slot', async () => {
    let most = 0;
    const watch = setInterval(() => (most = Math.max(most, slots.running)), 5);
    const runs = await Promise.all([
      trial(new MockActivityEnvironment(), input()),
      trial(new MockActivityEnvironment(), input()),
    ]);
    clearInterval(watch);
    expect(runs.map((r) => r.status)).toEqual(['ok', 'ok']);
    expect(most).toBe(1);
    expect(slots.running).toBe(0);
  });

  it('when a candidate changes the outputs, then the guardrail rejects it and its remediation names the setting', async () => {
    // GELU in its exact erf form; ONNX Runtime's optimization.enable_gelu_approximation swaps in the tanh approximation.
    const gelu = buildMlpOnnx(randomMlp([64, 128, 10], 7, { hidden: 'gelu', output: 'logits' }));
    const geluActs = createTrialActivities({
      artifacts: () => Promise.resolve({ bytes: gelu }),
      slots,
      heartbeatMs: 50,
    });
    const candidate: Candidate = {
      session: { intraOpNumThreads: 1, configEntries: { 'optimization.enable_gelu_approximation': '1' } },
      serving: { maxBatchSize: 8, maxWaitMs: 1, concurrency: 1 },
    };
    const r = await new MockActivityEnvironment().run<
      [TrialInput],
      TrialResult,
      (x: TrialInput) => Promise<TrialResult>
    >(
      (i) => geluActs.runTuningTrial(i),
      input({ model: 'gelu', candidate, guardrail: GuardrailSchema.parse({ probeRows: 16, tolerance: 1e-5 }) }),
    );
    expect(r.status).toBe('rejected');
    expect(r.figures).toBeUndefined();
    expect(r.guardrail!.passed).toBe(false);
    expect(r.guardrail!.maxAbsDiff).toBeGreaterThan(1e-5);
    const plan = r.guardrail!.remediation!;
    expect(plan.culprits).toEqual(['session.config.optimization.enable_gelu_approximation']);
    expect(plan.changes.map((c) => c.setting).sort()).toEqual([
      'serving.maxBatchSize',
      'serving.maxWaitMs',
      'session.config.optimization.enable_gelu_approximation',
      'session.intraOpNumThreads',
    ]);
    for (const c of plan.changes.filter((c) => !plan.culprits.includes(c.setting)))
      expect(c.maxAbsDiffWhenReverted).toBeGreaterThan(1e-5);
    expect(plan.advice.join(' ')).toMatch(/enable_gelu_approximation/);
  });
});
