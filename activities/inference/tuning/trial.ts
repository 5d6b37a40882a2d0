/**
 * The tuning trial, an activity on the inference pool (agency-inference): load the model version's ONNX bytes with the
 * candidate's session settings in a worker thread of its own, warm it, check the quality guardrail against the
 * baseline's outputs, then measure the workload through the candidate's dynamic batcher until the spread is small or
 * the repetition cap is hit (measure.ts). Returns the medians with their spreads, or why there are none.
 *
 * Not starving live serving:
 * - at most `TRIAL_SLOTS` trials (default 1) run at once per process (TrialSlots below): a second trial waits for the
 *   slot, heartbeating, so a pool of 4 activity slots always keeps 3 for serving-side activities, and live predictions
 *   (served by the serving host's own threads) compete with at most one trial's threads;
 * - the workflow defers each trial while the host is loaded or hot (workflows/scheduling/), counting the trial's own
 *   threads as its expected load;
 * - every trial has a deadline (`measurement.trialTimeoutMs`): past it the candidate's thread is terminated, which
 *   abandons a run in progress, and the trial reports `timeout` (a catastrophic candidate — parallel mode with too many
 *   threads on two cores — costs at most that long).
 * Idempotent: a trial only measures. One killed mid-run is retried from the start by Temporal (heartbeat timeout):
 * figures from half a run on another host are not comparable, so none are carried over.
 */
import { Context } from '@temporalio/activity';
import type {
  Candidate,
  Guardrail,
  Measurement,
  TrialResult,
  WorkloadSpec,
} from '../../../workflows/tuning/definitions.js';
import type { ArtifactSource } from '../serving/host.js';
import { checkGuardrail, probeOutputs } from './guardrail.js';
import { measure } from './measure.js';
import { openCandidate, type CandidateSession } from './session.js';

/** A counting semaphore: trials admitted at once in this process. */
export class TrialSlots {
  private active = 0;
  private waiters: (() => void)[] = [];
  constructor(readonly limit: number) {}

  async acquire(signal?: AbortSignal): Promise<() => void> {
    while (this.active >= this.limit) {
      await new Promise<void>((resolve, reject) => {
        this.waiters.push(resolve);
        signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
      });
    }
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.waiters.shift()?.();
    };
  }

  get running(): number {
    return this.active;
  }
}

/** One trial at a time per process (see the header). */
export const TRIAL_SLOTS = new TrialSlots(1);

export interface TrialInput {
  tenantId: string;
  model: string;
  version: string;
  candidate: Candidate;
  /** The version's own settings: the guardrail's reference. */
  baseline: Candidate;
  workload: WorkloadSpec;
  measurement: Measurement;
  guardrail: Guardrail;
}

export interface TrialDeps {
  artifacts: ArtifactSource;
  slots?: TrialSlots;
  /** Heartbeat interval (ms). */
  heartbeatMs?: number;
}

class TrialTimeout extends Error {
  override name = 'TrialTimeout';
}

export function createTrialActivities(deps: TrialDeps) {
  const slots = deps.slots ?? TRIAL_SLOTS;
  // The last few artifacts and baseline outputs: a run's trials share one version, fetched and probed once.
  const bytesCache = new Map<string, Promise<Uint8Array>>();
  const baselineCache = new Map<string, Promise<Float32Array[]>>();
  const remember = <T>(cache: Map<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> => {
    let hit = cache.get(key);
    if (!hit) {
      hit = make();
      hit.catch(() => cache.delete(key));
      cache.set(key, hit);
      if (cache.size > 4) cache.delete(cache.keys().next().value!);
    }
    return hit;
  };

  return {
    async runTuningTrial(input: TrialInput): Promise<TrialResult> {
      const ctx = Context.current();
      const started = performance.now();
      let phase = 'waiting for a trial slot';
      let repetitions = 0;
      const beat = setInterval(() => ctx.heartbeat({ phase, repetitions }), deps.heartbeatMs ?? 1000);
      const release = await slots.acquire(ctx.cancellationSignal).catch((err: unknown) => {
        clearInterval(beat);
        throw err;
      });
      let session: CandidateSession | undefined;
      let timedOut = false;
      // Before the candidate's own session, a failure (blob store, database) is the platform's: Temporal retries it.
      let candidatePhase = false;
      const timer = setTimeout(() => {
        timedOut = true;
        // Ends the candidate's thread: a run in progress is abandoned and its request rejects.
        void session?.close();
      }, input.measurement.trialTimeoutMs);
      const elapsed = () => performance.now() - started;
      try {
        const id = `${input.tenantId}/${input.model}/${input.version}`;
        phase = 'loading';
        const bytes = await remember(
          bytesCache,
          id,
          async () => (await deps.artifacts(input.tenantId, input.model, input.version)).bytes,
        );
        const reference = await remember(
          baselineCache,
          `${id}/${JSON.stringify(input.baseline.session)}/${input.guardrail.probeRows}`,
          () => probeOutputs(bytes, input.baseline, input.guardrail.probeRows, 'alone'),
        );
        candidatePhase = true;
        session = await openCandidate(bytes, input.candidate);
        if (timedOut) throw new TrialTimeout();
        phase = 'guardrail';
        const guardrail = await checkGuardrail(
          bytes,
          session,
          input.candidate,
          input.baseline,
          input.guardrail,
          reference,
        );
        if (!guardrail.passed) return { status: 'rejected', guardrail, durationMs: elapsed() };
        phase = 'measuring';
        const figures = await measure(session, input.workload, input.measurement, {
          onRepetition: (n) => (repetitions = n),
          shouldStop: () => timedOut || ctx.cancellationSignal.aborted,
        });
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
        if (timedOut)
          return {
            status: 'timeout',
            figures: figures.repetitions > 0 ? figures : undefined,
            guardrail,
            durationMs: elapsed(),
          };
        return { status: 'ok', figures, guardrail, durationMs: elapsed() };
      } catch (err) {
        if (ctx.cancellationSignal.aborted || (!candidatePhase && !timedOut)) throw err;
        if (timedOut || err instanceof TrialTimeout)
          return {
            status: 'timeout',
            error: `no result within ${input.measurement.trialTimeoutMs} ms`,
            durationMs: elapsed(),
          };
        // The candidate itself failed (ONNX Runtime refused its settings, a run failed): a result, not a retry.
        return { status: 'failed', error: err instanceof Error ? err.message : String(err), durationMs: elapsed() };
      } finally {
        clearTimeout(timer);
        clearInterval(beat);
        await session?.close();
        release();
      }
    },
  };
}

export type TrialActivities = ReturnType<typeof createTrialActivities>;
