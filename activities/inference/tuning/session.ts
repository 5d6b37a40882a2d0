/**
 * A candidate as the serving path would run it: an ONNX Runtime session with the candidate's session settings in a
 * worker thread of its own (M1's OrtThread), warmed with one run, behind M2's DynamicBatcher with the candidate's
 * serving policy, with the serving host's own batch assembly (batchRunner). `close()` ends the thread, which also abandons any run still in it (a catastrophic candidate).
 */
import type { Candidate } from '../../../workflows/tuning/definitions.js';
import { OrtThread } from '../ort.js';
import { DynamicBatcher, type RunBatch } from '../serving/batcher.js';
import { batchRunner } from '../serving/host.js';

export interface CandidateSession {
  width: number;
  batcher: DynamicBatcher;
  /** Runs rows as one batch, outside the batcher (the guardrail's reference path). */
  runDirect: RunBatch;
  /** Drains, releases the session, ends the thread (at most `graceMs` of waiting for runs in flight). */
  close(graceMs?: number): Promise<void>;
}

let sequence = 0;

export async function openCandidate(bytes: Uint8Array, candidate: Candidate): Promise<CandidateSession> {
  const thread = new OrtThread();
  try {
    const key = `trial-${process.pid}-${sequence++}`;
    const { signature } = await thread.load({ key, bytes, settings: candidate.session });
    const { run, width } = batchRunner(thread, key, signature);
    await run([new Float32Array(width)]);
    const batcher = new DynamicBatcher(run, candidate.serving);
    let closing: Promise<void> | undefined;
    // Release the session before ending the thread: terminating a thread whose session still holds ONNX Runtime's
    // thread pools aborted the whole process (a native Napi::Error) in the benchmark. Runs in flight finish first,
    // within `graceMs`; only a run stuck beyond it is abandoned with the thread.
    const close = (graceMs = 30_000) =>
      (closing ??= (async () => {
        const grace = new Promise<void>((r) => setTimeout(r, graceMs).unref());
        await Promise.race([batcher.drained(), grace]);
        await Promise.race([thread.release({ key }).catch(() => undefined), grace]);
        await thread.close();
      })());
    return { width, batcher, runDirect: run, close };
  } catch (err) {
    await thread.close();
    throw err;
  }
}
