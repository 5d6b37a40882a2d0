/**
 * A judge's vote lost to infrastructure (handover.ts) against the judge's own doubt, and what consensus does with a
 * lost vote: it escalates, and only a veto by a judge that did answer still rejects.
 */
import { ActivityFailure, ApplicationFailure, CancelledFailure, TimeoutFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { decide, lostVerdict, uncertainVerdict } from '../../workflows/council/consensus.js';
import {
  CONSENSUS_STRATEGIES,
  JUDGE_IDS,
  JudgeVerdictSchema,
  type JudgeId,
  type JudgeVerdict,
} from '../../workflows/council/definitions.js';
import { infrastructureLoss } from '../../workflows/council/handover.js';

/** The failure a workflow sees for a judge activity, with `cause` as the server reported it. */
function activityFailure(cause: Error): ActivityFailure {
  return new ActivityFailure('activity failed', 'runJudge', '3', 'NON_RETRYABLE_FAILURE', 'worker@host', cause);
}

function timeout(type: TimeoutFailure['timeoutType'], lastHeartbeatDetails?: unknown, cause?: Error): TimeoutFailure {
  const failure = new TimeoutFailure(`activity ${type} timeout`, lastHeartbeatDetails, type);
  if (cause) Object.defineProperty(failure, 'cause', { value: cause });
  return failure;
}

describe('which judge failures are infrastructure', () => {
  it('when no worker took the vote (schedule-to-start), then it is infrastructure', () => {
    expect(infrastructureLoss(activityFailure(timeout('SCHEDULE_TO_START')))).toMatch(/no worker took the vote/);
  });

  it('when the worker running the vote stopped heartbeating, then it is infrastructure', () => {
    expect(infrastructureLoss(activityFailure(timeout('HEARTBEAT', 'constitutional')))).toMatch(/heartbeat timeout/);
  });

  it('when start-to-close ran out without a heartbeat, then it is infrastructure; with one, it is the judge', () => {
    expect(infrastructureLoss(activityFailure(timeout('START_TO_CLOSE')))).toMatch(/never heartbeated/);
    expect(infrastructureLoss(activityFailure(timeout('START_TO_CLOSE', 'constitutional')))).toBeUndefined();
  });

  it('when schedule-to-close ran out, then its cause (the last attempt) decides', () => {
    expect(infrastructureLoss(activityFailure(timeout('SCHEDULE_TO_CLOSE')))).toBeUndefined();
    expect(
      infrastructureLoss(activityFailure(timeout('SCHEDULE_TO_CLOSE', undefined, timeout('HEARTBEAT', 'technical')))),
    ).toMatch(/heartbeat timeout/);
    const providerDown = ApplicationFailure.create({ message: 'HTTP 503', type: 'ModelServerError' });
    expect(infrastructureLoss(activityFailure(timeout('SCHEDULE_TO_CLOSE', undefined, providerDown)))).toBeUndefined();
  });

  it("when the activity raised an error (a model provider's timeout or 503), then it is the judge's own", () => {
    for (const type of ['ModelTimeout', 'ModelServerError', 'ModelRateLimited', 'ArtifactMissing']) {
      const raised = ApplicationFailure.create({ message: `${type} from the provider`, type });
      expect(infrastructureLoss(activityFailure(raised))).toBeUndefined();
    }
    expect(infrastructureLoss(activityFailure(new CancelledFailure('cancelled')))).toBeUndefined();
    expect(infrastructureLoss(new Error('boom'))).toBeUndefined();
    expect(infrastructureLoss(undefined)).toBeUndefined();
  });
});

const pass = (judge: JudgeId, score = 1): JudgeVerdict => ({
  judge_id: judge,
  version: 'test@1',
  verdict: 'pass',
  score,
  reasons: [`${judge} passes`],
  violations: [],
  evidence: [],
});
const allPass = (): JudgeVerdict[] => JUDGE_IDS.map((id) => pass(id));
const lost = (judge: JudgeId) => lostVerdict(judge, `no worker answered for the ${judge} judge`);

describe('consensus with a vote lost to infrastructure', () => {
  it('when the constitutional vote is lost, then every strategy escalates, naming infrastructure, never rejects', () => {
    const votes = [lost('constitutional'), ...allPass().slice(1)];
    expect(JudgeVerdictSchema.parse(votes[0])).toEqual(votes[0]);
    for (const strategy of CONSENSUS_STRATEGIES) {
      const outcome = decide(votes, { tier: 1, strategy, round: 0 });
      expect(outcome).toMatchObject({ kind: 'escalate', cause: 'infrastructure' });
      if (outcome.kind === 'escalate') {
        expect(outcome.reason).toMatch(/constitutional \(no worker answered.*escalated, not rejected/);
      }
    }
  });

  it('when the same judge is uncertain on its own, then the council still fails closed (unchanged)', () => {
    const votes = [uncertainVerdict('constitutional', 'model timed out'), ...allPass().slice(1)];
    const outcome = decide(votes, { tier: 3, strategy: 'weighted', round: 0 });
    expect(outcome.kind === 'final' && outcome.verdict.decision).toBe('reject');
  });

  it('when a non-veto vote is lost and the others would accept, then it escalates rather than accept without it', () => {
    const votes = [...allPass().slice(0, 3), lost('integration')];
    expect(decide(votes, { tier: 3, strategy: 'weighted', round: 0 })).toMatchObject({
      kind: 'escalate',
      cause: 'infrastructure',
    });
  });

  it('when a judge that answered vetoes, then the lost vote changes nothing: the council rejects', () => {
    const critical = {
      ...pass('technical'),
      violations: [{ rule_id: 'secrets.aws-key', severity: 'critical' as const, waivable: false, message: 'a key' }],
    };
    const byCritical = decide([lost('constitutional'), critical, pass('quality'), pass('integration')], {
      tier: 3,
      strategy: 'weighted',
      round: 0,
    });
    expect(byCritical.kind === 'final' && byCritical.verdict.decision).toBe('reject');

    const constitutionalFails = { ...pass('constitutional', 0.2), verdict: 'fail' as const };
    const byVeto = decide([constitutionalFails, lost('technical'), pass('quality'), pass('integration')], {
      tier: 3,
      strategy: 'weighted',
      round: 0,
    });
    expect(byVeto.kind === 'final' && byVeto.verdict.decision).toBe('reject');
  });
});
