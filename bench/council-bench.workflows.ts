/**
 * Bench-only workflows (bundled by the bench worker, never by the platform's workers): the four council judges as
 * slowJudge activities, all at once with Promise.all (as councilDeliberationWorkflow runs them) or one after another.
 * Deterministic: the latencies come in the input.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { BenchActivities, BenchVerdict } from './council-bench.activities.js';

export const BENCH_JUDGES = ['constitutional', 'technical', 'quality', 'integration'] as const;

const { slowJudge } = proxyActivities<BenchActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 1 },
});

/** The four judges in parallel, as the real council does. `latenciesMs[i]` is judge i's latency. */
export async function councilParallelBench(latenciesMs: number[]): Promise<BenchVerdict[]> {
  return Promise.all(BENCH_JUDGES.map((judgeId, i) => slowJudge(judgeId, latenciesMs[i] ?? 0)));
}

/** The four judges one after another. */
export async function councilSequentialBench(latenciesMs: number[]): Promise<BenchVerdict[]> {
  const verdicts: BenchVerdict[] = [];
  for (const [i, judgeId] of BENCH_JUDGES.entries()) verdicts.push(await slowJudge(judgeId, latenciesMs[i] ?? 0));
  return verdicts;
}
