/**
 * Deadlines a crash can consume, named as such. Pure and workflow-safe.
 *
 * The approval, clarification and task deadlines are workflow timers; a person's signal (`approve`, `reject`,
 * `clarify`) is kept by the server while no worker runs and is delivered before a timer that fires in the same
 * workflow task, so it counts if it was sent in time. What a crash takes is the rest: while no orchestration worker
 * runs, the `decide` Update (the API's approval) and the `progress` query (the hash to approve) cannot be answered,
 * and the task's own activities wait for their workers under the task deadline. A timer handled well after it was due
 * shows the first (the workflow's clock is the time its workflow task started); council votes lost to infrastructure
 * show the second (councilDeliberation's `cause`).
 */

/**
 * A timer is handled within a second or so while an orchestration worker runs, and within seconds on a starved
 * machine (seen: over 5 s with the whole test suite and four other jobs on two cores); this late, no worker was.
 */
export const LATE_TIMER_MS = 15_000;

/** The note for a deadline handled at `nowMs` that was due at `dueMs`, or undefined when it was handled in time. */
export function lateDeadline(what: string, dueMs: number, nowMs: number): string | undefined {
  const late = nowMs - dueMs;
  if (late <= LATE_TIMER_MS) return undefined;
  return `the ${what} passed while no orchestration worker was running (handled ${Math.round(late / 1000)} s late)`;
}

/** `reason`, followed by what infrastructure consumed of it, if anything. */
export function withOutages(reason: string, outages: string | readonly string[] | undefined): string {
  const notes = typeof outages === 'string' ? [outages] : (outages ?? []);
  return notes.length ? `${reason}; consumed by infrastructure: ${notes.join('; ')}` : reason;
}
