/**
 * The bench's judge activity: waits as long as a model judge would (the given latency), then returns a verdict.
 * It does no work, so the council bench measures orchestration (parallel versus sequential), not judging.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface BenchVerdict {
  judgeId: string;
  verdict: 'pass';
  latencyMs: number;
  /** How long the activity actually slept (timer slack under load shows here). */
  sleptMs: number;
}

export function createBenchActivities() {
  return {
    async slowJudge(judgeId: string, latencyMs: number): Promise<BenchVerdict> {
      const started = performance.now();
      await sleep(latencyMs);
      return { judgeId, verdict: 'pass', latencyMs, sleptMs: Math.round(performance.now() - started) };
    },
  };
}

export type BenchActivities = ReturnType<typeof createBenchActivities>;
