/**
 * councilDeliberation — one council session: the four judges in parallel, consensus, up to two revise rounds with
 * dissent shared, then a signed verdict or an escalation to a person. Child of agentTask (once on the plan, once on
 * the result), or started on its own by `POST /api/v1/council/review`.
 *
 * Steps:      round: every judge as its own activity, in parallel, within the consensus time budget (a real timer;
 *             a judge that errors or has not answered counts as uncertain; a vote lost to infrastructure is asked
 *             again on another worker while the budget lasts, and if the budget runs out on it the vote counts as
 *             lost, which escalates instead of rejecting: handover.ts) → decide() → revise | escalate | final → sign
 *             and record the final verdict.
 * Activities: runJudge, recordVerdict, recordEscalation on agency-council.
 * Messages:   query `session`.
 */
import { CancellationScope, isCancellation, patched, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { CouncilActivities } from '../../activities/council/index.js';
import type { PlanningActivities } from '../../activities/planning/index.js';
import type { WorkingSpec } from '../task/spec.js';
import { proxyOn } from '../proxy.js';
import { decide, lostVerdict, uncertainVerdict } from './consensus.js';
import { JUDGE_IDS, type Dissent, type JudgeId, type JudgeVerdict } from './definitions.js';
import { DEFAULT_JUDGE_HANDOVER_MS, infrastructureLoss } from './handover.js';
import {
  sessionQuery,
  type CouncilOutcome,
  type CouncilRequest,
  type CouncilSession,
  type CouncilUsage,
} from './session.js';

/** Sessions started before hand-over keep their rules to the end (no retried votes, no grace, no lost votes). */
const HANDOVER_PATCH = 'council-judge-handover';
/**
 * From this patch on, revise rounds revise: a council of deterministic rule judges (no vote came from a model) decides
 * in one round, since the same rules on the same plan vote the same way again; with model judges, the dissent reaches
 * the judges, and on a plan the planner too, and the next round judges the revised plan.
 */
const REVISE_PATCH = 'council-revise-rounds-revise';

/** What one session's rounds share: the judges' proxy, the request's parts a judge sees, the usage so far. */
interface Round {
  request: CouncilRequest;
  shared: Omit<CouncilRequest, 'task' | 'strategy' | 'consensusTimeoutMs' | 'judgeHandoverMs' | 'maxRounds'>;
  judges: ReturnType<typeof judgeActivities>;
  /** The plan as the planner last revised it in this session (plan phase, with a model). */
  revised?: { spec: WorkingSpec; planHash: string };
  /** Hand-over is on (the patch): a vote lost to infrastructure is asked again, and counts as lost, not doubt. */
  handover: boolean;
  handoverMs: number;
  usage: CouncilUsage;
}

export async function councilDeliberationWorkflow(request: CouncilRequest): Promise<CouncilOutcome> {
  const handover = patched(HANDOVER_PATCH);
  const handoverMs = request.judgeHandoverMs ?? DEFAULT_JUDGE_HANDOVER_MS;
  const sessionId = workflowInfo().workflowId;
  const session: CouncilSession = {
    sessionId,
    taskId: request.task.taskId,
    phase: request.phase,
    tier: request.tier,
    strategy: request.strategy,
    status: 'deliberating',
    rounds: [],
  };
  setHandler(sessionQuery, () => session);

  const {
    task: _task,
    strategy,
    consensusTimeoutMs: _budget,
    judgeHandoverMs: _handover,
    maxRounds,
    ...shared
  } = request;
  const round: Round = {
    request,
    shared,
    judges: judgeActivities(request, handover, handoverMs),
    handover,
    handoverMs,
    usage: { tokens: 0, costUsd: 0 },
  };
  const revising = patched(REVISE_PATCH);
  let dissent: Dissent[] | undefined;
  for (let n = 0; ; n++) {
    const votes = await voteRound(round, dissent);
    session.rounds.push(votes);
    if (revising) session.plans = [...(session.plans ?? []), round.shared.subjectHash];
    // Rule judges alone would vote the same way on the same plan: no revise round (the revise band becomes `modify`).
    const deterministic = revising && !votes.some(isModelVote);
    const rounds = deterministic ? 0 : maxRounds;
    const outcome = decide(votes, { tier: request.tier, strategy, round: n, maxRounds: rounds });
    if (outcome.kind === 'revise') {
      dissent = outcome.dissent;
      if (revising && request.phase === 'plan') await revisePlan(round, dissent);
      continue;
    }
    session.outcome = await conclude(round, sessionId, outcome, votes);
    session.status = session.outcome.kind === 'escalate' ? 'escalated' : 'decided';
    return session.outcome;
  }
}

/** A vote a model took part in (the rule judge's verdict merged with the model's, or the model's alone). */
function isModelVote(v: JudgeVerdict): boolean {
  return v.version.endsWith('+model');
}

/**
 * Between revise rounds on a plan: the planner revises it on the dissent (with the model), and the next round judges
 * the revised plan. A planner that changes nothing leaves the plan as it was; the revised plan goes back to the task
 * with the verdict (`revised`), which plans it again.
 */
async function revisePlan(round: Round, dissent: Dissent[]): Promise<void> {
  const planning = proxyOn<PlanningActivities>('planning', {
    startToCloseTimeout: '3 minutes',
    retry: { maximumAttempts: 3, maximumInterval: '30 seconds', nonRetryableErrorTypes: ['ModelUnavailable'] },
  });
  const { shared, request } = round;
  const revision = await planning.revisePlan(request.task, { spec: shared.spec, dissent });
  round.usage.tokens += revision.usage.tokens;
  round.usage.costUsd += revision.usage.costUsd;
  if (revision.kind !== 'revised' || revision.planHash === shared.subjectHash) return;
  round.shared = {
    ...shared,
    spec: revision.spec,
    plannedFiles: revision.plannedFiles,
    commands: revision.commands,
    subjectHash: revision.planHash,
  };
  round.revised = { spec: revision.spec, planHash: revision.planHash };
}

/**
 * The judges' activity options. Within the round, a transient provider error (429, 503) is retried by Temporal rather
 * than turned into an `uncertain` that a veto judge would have to fail closed on. With hand-over, a lost worker is
 * noticed within handoverMs whatever the model's latency: the judge heartbeats while it judges (activities/council),
 * so the heartbeat timeout, not a start-to-close, finds a dead worker, and a start-to-close short enough to hand over
 * would cut off a slow but honest model call. A vote no worker takes fails on schedule-to-start. Those two are not
 * retried by Temporal but come back to the workflow at once (nonRetryableErrorTypes): it asks again, as a new activity
 * that any live worker takes, and knows the vote was lost if the budget runs out.
 */
function judgeActivities(request: CouncilRequest, handover: boolean, handoverMs: number) {
  return proxyOn<CouncilActivities>(
    'council',
    handover
      ? {
          startToCloseTimeout: request.consensusTimeoutMs,
          scheduleToStartTimeout: handoverMs,
          heartbeatTimeout: handoverMs,
          retry: {
            maximumAttempts: 3,
            initialInterval: '200 milliseconds',
            nonRetryableErrorTypes: ['TemporalTimeout:Heartbeat', 'TemporalTimeout:StartToClose'],
          },
        }
      : {
          scheduleToCloseTimeout: request.consensusTimeoutMs,
          retry: { maximumAttempts: 3, initialInterval: '200 milliseconds' },
        },
  );
}

/** One voting round: every judge in parallel within the budget (and one hand-over time more for a vote in flight). */
async function voteRound(round: Round, dissent: Dissent[] | undefined): Promise<JudgeVerdict[]> {
  const { consensusTimeoutMs } = round.request;
  const votes: JudgeVote[] = JUDGE_IDS.map(() => ({}));
  const state = { over: false, outstanding: JUDGE_IDS.length };
  const judging = new CancellationScope();
  const all = judging.run(() =>
    Promise.all(JUDGE_IDS.map((judgeId, i) => judge(round, judgeId, dissent, votes[i]!, state))),
  );
  await settledWithin(all, consensusTimeoutMs);
  state.over = true;
  // A vote whose worker died in the budget's last moment has not timed out yet: one hand-over time more tells a lost
  // worker (heartbeat or schedule-to-start timeout) from a live judge that is slow (its own `uncertain`).
  if (round.handover && state.outstanding > 0) await settledWithin(all, round.handoverMs);
  judging.cancel();
  await all;
  return JUDGE_IDS.map((judgeId, i) => {
    const { verdict, lost } = votes[i]!;
    if (verdict) return verdict;
    if (lost) {
      return lostVerdict(
        judgeId,
        `no worker answered for the ${judgeId} judge within the round's budget of ${consensusTimeoutMs} ms ` +
          `(${lost}): the budget was consumed by infrastructure`,
      );
    }
    return uncertainVerdict(judgeId, `no verdict within the consensus budget of ${consensusTimeoutMs} ms`);
  });
}

/**
 * One judge's vote: its verdict, or why it was lost to infrastructure (its last lost attempt). A vote asked again
 * after a loss that has still not answered at the end counts as lost too: a crash took part of its budget.
 */
interface JudgeVote {
  verdict?: JudgeVerdict;
  lost?: string;
}

async function judge(
  round: Round,
  judgeId: JudgeId,
  dissent: Dissent[] | undefined,
  vote: JudgeVote,
  state: { over: boolean; outstanding: number },
): Promise<void> {
  const { judges, request, shared, usage } = round;
  try {
    for (;;) {
      try {
        const judged = await judges.runJudge(request.task, { ...shared, judgeId, dissent });
        vote.verdict = judged.verdict;
        usage.tokens += judged.usage.tokens;
        usage.costUsd += judged.usage.costUsd;
        return;
      } catch (err) {
        if (isCancellation(err)) return;
        vote.lost = round.handover ? infrastructureLoss(err) : undefined;
        if (!vote.lost) {
          const cause = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : undefined;
          vote.verdict = uncertainVerdict(judgeId, `judge failed: ${cause ?? (err as Error).message}`);
          return;
        }
        // Lost to infrastructure: asked again (a new activity, taken by whichever worker is alive).
        if (state.over) return;
      }
    }
  } finally {
    state.outstanding--;
  }
}

/** Records the session's end: an escalation to a person (with its cause), or the signed final verdict. */
async function conclude(
  round: Round,
  sessionId: string,
  outcome: Exclude<ReturnType<typeof decide>, { kind: 'revise' }>,
  votes: JudgeVerdict[],
): Promise<CouncilOutcome> {
  const { request, usage } = round;
  // Recording writes the database: short and safe to retry (idempotent by session and phase).
  const records = proxyOn<CouncilActivities>('council', {
    startToCloseTimeout: '1 minute',
    retry: { maximumInterval: '30 seconds' },
  });
  const { task, phase } = request;
  // What the last round judged: the revised plan when the planner revised it.
  const subjectHash = round.shared.subjectHash;
  if (outcome.kind === 'escalate') {
    const cause = outcome.cause ? { cause: outcome.cause } : {};
    const { reason, score } = outcome;
    await records.recordEscalation(task, { sessionId, phase, subjectHash, reason, score, votes, ...cause });
    return { kind: 'escalate', sessionId, reason, score, votes, usage, ...cause };
  }
  const signed = await records.recordVerdict(task, { sessionId, phase, subjectHash, verdict: outcome.verdict, votes });
  return {
    kind: 'final',
    record: { sessionId, phase, verdict: outcome.verdict, verdictRef: signed.verdictRef, signature: signed.signature },
    usage,
    ...(round.revised ? { revised: round.revised } : {}),
  };
}

/** Waits for `work` or `ms` (a timer, cancelled if the work settles first), whichever comes first. */
async function settledWithin(work: Promise<unknown>, ms: number): Promise<void> {
  const timing = new CancellationScope();
  const timer = timing
    .run(() => sleep(ms))
    .catch((err: unknown) => {
      if (!isCancellation(err)) throw err;
    });
  await Promise.race([work, timer]);
  timing.cancel();
}
