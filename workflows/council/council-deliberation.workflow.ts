/**
 * councilDeliberation — one council session: the four judges in parallel, consensus, up to two revise rounds with
 * dissent shared, then a signed verdict or an escalation to a person. Child of agentTask (once on the plan, once on
 * the result), or started on its own by `POST /api/v1/council/review`.
 *
 * Steps:      round: every judge as its own activity, in parallel, within the consensus time budget (a real timer;
 *             a judge that errors or has not answered counts as uncertain) → decide() → revise | escalate | final →
 *             sign and record the final verdict.
 * Activities: runJudge, recordVerdict, recordEscalation on agency-council.
 * Messages:   query `session`.
 */
import { CancellationScope, isCancellation, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { CouncilActivities } from '../../activities/council/index.js';
import { proxyOn } from '../proxy.js';
import { decide, uncertainVerdict } from './consensus.js';
import { JUDGE_IDS, type Dissent, type JudgeVerdict } from './definitions.js';
import { sessionQuery, type CouncilOutcome, type CouncilRequest, type CouncilSession } from './session.js';

export async function councilDeliberationWorkflow(request: CouncilRequest): Promise<CouncilOutcome> {
  // A judge has the round's time budget and no more (schedule-to-close), but within it a transient provider error
  // (429, 503) is retried rather than turned into an `uncertain` that a veto judge would have to fail closed on.
  const judges = proxyOn<CouncilActivities>('council', {
    scheduleToCloseTimeout: request.consensusTimeoutMs,
    retry: { maximumAttempts: 3, initialInterval: '200 milliseconds' },
  });
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

  const { task, strategy, consensusTimeoutMs, maxRounds, ...shared } = request;
  const usage = { tokens: 0, costUsd: 0 };

  async function voteRound(dissent: Dissent[] | undefined): Promise<JudgeVerdict[]> {
    const verdicts: (JudgeVerdict | undefined)[] = JUDGE_IDS.map(() => undefined);
    const judging = new CancellationScope();
    const all = judging.run(() =>
      Promise.all(
        JUDGE_IDS.map(async (judgeId, i) => {
          try {
            const judged = await judges.runJudge(task, { ...shared, judgeId, dissent });
            verdicts[i] = judged.verdict;
            usage.tokens += judged.usage.tokens;
            usage.costUsd += judged.usage.costUsd;
          } catch (err) {
            if (isCancellation(err)) return;
            verdicts[i] = uncertainVerdict(
              judgeId,
              `judge failed: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`,
            );
          }
        }),
      ),
    );
    const timing = new CancellationScope();
    const timer = timing
      .run(() => sleep(consensusTimeoutMs))
      .catch((err: unknown) => {
        if (!isCancellation(err)) throw err;
      });
    await Promise.race([all, timer]);
    judging.cancel();
    timing.cancel();
    await all;
    return JUDGE_IDS.map(
      (judgeId, i) =>
        verdicts[i] ?? uncertainVerdict(judgeId, `no verdict within the consensus budget of ${consensusTimeoutMs} ms`),
    );
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
      await records.recordEscalation(task, {
        sessionId,
        phase: request.phase,
        subjectHash: request.subjectHash,
        reason: outcome.reason,
        score: outcome.score,
        votes,
      });
      session.status = 'escalated';
      session.outcome = { kind: 'escalate', sessionId, reason: outcome.reason, score: outcome.score, votes, usage };
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
