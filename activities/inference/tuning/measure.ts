/**
 * Measuring a candidate on a workload: closed-loop clients (`concurrency` of them) each send a request of a size drawn
 * from the mix, wait for its answer through the candidate's batcher, and send the next, until a repetition's requests
 * are done. A repetition gives rows per second and the p95 of request latency; repetitions continue until the
 * throughput's spread ((max − min)/median) is at most `maxSpread` after `minRepetitions`, or `maxRepetitions` is hit.
 * The figures are the medians with their spreads. Input rows are seeded uniform values in [0, 1) (pixel-like).
 */
import type { Figures, Measurement, WorkloadSpec } from '../../../workflows/tuning/definitions.js';
import { createRng, type Rng } from './rng.js';
import type { CandidateSession } from './session.js';

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (pos - lo);
}

export function spread(values: readonly number[]): number {
  return values.length < 2 ? 0 : (Math.max(...values) - Math.min(...values)) / median(values);
}

export function seededRows(n: number, width: number, rng: Rng): Float32Array[] {
  return Array.from({ length: n }, () => Float32Array.from({ length: width }, () => rng.next()));
}

function drawSize(mix: WorkloadSpec['mix'], rng: Rng): number {
  const total = mix.reduce((s, m) => s + m.weight, 0);
  let r = rng.next() * total;
  for (const m of mix) if ((r -= m.weight) < 0) return m.rows;
  return mix[mix.length - 1]!.rows;
}

/** One closed-loop pass of `requests` requests; stops early (returning what it has) once `shouldStop()` is true. */
export async function runLoad(
  session: CandidateSession,
  workload: WorkloadSpec,
  requests: number,
  rng: Rng,
  shouldStop: () => boolean = () => false,
): Promise<{ rows: number; seconds: number; latenciesMs: number[] }> {
  // A pool of input rows, reused: generating fresh rows would measure the random generator.
  const pool = seededRows(256, session.width, rng);
  const sizes = Array.from({ length: requests }, () => drawSize(workload.mix, rng));
  const latenciesMs: number[] = [];
  let next = 0;
  let rows = 0;
  const started = performance.now();
  const client = async () => {
    while (next < sizes.length && !shouldStop()) {
      const size = sizes[next]!;
      const offset = next++ % pool.length;
      const input = Array.from({ length: size }, (_, i) => pool[(offset + i) % pool.length]!);
      const t0 = performance.now();
      await session.batcher.submit(input);
      latenciesMs.push(performance.now() - t0);
      rows += size;
    }
  };
  await Promise.all(Array.from({ length: workload.concurrency }, client));
  return { rows, seconds: (performance.now() - started) / 1000, latenciesMs };
}

export interface MeasureHooks {
  /** Called after each repetition (heartbeats). */
  onRepetition?: (n: number, figures: Figures) => void;
  shouldStop?: () => boolean;
}

export async function measure(
  session: CandidateSession,
  workload: WorkloadSpec,
  m: Measurement,
  hooks: MeasureHooks = {},
): Promise<Figures> {
  const rng = createRng(workload.seed);
  const stop = hooks.shouldStop ?? (() => false);
  if (m.warmupRequests > 0) await runLoad(session, workload, m.warmupRequests, rng, stop);
  const throughputs: number[] = [];
  const p95s: number[] = [];
  const figures = (): Figures => ({
    throughput: median(throughputs),
    throughputSpread: spread(throughputs),
    p95Ms: median(p95s),
    p95Spread: spread(p95s),
    repetitions: throughputs.length,
  });
  while (throughputs.length < m.maxRepetitions && !stop()) {
    const r = await runLoad(session, workload, workload.requests, rng, stop);
    if (stop() && r.latenciesMs.length < workload.requests) break; // an incomplete repetition is no figure
    throughputs.push(r.rows / r.seconds);
    p95s.push(quantile(r.latenciesMs, 0.95));
    hooks.onRepetition?.(throughputs.length, figures());
    if (throughputs.length >= m.minRepetitions && spread(throughputs) <= m.maxSpread) break;
  }
  return figures();
}
