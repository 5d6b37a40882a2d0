/**
 * Council measurements.
 *  - Bench: councilParallelBench versus councilSequentialBench (bench/council-bench.workflows.ts) with the same seeded
 *    judge latencies per iteration; the order alternates between iterations so neither always runs on a warmer system.
 *  - Real: councilDeliberationWorkflow itself, through POST /api/v1/council/review with the sample's fix as the diff,
 *    offline deterministic judges on the platform's council pool.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { councilParallelBench, councilSequentialBench } from './council-bench.workflows.js';
import { seededRandom } from './stats.js';

export interface CouncilBenchIteration {
  latenciesMs: number[];
  parallelMs: number;
  sequentialMs: number;
  order: 'parallel-first' | 'sequential-first';
}

export interface CouncilBenchResult {
  seed: number;
  latencyRangeMs: [number, number];
  warmup: { parallelMs: number; sequentialMs: number };
  iterations: CouncilBenchIteration[];
}

/** Fixed judge latencies: `runs` rows of four, uniform in [lo, hi] ms, from the seed. */
export function judgeLatencies(seed: number, runs: number, lo: number, hi: number): number[][] {
  const rand = seededRandom(seed);
  return Array.from({ length: runs }, () => Array.from({ length: 4 }, () => Math.round(lo + rand() * (hi - lo))));
}

export async function runCouncilBench(
  client: Client,
  taskQueue: string,
  opts: { runs: number; seed: number; lo: number; hi: number },
): Promise<CouncilBenchResult> {
  const once = async (which: 'parallel' | 'sequential', latenciesMs: number[]): Promise<number> => {
    const t0 = performance.now();
    await client.workflow.execute(which === 'parallel' ? councilParallelBench : councilSequentialBench, {
      args: [latenciesMs],
      taskQueue,
      workflowId: `bench-council-${which}-${randomUUID()}`,
    });
    return performance.now() - t0;
  };
  // One untimed pair first: the bench worker's first workflow task loads the bundle into a fresh isolate.
  const warmLatencies = [300, 300, 300, 300];
  const warmup = {
    parallelMs: await once('parallel', warmLatencies),
    sequentialMs: await once('sequential', warmLatencies),
  };
  const iterations: CouncilBenchIteration[] = [];
  for (const [i, latenciesMs] of judgeLatencies(opts.seed, opts.runs, opts.lo, opts.hi).entries()) {
    if (i % 2 === 0) {
      const parallelMs = await once('parallel', latenciesMs);
      const sequentialMs = await once('sequential', latenciesMs);
      iterations.push({ latenciesMs, parallelMs, sequentialMs, order: 'parallel-first' });
    } else {
      const sequentialMs = await once('sequential', latenciesMs);
      const parallelMs = await once('parallel', latenciesMs);
      iterations.push({ latenciesMs, parallelMs, sequentialMs, order: 'sequential-first' });
    }
  }
  return { seed: opts.seed, latencyRangeMs: [opts.lo, opts.hi], warmup, iterations };
}

export interface RealCouncilRun {
  sessionId?: string;
  httpStatus: number;
  /** POST /api/v1/council/review, client side: the review is started (202), not awaited. */
  httpMs: number;
  /** The council workflow's own wall time: server close − start. */
  workflowMs?: number;
  outcome?: string;
  error?: string;
}

interface ReviewView {
  sessionId?: string;
  href?: string;
  detail?: string;
  status?: string;
  outcome?: { kind: string; record?: { verdict: { decision: string } }; reason?: string };
}

export async function runRealCouncil(
  apiUrl: string,
  client: Client,
  opts: { runs: number; diff: string; specYaml: string; apiKey: string },
): Promise<RealCouncilRun[]> {
  const runs: RealCouncilRun[] = [];
  const headers = { 'content-type': 'application/json', 'x-api-key': opts.apiKey };
  for (let i = 0; i < opts.runs; i++) {
    const t0 = performance.now();
    const res = await fetch(`${apiUrl}/api/v1/council/review`, {
      method: 'POST',
      headers,
      // The evidence a CI run would bring; without it the council rightly refuses to accept. The run number makes
      // each review's input (and so its id) distinct: the same input would return the first review's result.
      body: JSON.stringify({
        diff: opts.diff,
        spec: opts.specYaml,
        gates: [{ gate: 'tests', status: 'pass', reason: `bench run ${i + 1}; covers A1` }],
      }),
    });
    let body = (await res.json()) as ReviewView;
    const run: RealCouncilRun = { sessionId: body.sessionId, httpStatus: res.status, httpMs: performance.now() - t0 };
    if (res.status !== 202 || !body.sessionId || !body.href) {
      run.error = `POST /api/v1/council/review answered ${res.status}: ${body.detail ?? JSON.stringify(body)}`;
    } else {
      for (const deadline = Date.now() + 120_000; body.status !== 'decided' && body.status !== 'escalated';) {
        if (body.status === 'failed' || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 100));
        body = (await (await fetch(`${apiUrl}${body.href}`, { headers })).json()) as ReviewView;
      }
      const d = await client.workflow.getHandle(run.sessionId!).describe();
      if (d.closeTime) run.workflowMs = d.closeTime.getTime() - d.startTime.getTime();
      else run.error = `review ${run.sessionId} did not finish: ${body.status}`;
      run.outcome =
        body.outcome?.kind === 'final'
          ? `final:${body.outcome.record?.verdict.decision}`
          : `${body.outcome?.kind}: ${body.outcome?.reason}`;
    }
    runs.push(run);
  }
  return runs;
}
