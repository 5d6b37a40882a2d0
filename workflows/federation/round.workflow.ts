/**
 * federatedRoundWorkflow: one DP-FedAvg round.
 *   begin      record the selection (Poisson, CSPRNG) and the privacy spent, once; refused before it starts when a
 *              budget would be exceeded (BudgetExceeded)
 *   train      local training on each selected participant's own queue, heartbeating; wait for all or the deadline,
 *              whichever comes first, leaving stragglers and drop-outs out (children of fanout_batch participants each
 *              for large rounds: a workflow keeps far below Temporal's ~2,000 pending activities)
 *   aggregate  check and sum in partial sums of aggregation_batch updates, in parallel, then combine and record the
 *              aggregate (fails below min_participants)
 *   decrypt    encrypted mode: the decryptor's own queue decrypts the recorded aggregate, rounds it, adds the noise
 *   apply      average, evaluate on the held-out split, record the model version with its metrics
 * Anything that fails the round is recorded with its reason and fails the workflow with it.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  executeChild,
  patched,
  proxyActivities,
  workflowInfo,
  type ActivityFailure,
  type ActivityInterfaceFor,
} from '@temporalio/workflow';
import type { DecryptorActivities } from '../../activities/federation/decryptor.js';
import type { ParticipantActivities } from '../../activities/federation/participant.js';
import type {
  BegunRound,
  PartialSum,
  RoundActivities,
  SelectedParticipant,
} from '../../activities/federation/round.js';
import { prefixOfQueue } from '../../temporal/task-queues.js';
import { proxyOn } from '../proxy.js';
import { awaitHostCapacity } from '../scheduling/defer.js';
import {
  HostDeferralSchema,
  participantQueue,
  type CampaignConfig,
  type ParticipantDeferral,
  type RoundInput,
  type RoundMetrics,
  type RoundScheduling,
  type UpdateRef,
} from './definitions.js';

// CPU-bound but short; the heartbeat lets a killed worker's activity move to another within seconds, and the retries
// are safe: every step is idempotent by (campaign, round).
// proxyOn reads workflowInfo(): built on first use inside a workflow, never at import (the API imports this module).
const round = (): ActivityInterfaceFor<RoundActivities> =>
  proxyOn<RoundActivities>('federation', {
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '10 seconds',
    retry: {
      initialInterval: '1 second',
      maximumAttempts: 5,
      nonRetryableErrorTypes: ['BudgetExceeded', 'BelowMinimum'],
    },
  });
const decryptor = (): ActivityInterfaceFor<DecryptorActivities> =>
  proxyOn<DecryptorActivities>('decryptor', {
    startToCloseTimeout: '5 minutes',
    retry: { initialInterval: '1 second', maximumAttempts: 5, nonRetryableErrorTypes: ['DecryptRefused'] },
  });

export interface Collected {
  updates: UpdateRef[];
  missing: string[];
  /** Absent in histories recorded before host deferral. */
  deferrals?: { checked: number; noted: ParticipantDeferral[] };
}

/** Decisions recorded in the round's result at most (the history keeps every reading). */
const NOTED_DEFERRALS = 100;

function durationMs(d: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(d);
  if (!m) throw ApplicationFailure.nonRetryable(`bad duration ${d}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

const queueOfParticipant = (id: string) => `${prefixOfQueue(workflowInfo().taskQueue)}${participantQueue(id)}`;

function participantActivities(id: string, deadlineMs: number) {
  return proxyActivities<ParticipantActivities>({
    taskQueue: queueOfParticipant(id),
    // The round's deadline bounds everything, queueing included: a participant whose worker is down never blocks it.
    scheduleToCloseTimeout: deadlineMs,
    heartbeatTimeout: '20 seconds',
    retry: { initialInterval: '1 second', maximumAttempts: 3 },
  });
}

/** Waits while the participant's own host (its worker's queue) is busy or hot, never past the round's deadline. */
async function deferTraining(config: CampaignConfig, id: string, deadlineAt: number): Promise<ParticipantDeferral> {
  // Campaigns started before host deferral have no host_deferral in their config: the defaults apply.
  const d = HostDeferralSchema.parse(config.host_deferral ?? {});
  const record = await awaitHostCapacity({
    workload: {
      name: `local training of ${id}`,
      deferrable: d.deferrable,
      priority: d.priority,
      estimatedDurationMs: durationMs(d.expected_training),
      expectedLoad: 1, // one session thread: the participant worker trains one at a time
    },
    policy: {
      maxDelayMs: durationMs(d.max_delay),
      checkIntervalMs: durationMs(d.check_interval),
      deadline: new Date(deadlineAt).toISOString(),
    },
    hostQueue: queueOfParticipant(id),
  });
  const decisions = record.entries.map(({ at, reading: r, decision }) => ({
    at,
    action: decision.action,
    reason: decision.reason,
    over: decision.over,
    reading: r && { host: r.host, load1: r.load1, cores: r.cores, cpuTempC: r.cpuTempC },
  }));
  const late = record.final.atRisk;
  return { participantId: id, waitedMs: record.waitedMs, reason: record.final.reason, late, decisions };
}

/** Trains the given participants, returning whoever answered before the deadline; the rest are cancelled. */
export async function trainParticipants(
  input: RoundInput,
  begun: BegunRound,
  selected: SelectedParticipant[],
  deadlineMs: number,
): Promise<Collected> {
  const { config } = input;
  // Histories recorded before host deferral replay without reading any host.
  const deferring = patched('federation-host-deferral');
  const deadlineAt = Date.now() + deadlineMs;
  const answered = new Map<string, UpdateRef>();
  const deferrals = new Map<string, ParticipantDeferral>();
  let settled = 0;
  const scope = new CancellationScope();
  for (const p of selected) {
    // Each participant waits for its own host in its own branch: the deferrals run side by side.
    void scope
      .run(async () => {
        if (deferring) deferrals.set(p.participantId, await deferTraining(config, p.participantId, deadlineAt));
        const timeout = deferring ? Math.max(1, deadlineAt - Date.now()) : deadlineMs;
        return participantActivities(p.participantId, timeout).federationTrain({
          campaignId: input.campaignId,
          round: input.round,
          participantId: p.participantId,
          tenantId: p.tenantId,
          model: config.model,
          global: begun.global,
          ...(begun.publicKey ? { publicKey: begun.publicKey } : {}),
          mode: config.mode,
          noise: config.noise,
          clipNorm: config.clip_norm,
          noiseMultiplier: config.noise_multiplier,
          minParticipants: config.min_participants,
          local: config.local,
        });
      })
      .then(
        (u) => void answered.set(p.participantId, u),
        () => undefined, // a drop-out: left out below
      )
      .finally(() => void settled++);
  }
  if (!(await condition(() => settled === selected.length, deadlineMs))) scope.cancel();
  const updates = selected.flatMap((p) => answered.get(p.participantId) ?? []);
  const missing = selected.filter((p) => !answered.has(p.participantId)).map((p) => p.participantId);
  if (!deferring) return { updates, missing };
  const noted = selected.flatMap((p) => deferrals.get(p.participantId) ?? []).filter(noteworthy);
  return { updates, missing, deferrals: { checked: deferrals.size, noted } };
}

// waitedMs also counts the reading itself: only a 'defer' decision means the training was held back.
const deferred = (d: ParticipantDeferral): boolean => d.decisions.some((e) => e.action === 'defer');

/** Worth the round's result: it waited, started late, or its host read over a threshold. */
const noteworthy = (d: ParticipantDeferral): boolean =>
  deferred(d) || d.late || d.decisions.some((e) => e.over.length > 0);

function mergeDeferrals(parts: Collected[]): Pick<Collected, 'deferrals'> {
  if (!parts.some((p) => p.deferrals)) return {};
  const checked = parts.reduce((n, p) => n + (p.deferrals?.checked ?? 0), 0);
  return { deferrals: { checked, noted: parts.flatMap((p) => p.deferrals?.noted ?? []) } };
}

function schedulingOf({ deferrals }: Collected): RoundScheduling | undefined {
  if (!deferrals) return undefined;
  return {
    checked: deferrals.checked,
    deferred: deferrals.noted.filter(deferred).length,
    late: deferrals.noted.filter((d) => d.late).map((d) => d.participantId),
    decisions: deferrals.noted.slice(0, NOTED_DEFERRALS),
  };
}

/** A slice of a large round, as a child workflow (its own history, its own pending activities). */
export async function federationTrainingBatchWorkflow(
  input: RoundInput,
  begun: BegunRound,
  selected: SelectedParticipant[],
  deadlineMs: number,
): Promise<Collected> {
  return trainParticipants(input, begun, selected, deadlineMs);
}

async function collect(input: RoundInput, begun: BegunRound): Promise<Collected> {
  const deadlineMs = durationMs(input.config.round_deadline);
  const batch = input.config.fanout_batch;
  if (begun.selected.length <= batch) return trainParticipants(input, begun, begun.selected, deadlineMs);
  const slices: SelectedParticipant[][] = [];
  for (let i = 0; i < begun.selected.length; i += batch) slices.push(begun.selected.slice(i, i + batch));
  const parts = await Promise.all(
    slices.map((slice, i) =>
      executeChild(federationTrainingBatchWorkflow, {
        args: [input, begun, slice, deadlineMs],
        workflowId: `${workflowInfo().workflowId}-batch-${i}`,
      }),
    ),
  );
  return {
    updates: parts.flatMap((p) => p.updates),
    missing: parts.flatMap((p) => p.missing),
    ...mergeDeferrals(parts),
  };
}

async function aggregate(input: RoundInput, updates: UpdateRef[]) {
  const size = input.config.aggregation_batch;
  const slices: UpdateRef[][] = [];
  for (let i = 0; i < updates.length; i += size) slices.push(updates.slice(i, i + size));
  const partials: PartialSum[] = await Promise.all(slices.map((s) => round().federationSum({ ...input, updates: s })));
  const combined = await round().federationCombine({ ...input, partials });
  return { ...combined, rejected: partials.flatMap((p) => p.rejected) };
}

/** The failure's message and type, whether thrown here or by an activity (then its cause). */
function failureOf(err: unknown): { reason: string; type: string } {
  const failure = err instanceof ApplicationFailure ? err : ((err as ActivityFailure).cause ?? err);
  return {
    reason: failure instanceof Error ? failure.message : String(failure),
    type: failure instanceof ApplicationFailure && failure.type ? failure.type : 'RoundFailed',
  };
}

export async function federatedRoundWorkflow(input: RoundInput): Promise<RoundMetrics> {
  // A refused round (BudgetExceeded) fails with the activity's reason and type, for the campaign to read.
  const begun = await round()
    .federationBeginRound(input)
    .catch((err: unknown) => {
      const { reason, type } = failureOf(err);
      throw ApplicationFailure.nonRetryable(reason, type);
    });
  try {
    const collected = await collect(input, begun);
    const { updates, missing } = collected;
    const scheduling = schedulingOf(collected);
    const late = scheduling?.late.filter((id) => missing.includes(id)) ?? [];
    if (updates.length < input.config.min_participants)
      throw ApplicationFailure.nonRetryable(
        `only ${updates.length} of ${begun.selected.length} selected participant(s) answered before the deadline (${input.config.round_deadline}); the round needs at least ${input.config.min_participants}${missing.length ? `; missing: ${missing.join(', ')}` : ''}${late.length ? `; started late (host deferral or queueing): ${late.join(', ')}` : ''}`,
        'BelowMinimum',
      );
    const agg = await aggregate(input, updates);
    const noisedSum =
      input.config.mode === 'encrypted'
        ? await decryptor().federationDecrypt({ campaignId: input.campaignId, round: input.round })
        : agg.aggregate;
    return await round().federationApplyRound({
      ...input,
      begun,
      noisedSum,
      metrics: {
        round: input.round,
        selected: begun.selected.length,
        answered: updates.length,
        contributors: agg.contributors,
        rejected: agg.rejected,
        missing,
        epsilon: begun.epsilon,
        sampling: begun.sampling,
        accountedQ: begun.accountedQ,
        ...(scheduling && { scheduling }),
      },
    });
  } catch (err) {
    const { reason, type } = failureOf(err);
    await round().federationFailRound({ campaignId: input.campaignId, round: input.round, reason });
    throw ApplicationFailure.nonRetryable(reason, type);
  }
}
