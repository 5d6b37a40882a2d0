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
import { proxyOn } from '../proxy.js';
import { decide, lostVerdict, uncertainVerdict } from './consensus.js';
import { JUDGE_IDS, type Dissent, type JudgeVerdict } from './definitions.js';
import { DEFAULT_JUDGE_HANDOVER_MS, infrastructureLoss } from './handover.js';
import { sessionQuery, type CouncilOutcome, type CouncilRequest, type CouncilSession } from './session.js';

/** Sessions started before hand-over keep their rules to the end (no retried votes, no grace, no lost votes). */
const HANDOVER_PATCH = 'council-judge-handover';

export async function councilDeliberationWorkflow(request: CouncilRequest): Promise<CouncilOutcome> {
  const handover = patched(HANDOVER_PATCH);
  const handoverMs = request.judgeHandoverMs ?? DEFAULT_JUDGE_HANDOVER_MS;
  // Within the round, a transient provider error (429, 503) is retried by Temporal rather than turned into an
  // `uncertain` that a veto judge would have to fail closed on. With hand-over, a lost worker is noticed within
  // handoverMs whatever the model's latency: the judge heartbeats while it judges (activities/council), so the
  // heartbeat timeout, not a start-to-close, finds a dead worker, and a start-to-close short enough to hand over
  // would cut off a slow but honest model call. A vote no worker takes fails on schedule-to-start. Those two are not
  // retried by Temporal but come back here at once (nonRetryableErrorTypes): the workflow asks again, as a new
  // activity that any live worker takes, and knows the vote was lost if the budget runs out.
  const judges = proxyOn<CouncilActivities>(
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
  // Recording writes the database: short and safe to retry (idempotent by session and phase).
  const records = proxyOn<CouncilActivities>('council', {
    startToCloseTimeout: '1 minute',
    retry: { maximumInterval: '30 seconds' },
  });
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

  const { task, strategy, consensusTimeoutMs, judgeHandoverMs: _handover, maxRounds, ...shared } = request;
  const usage = { tokens: 0, costUsd: 0 };

  async function voteRound(dissent: Dissent[] | undefined): Promise<JudgeVerdict[]> {
    const verdicts: (JudgeVerdict | undefined)[] = JUDGE_IDS.map(() => undefined);
    /**
     * Why a judge's vote was lost to infrastructure this round (its last lost attempt). A vote asked again after a loss
     * that has still not answered at the end counts as lost too: a crash took part of its budget.
     */
    const lost: (string | undefined)[] = JUDGE_IDS.map(() => undefined);
    let over = false;
    let outstanding = JUDGE_IDS.length;
    const judging = new CancellationScope();
    const all = judging.run(() =>
      Promise.all(
        JUDGE_IDS.map(async (judgeId, i) => {
          try {
            for (;;) {
              try {
                const judged = await judges.runJudge(task, { ...shared, judgeId, dissent });
                verdicts[i] = judged.verdict;
                usage.tokens += judged.usage.tokens;
                usage.costUsd += judged.usage.costUsd;
                return;
              } catch (err) {
                if (isCancellation(err)) return;
                lost[i] = handover ? infrastructureLoss(err) : undefined;
                if (!lost[i]) {
                  verdicts[i] = uncertainVerdict(
                    judgeId,
                    `judge failed: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`,
                  );
                  return;
                }
                // Lost to infrastructure: asked again (a new activity, taken by whichever worker is alive).
                if (over) return;
              }
            }
          } finally {
            outstanding--;
          }
        }),
      ),
    );
    await settledWithin(all, consensusTimeoutMs);
    over = true;
    // A vote whose worker died in the budget's last moment has not timed out yet: one hand-over time more tells a lost
    // worker (heartbeat or schedule-to-start timeout) from a live judge that is slow (its own `uncertain`).
    if (handover && outstanding > 0) await settledWithin(all, handoverMs);
    judging.cancel();
    await all;
    return JUDGE_IDS.map((judgeId, i) => {
      const [verdict, reason] = [verdicts[i], lost[i]];
      if (verdict) return verdict;
      if (reason) {
        return lostVerdict(
          judgeId,
          `no worker answered for the ${judgeId} judge within the round's budget of ${consensusTimeoutMs} ms ` +
            `(${reason}): the budget was consumed by infrastructure`,
        );
      }
      return uncertainVerdict(judgeId, `no verdict within the consensus budget of ${consensusTimeoutMs} ms`);
    });
  }

  let dissent: Dissent[] | undefined;
  for (let round = 0; ; round++) {
    const votes = await voteRound(dissent);
    session.rounds.push(votes);
    const outcome = decide(votes, { tier: request.tier, strategy, round, maxRounds });
    if (outcome.kind === 'revise') {
      dissent = outcome.dissent;
      continue;
    }
    if (outcome.kind === 'escalate') {
      const cause = outcome.cause ? { cause: outcome.cause } : {};
      await records.recordEscalation(task, {
        sessionId,
        phase: request.phase,
        subjectHash: request.subjectHash,
        reason: outcome.reason,
        score: outcome.score,
        votes,
        ...cause,
      });
      session.status = 'escalated';
      session.outcome = {
        kind: 'escalate',
        sessionId,
        reason: outcome.reason,
        score: outcome.score,
        votes,
        usage,
        ...cause,
      };
      return session.outcome;
    }
    const signed = await records.recordVerdict(task, {
      sessionId,
      phase: request.phase,
      subjectHash: request.subjectHash,
      verdict: outcome.verdict,
      votes,
    });
    session.status = 'decided';
    session.outcome = {
      kind: 'final',
      record: {
        sessionId,
        phase: request.phase,
        verdict: outcome.verdict,
        verdictRef: signed.verdictRef,
        signature: signed.signature,
      },
      usage,
    };
    return session.outcome;
  }
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
