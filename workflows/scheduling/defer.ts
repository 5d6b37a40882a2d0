/**
 * The workflow side of load- and temperature-aware scheduling: before a deferrable workload starts, read the host that
 * will run it (an activity on that host's own task queue), and while it is over its threshold wait with a durable timer,
 * up to the policy's maximum delay or the deadline (decision.ts). Every decision and the reading behind it is returned
 * (and logged), so the caller keeps an audit trail: in its query, its result, and in the workflow history, where each
 * reading is an activity result and each wait a timer.
 *
 * Usage (a federated round, F2's federatedRound):
 *   const record = await awaitHostCapacity({
 *     workload: { name: `local training ${participant} round ${n}`, deferrable: true, priority: 'normal',
 *                 estimatedDurationMs: 20_000, expectedLoad: 1 },
 *     policy: { maxDelayMs: 120_000, deadline: roundDeadlineIso },
 *     hostQueue: participantQueue,          // the queue the training activity will run on
 *   });
 *   if (record.final.atRisk) …              // say so: the participant may miss the round (it was late already)
 * The host's worker must register the `readHostState` activity (activities/scheduling/host-state.ts).
 */
import { log, proxyActivities, sleep } from '@temporalio/workflow';
import type { SchedulingActivities } from '../../activities/scheduling/host-state.js';
import { decide, type Decision, type DeferralPolicy, type HostReading, type Workload } from './decision.js';

export interface DeferralEntry {
  at: string;
  reading: HostReading | null;
  decision: Decision;
}

export interface DeferralRecord {
  workload: string;
  /** Time spent waiting before the workload was let run. */
  waitedMs: number;
  entries: DeferralEntry[];
  /** The decision that let it run. */
  final: Decision;
}

export async function awaitHostCapacity(args: {
  workload: Workload;
  policy?: DeferralPolicy;
  /** The task queue of the host that will run the workload (with the deployment's prefix). */
  hostQueue: string;
}): Promise<DeferralRecord> {
  const policy = args.policy ?? {};
  const start = Date.now();
  const entries: DeferralEntry[] = [];
  const { readHostState } = proxyActivities<SchedulingActivities>({
    taskQueue: args.hostQueue,
    // A host with no worker polling gives no reading within 30 s: the workload is then let run (it cannot start on
    // that host anyway until a worker is back, and scheduling must not add its own outage). One retry for a blip.
    scheduleToStartTimeout: '30s',
    startToCloseTimeout: '10s',
    retry: { maximumAttempts: 2 },
  });
  for (;;) {
    let reading: HostReading | undefined;
    if (args.workload.deferrable) {
      try {
        reading = await readHostState();
      } catch (err) {
        log.warn('host reading failed; running without one', { workload: args.workload.name, error: String(err) });
      }
    }
    const decision = decide(args.workload, reading, policy, Date.now() - start, Date.now());
    entries.push({ at: new Date().toISOString(), reading: reading ?? null, decision });
    log.info('scheduling decision', { workload: args.workload.name, ...decision, reading });
    if (decision.action === 'run') {
      return { workload: args.workload.name, waitedMs: Date.now() - start, entries, final: decision };
    }
    await sleep(decision.waitMs);
  }
}
