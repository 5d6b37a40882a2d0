/**
 * Circuit breakers (common/circuit-breaker.ts): the state machine on a fake clock, then the real OpenAI-compatible
 * client against a failing loopback server (test/helpers/scripted-llm.ts): it opens after consecutive retryable
 * failures, fails fast while open (a retryable activity failure whose next retry waits out the cool-down), half-opens
 * and closes when the server recovers, and a 401 never opens it. The state metric follows.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPlanningActivities } from '../../activities/planning/index.js';
import { toActivityFailure } from '../../activities/planning/model-errors.js';
import { OpenAICompatibleModel, type ModelRequest } from '../../activities/planning/providers.js';
import {
  CircuitBreaker,
  CircuitOpenError,
  circuitBreakerFor,
  serviceOfUrl,
  type BreakerTicket,
} from '../../common/circuit-breaker.js';
import { loadConfig } from '../../common/config.js';
import type { Db } from '../../common/db.js';
import { registry } from '../../common/metrics.js';
import type { WorkingSpec } from '../../workflows/task/spec.js';
import { freePort } from '../helpers/ports.js';
import { errorReply, startScriptedLlm, textReply, type ScriptedLlm } from '../helpers/scripted-llm.js';

const REQUEST: ModelRequest = { system: 'terse', messages: [{ role: 'user', content: 'hello' }] };

async function metricValue(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const metric = await registry.getSingleMetric(name)?.get();
  return metric?.values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value))?.value;
}

/** The breaker's state as the metric reports it: the one state whose series is 1. */
async function metricState(service: string): Promise<string | undefined> {
  const metric = await registry.getSingleMetric('agent_agency_circuit_breaker_state')?.get();
  const on = metric?.values.filter((v) => v.labels.service === service && v.value === 1) ?? [];
  expect(on.length, `exactly one state is 1 for ${service}`).toBeLessThanOrEqual(1);
  return on[0]?.labels.state as string | undefined;
}

/** Polls until the condition holds (the cool-down is real time here: the client has no fake clock). */
async function eventually(fn: () => Promise<boolean>, { what = 'condition', intervalMs = 50, timeoutMs = 5_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('CircuitBreaker (fake clock)', () => {
  let now = 0;
  const make = (failureThreshold = 3, coolDownMs = 1_000) =>
    new CircuitBreaker(`unit-${Math.random()}`, {
      failureThreshold,
      coolDownMs,
      isFailure: (err) => (err as Error).message !== 'answered',
      now: () => now,
    });
  const fail = (b: CircuitBreaker) => b.failed(b.admit());
  beforeEach(() => {
    now = 1_000_000;
  });

  it('when failures are consecutive, then it opens at the threshold and not before', () => {
    const b = make(3);
    fail(b);
    fail(b);
    expect(b.state).toBe('closed');
    fail(b);
    expect(b.state).toBe('open');
  });

  it('when an answer comes between failures, then the count starts again', async () => {
    const b = make(3);
    fail(b);
    fail(b);
    await expect(b.run(() => Promise.reject(new Error('answered')))).rejects.toThrow('answered');
    expect(b.consecutiveFailures).toBe(0);
    fail(b);
    fail(b);
    expect(b.state).toBe('closed');
  });

  it('when open, then calls fail fast with the rest of the cool-down, and the function is not called', async () => {
    const b = make(1, 1_000);
    fail(b);
    now += 400;
    let called = false;
    const err = await rejection(b.run(() => Promise.resolve((called = true))));
    expect(err).toBeInstanceOf(CircuitOpenError);
    expect((err as CircuitOpenError).retryAfterMs).toBe(600);
    expect(called).toBe(false);
  });

  it('when the cool-down has passed, then one probe goes through; its success closes the breaker', () => {
    const b = make(1, 1_000);
    fail(b);
    now += 1_000;
    expect(b.state).toBe('half_open');
    const probe = b.admit();
    expect(probe.probe).toBe(true);
    expect(() => b.admit(), 'a second call while the probe is out').toThrow(CircuitOpenError);
    b.succeeded(probe);
    expect(b.state).toBe('closed');
    expect(b.admit().probe).toBe(false);
  });

  it('when the probe fails, then the breaker opens for another full cool-down', () => {
    const b = make(1, 1_000);
    fail(b);
    now += 1_500;
    b.failed(b.admit());
    expect(b.state).toBe('open');
    expect(b.retryAfterMs()).toBe(1_000);
  });

  it('when a call admitted before the breaker opened answers late, then it does not close the breaker', () => {
    const b = make(2, 1_000);
    const early: BreakerTicket = b.admit();
    fail(b);
    fail(b);
    b.succeeded(early);
    expect(b.state).toBe('open');
  });

  it('when a probe never answers, then after a cool-down another probe may go', () => {
    const b = make(1, 1_000);
    fail(b);
    now += 1_000;
    b.admit();
    now += 1_000;
    expect(b.admit().probe).toBe(true);
  });

  it('when a half-open probe is abandoned (a neutral error), then the state stays and the next call probes', async () => {
    const b = new CircuitBreaker(`unit-${Math.random()}`, {
      failureThreshold: 1,
      coolDownMs: 1_000,
      isNeutral: (err) => (err as Error).name === 'AbortError',
      now: () => now,
    });
    fail(b);
    now += 1_000;
    const aborted = Object.assign(new Error('aborted'), { name: 'AbortError' });
    await expect(b.run(() => Promise.reject(aborted))).rejects.toBe(aborted);
    expect(b.state).toBe('half_open');
    expect(b.admit().probe).toBe(true);
  });

  it('is one breaker per service in a process', () => {
    const options = { failureThreshold: 1, coolDownMs: 10 };
    expect(circuitBreakerFor('unit-shared', options)).toBe(circuitBreakerFor('unit-shared', options));
    expect(serviceOfUrl('openai', 'http://user:secret@127.0.0.1:1234/v1/?q=1')).toBe('openai:http://127.0.0.1:1234/v1');
  });
});

describe('the OpenAI-compatible client behind its breaker, against a loopback server', () => {
  let llm: ScriptedLlm;
  let failing: number | undefined;
  const COOL_DOWN_MS = 300;
  const model = (url = llm.url) =>
    new OpenAICompatibleModel({
      model: 'scripted-model',
      apiKey: 'test-key',
      baseURL: url,
      timeoutMs: 5_000,
      price: { input: 0, output: 0 },
      breaker: { failureThreshold: 3, coolDownMs: COOL_DOWN_MS },
    });

  beforeEach(async () => {
    failing = 503;
    llm = await startScriptedLlm(() => (failing ? errorReply(failing) : textReply('hello')));
  });
  afterEach(async () => {
    await llm.close();
  });

  it('when the server fails 3 times, then the breaker opens, fails fast, half-opens and closes once it recovers', async () => {
    const m = model();
    const service = serviceOfUrl('openai', llm.url);
    const recoveredBefore =
      (await metricValue('agent_agency_error_recovery_attempts', { service, outcome: 'recovered' })) ?? 0;
    for (let i = 0; i < 3; i++) await expect(m.complete(REQUEST)).rejects.toMatchObject({ status: 503 });
    expect(llm.requests).toHaveLength(3);
    expect(await metricState(service)).toBe('open');

    // Open: no request reaches the server; the activity failure is retryable and waits out the cool-down.
    const err = await rejection(m.complete(REQUEST));
    expect(err).toBeInstanceOf(CircuitOpenError);
    expect(llm.requests).toHaveLength(3);
    const failure = toActivityFailure(err);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: 'ModelCircuitOpen', nonRetryable: false });
    expect(failure.nextRetryDelay).toBeGreaterThan(0);
    expect(Number(failure.nextRetryDelay)).toBeLessThanOrEqual(COOL_DOWN_MS);
    expect(await metricValue('agent_agency_circuit_breaker_rejections_total', { service })).toBeGreaterThanOrEqual(1);

    // Half-open after the cool-down; the server has recovered: the probe succeeds and closes the breaker.
    failing = undefined;
    await eventually(async () => (await metricState(service)) === 'half_open', { what: 'half-open', intervalMs: 50 });
    await expect(m.complete(REQUEST)).resolves.toMatchObject({ text: 'hello' });
    expect(await metricState(service)).toBe('closed');
    expect(await metricValue('agent_agency_error_recovery_attempts', { service, outcome: 'recovered' })).toBe(
      recoveredBefore + 1,
    );
    await expect(m.complete(REQUEST)).resolves.toMatchObject({ text: 'hello' });
  });

  it('when the half-open probe fails, then the breaker opens again', async () => {
    const m = model();
    const service = serviceOfUrl('openai', llm.url);
    for (let i = 0; i < 3; i++) await expect(m.complete(REQUEST)).rejects.toMatchObject({ status: 503 });
    await eventually(async () => (await metricState(service)) === 'half_open', { what: 'half-open', intervalMs: 50 });
    await expect(m.complete(REQUEST)).rejects.toMatchObject({ status: 503 });
    expect(llm.requests).toHaveLength(4);
    expect(await metricState(service)).toBe('open');
    expect(
      await metricValue('agent_agency_error_recovery_attempts', { service, outcome: 'failed' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('when the server answers 401 again and again, then the breaker stays closed (a bad key is not an outage)', async () => {
    failing = 401;
    const m = model();
    for (let i = 0; i < 6; i++) await expect(m.complete(REQUEST)).rejects.toMatchObject({ status: 401 });
    expect(llm.requests).toHaveLength(6);
    expect(await metricState(serviceOfUrl('openai', llm.url))).toBe('closed');
  });

  it('when nothing listens on the port, then refused connections open the breaker', async () => {
    const url = `http://127.0.0.1:${await freePort()}/v1`;
    const m = model(url);
    for (let i = 0; i < 3; i++) await expect(m.complete(REQUEST)).rejects.toThrow();
    await expect(m.complete(REQUEST)).rejects.toBeInstanceOf(CircuitOpenError);
    expect(await metricState(serviceOfUrl('openai', url))).toBe('open');
  });

  it('when a planning activity calls a model whose breaker is open, then it fails fast and retryably', async () => {
    const m = model();
    for (let i = 0; i < 3; i++) await expect(m.complete(REQUEST)).rejects.toMatchObject({ status: 503 });
    const activities = createPlanningActivities({ db: {} as Db, config: loadConfig({}), model: m });
    const task = { tenantId: 't', taskId: 'x', workflowId: 'task-x', executionKey: 'task-x/1', correlationId: 'c' };
    const err = await rejection(
      activities.nextAgentAction(task, {
        title: 'Fix it',
        description: '',
        spec: {} as WorkingSpec,
        goal: [],
        history: [],
      }),
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'ModelCircuitOpen', nonRetryable: false });
    expect((err as ApplicationFailure).nextRetryDelay).toBeGreaterThan(0);
    expect(llm.requests).toHaveLength(3);
  });
});
