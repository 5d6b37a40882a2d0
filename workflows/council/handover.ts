/**
 * A judge's vote lost to infrastructure, told apart from the judge's own doubt. Workflow-safe.
 *
 * A judge activity that timed out for lack of a worker is infrastructure: no worker took it (schedule-to-start), the
 * worker running it stopped heartbeating (heartbeat: killed, partitioned), or it ran out its start-to-close without
 * ever heartbeating (a worker that died before its first heartbeat). Anything the activity itself raised (an
 * ApplicationFailure: a model provider's timeout, 429 or 503 after its retries, a malformed request) is the judge's
 * own answer and stays `uncertain`, as is a start-to-close on a judge that was heartbeating (a live worker, a slow
 * model).
 */
import { ActivityFailure, TimeoutFailure } from '@temporalio/common';

/** How long a vote may wait for a worker, or go without a heartbeat, before it is handed to another worker. */
export const DEFAULT_JUDGE_HANDOVER_MS = 2_000;

/** What the lost attempt's failure says about the worker, or undefined when the failure is the judge's own. */
export function infrastructureLoss(err: unknown): string | undefined {
  const failure = err instanceof ActivityFailure ? err.cause : err;
  if (!(failure instanceof TimeoutFailure)) return undefined;
  switch (failure.timeoutType) {
    case 'SCHEDULE_TO_START':
      return 'no worker took the vote (schedule-to-start timeout)';
    case 'HEARTBEAT':
      return 'the worker running the vote stopped heartbeating (heartbeat timeout)';
    case 'START_TO_CLOSE':
      return failure.lastHeartbeatDetails === undefined
        ? 'the worker running the vote never heartbeated (start-to-close timeout)'
        : undefined;
    case 'SCHEDULE_TO_CLOSE':
      // The server gives the last attempt's failure as the cause, when there was one.
      return failure.cause ? infrastructureLoss(failure.cause) : undefined;
    default:
      return undefined;
  }
}
