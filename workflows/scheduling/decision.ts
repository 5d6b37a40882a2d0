/**
 * Load- and temperature-aware scheduling: what a workload declares, what a host reading holds, and the pure decision
 * "run now or wait, and for how long". Workflow-safe (zod only): the workflow helper (defer.ts) decides with it between
 * durable timers, the activities (activities/scheduling/) produce the readings, the API validates policies with it.
 *
 * Rules, in order:
 * 1. Non-deferrable work runs at once, whatever the host says.
 * 2. A deadline (a federated round's) wins over the host: the workload starts no later than
 *    deadline − estimated duration − margin; if even now is too late, it runs at once and is flagged `atRisk`.
 * 3. The host is over its threshold when its CPU temperature exceeds `maxCpuTempC` (where /sys/class/thermal exposes
 *    one), otherwise when its load per core, counting the workload's own expected load, exceeds `maxLoadPerCore`, or its
 *    memory is short (available fraction below `minMemAvailableFraction`, or PSI memory "some avg10" above
 *    `maxMemPressurePct`).
 * 4. Over threshold, the workload waits `checkIntervalMs` (a durable timer), then the host is read again; in all it
 *    waits at most its priority's share of `maxDelayMs` (low 100%, normal 50%, high 20%): more urgent work waits less.
 */
import { z } from 'zod';

export const PRIORITIES = ['low', 'normal', 'high'] as const;
export const PrioritySchema = z.enum(PRIORITIES);
export type Priority = z.infer<typeof PrioritySchema>;

/** The share of `maxDelayMs` a priority may wait. */
export const DELAY_SHARE: Readonly<Record<Priority, number>> = { low: 1, normal: 0.5, high: 0.2 };

export const WorkloadSchema = z
  .object({
    /** What it is, for the audit trail ("tuning trial 7", "local training, round 3"). */
    name: z.string().min(1).max(200),
    priority: PrioritySchema.default('normal'),
    deferrable: z.boolean(),
    estimatedDurationMs: z.number().int().min(0),
    /** Cores it will keep busy while it runs (1 for a single-threaded session, 2 for two intra-op threads). */
    expectedLoad: z.number().min(0).max(1024),
  })
  .strict();
export type Workload = z.input<typeof WorkloadSchema>;

export const ThresholdsSchema = z
  .object({
    maxCpuTempC: z.number().min(20).max(120).default(85),
    maxLoadPerCore: z.number().positive().max(100).default(1.5),
    minMemAvailableFraction: z.number().min(0).max(1).default(0.1),
    maxMemPressurePct: z.number().min(0).max(100).default(20),
  })
  .strict();
export type Thresholds = z.output<typeof ThresholdsSchema>;

export const DeferralPolicySchema = z
  .object({
    thresholds: ThresholdsSchema.prefault({}),
    maxDelayMs: z
      .number()
      .int()
      .min(0)
      .default(10 * 60_000),
    checkIntervalMs: z.number().int().positive().default(30_000),
    /** ISO time by which the workload must have finished (a federated round's deadline). */
    deadline: z.string().datetime().optional(),
    /** Slack kept before the deadline besides the estimated duration (messaging, upload). */
    deadlineMarginMs: z.number().int().min(0).default(5_000),
  })
  .strict();
export type DeferralPolicy = z.input<typeof DeferralPolicySchema>;

export const HostReadingSchema = z.object({
  host: z.string(),
  at: z.string(),
  cores: z.number().int().positive(),
  /** One-minute load average. */
  load1: z.number().min(0),
  /** The hottest CPU thermal zone, °C; null where the machine exposes none (containers, most VMs). */
  cpuTempC: z.number().nullable(),
  memAvailableFraction: z.number().min(0).max(1),
  /** PSI /proc/pressure/memory "some avg10" (% of time stalled on memory); null without PSI. */
  memPressurePct: z.number().min(0).nullable(),
});
export type HostReading = z.infer<typeof HostReadingSchema>;

export type DecisionReason = 'not-deferrable' | 'host-ok' | 'over-threshold' | 'max-delay' | 'deadline' | 'no-reading';

export interface Decision {
  action: 'run' | 'defer';
  /** How long to wait before reading the host again (0 when running). */
  waitMs: number;
  reason: DecisionReason;
  /** Which thresholds the reading exceeded, e.g. "load per core 2.40 > 1.5". */
  over: string[];
  /** The workload starts too late to finish by the deadline: the caller must say so, not miss silently. */
  atRisk: boolean;
}

/** The thresholds a reading exceeds, given the workload's expected load (temperature where known, else load + memory). */
export function overThresholds(reading: HostReading, thresholds: Thresholds, expectedLoad: number): string[] {
  const over: string[] = [];
  if (reading.cpuTempC !== null) {
    if (reading.cpuTempC > thresholds.maxCpuTempC)
      over.push(`CPU ${reading.cpuTempC} °C > ${thresholds.maxCpuTempC} °C`);
  } else {
    const perCore = (reading.load1 + expectedLoad) / reading.cores;
    if (perCore > thresholds.maxLoadPerCore)
      over.push(`load per core ${perCore.toFixed(2)} (with this workload) > ${thresholds.maxLoadPerCore}`);
  }
  if (reading.memAvailableFraction < thresholds.minMemAvailableFraction)
    over.push(
      `memory available ${(100 * reading.memAvailableFraction).toFixed(1)}% < ${100 * thresholds.minMemAvailableFraction}%`,
    );
  if (reading.memPressurePct !== null && reading.memPressurePct > thresholds.maxMemPressurePct)
    over.push(`memory pressure ${reading.memPressurePct}% > ${thresholds.maxMemPressurePct}%`);
  return over;
}

/**
 * Run or wait, for a workload that has already waited `waitedMs`, at time `nowMs` (workflow time), given the latest
 * reading of its host (undefined when the host could not be read: the workload runs rather than wait blind).
 */
export function decide(
  workload: Workload,
  reading: HostReading | undefined,
  policyInput: DeferralPolicy,
  waitedMs: number,
  nowMs: number,
): Decision {
  const w = WorkloadSchema.parse(workload);
  const policy = DeferralPolicySchema.parse(policyInput);
  const run = (reason: DecisionReason, over: string[] = [], atRisk = false): Decision => ({
    action: 'run',
    waitMs: 0,
    reason,
    over,
    atRisk,
  });
  const latestStart =
    policy.deadline === undefined
      ? Infinity
      : Date.parse(policy.deadline) - w.estimatedDurationMs - policy.deadlineMarginMs;
  const atRisk = nowMs > latestStart;
  if (!w.deferrable) return run('not-deferrable', [], atRisk);
  if (!reading) return run('no-reading', [], atRisk);
  const over = overThresholds(reading, policy.thresholds, w.expectedLoad);
  if (over.length === 0) return run('host-ok', [], atRisk);
  if (nowMs >= latestStart) return run('deadline', over, atRisk);
  const allowed = policy.maxDelayMs * DELAY_SHARE[w.priority];
  if (waitedMs >= allowed) return run('max-delay', over);
  const waitMs = Math.min(policy.checkIntervalMs, allowed - waitedMs, latestStart - nowMs);
  return { action: 'defer', waitMs: Math.max(1, Math.ceil(waitMs)), reason: 'over-threshold', over, atRisk: false };
}
