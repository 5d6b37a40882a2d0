import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide, normaliseVotes, uncertainVerdict, weightedScore } from '../../workflows/council/consensus.js';
import {
  CONSENSUS_STRATEGIES,
  FinalVerdictSchema,
  JUDGE_IDS,
  JudgeVerdictSchema,
  SEVERITIES,
  type JudgeId,
  type JudgeVerdict,
  type Verdict,
  type Violation,
} from '../../workflows/council/definitions.js';

function vote(judge: JudgeId, verdict: Verdict, score: number, violations: Violation[] = []): JudgeVerdict {
  return {
    judge_id: judge,
    version: 'test@1',
    verdict,
    score,
    reasons: [`${judge} says ${verdict}`],
    violations,
    evidence: [{ type: 'static_check', ref: 'diff', summary: 'checked' }],
  };
}

const allPass = (score = 1): JudgeVerdict[] => JUDGE_IDS.map((id) => vote(id, 'pass', score));

describe('council consensus', () => {
  it('when all four judges pass with full scores, then the council accepts with score 1', () => {
    const outcome = decide(allPass(), { tier: 1, strategy: 'weighted', round: 0 });
    expect(outcome.kind).toBe('final');
    if (outcome.kind !== 'final') return;
    expect(outcome.verdict.decision).toBe('accept');
    expect(outcome.verdict.score).toBe(1);
    expect(outcome.verdict.rounds).toBe(1);
    expect(outcome.verdict.escalated).toBe(false);
    expect(outcome.verdict.votes.map((v) => [v.judge_id, v.weight])).toEqual([
      ['constitutional', 0.4],
      ['technical', 0.2],
      ['quality', 0.2],
      ['integration', 0.2],
    ]);
    expect(FinalVerdictSchema.parse(outcome.verdict)).toEqual(outcome.verdict);
  });

  it('when the weighted score is exactly 0.8 at tier 1, then it accepts, and just below it revises', () => {
    const at = [
      vote('constitutional', 'pass', 1),
      vote('technical', 'pass', 0.8),
      vote('quality', 'pass', 0.7),
      vote('integration', 'pass', 0.5),
    ];
    expect(weightedScore(at)).toBe(0.8);
    const accepted = decide(at, { tier: 1, strategy: 'weighted', round: 0 });
    expect(accepted.kind === 'final' && accepted.verdict.decision).toBe('accept');

    const below = [...at.slice(0, 3), vote('integration', 'pass', 0.45)];
    expect(weightedScore(below)).toBe(0.79);
    expect(decide(below, { tier: 1, strategy: 'weighted', round: 0 }).kind).toBe('revise');
    // The same score clears the lower bar of tiers 2 and 3.
    const tier2 = decide(below, { tier: 2, strategy: 'weighted', round: 0 });
    expect(tier2.kind === 'final' && tier2.verdict.decision).toBe('accept');
  });

  it('when one judge reports a critical violation, then the council rejects despite a high score', () => {
    const votes = allPass();
    votes[1] = vote('technical', 'pass', 1, [
      { rule_id: 'commands.curl-pipe-shell', severity: 'critical', waivable: false, message: 'curl | sh' },
    ]);
    expect(weightedScore(votes)).toBe(1);
    const outcome = decide(votes, { tier: 3, strategy: 'weighted', round: 0 });
    expect(outcome.kind).toBe('final');
    if (outcome.kind !== 'final') return;
    expect(outcome.verdict.decision).toBe('reject');
    expect(outcome.verdict.constitutional_refs).toContain('commands.curl-pipe-shell');
    expect(outcome.verdict.remediation[0]).toMatch(/vetoed by critical violations: commands.curl-pipe-shell/);
  });

  it('when the constitutional judge is uncertain (it timed out), then the council fails closed and rejects', () => {
    const votes = [uncertainVerdict('constitutional', 'timed out after 5 s'), ...allPass().slice(1)];
    for (const strategy of CONSENSUS_STRATEGIES) {
      const outcome = decide(votes, { tier: 3, strategy, round: 0 });
      expect(outcome.kind === 'final' && outcome.verdict.decision).toBe('reject');
      if (outcome.kind === 'final') {
        expect(outcome.verdict.dissent).toEqual([{ judge_id: 'constitutional', reasons: ['timed out after 5 s'] }]);
      }
    }
  });

  it('when the constitutional judge fails, then the council rejects even though the score clears tier 3', () => {
    const votes = [vote('constitutional', 'fail', 0.6), ...allPass().slice(1)];
    const outcome = decide(votes, { tier: 3, strategy: 'weighted', round: 0 });
    expect(weightedScore(votes)).toBe(0.6);
    expect(outcome.kind === 'final' && outcome.verdict.decision).toBe('reject');
  });

  it('when the score sits between 0.5 and the threshold, then two revise rounds carry the dissent, then modify', () => {
    const medium: Violation = {
      rule_id: 'complexity.large-file-change',
      severity: 'medium',
      waivable: true,
      message: '600 lines changed in one file',
      file: 'src/big.ts',
    };
    const votes = [
      vote('constitutional', 'pass', 1),
      vote('technical', 'pass', 0.6, [medium]),
      vote('quality', 'pass', 0.6),
      vote('integration', 'uncertain', 0.8),
    ];
    expect(weightedScore(votes)).toBe(0.72);

    const first = decide(votes, { tier: 1, strategy: 'weighted', round: 0 });
    expect(first.kind).toBe('revise');
    if (first.kind !== 'revise') return;
    expect(first.dissent.map((d) => d.judge_id)).toEqual(['technical', 'quality', 'integration']);
    expect(first.dissent[0]?.reasons).toContain(
      '[medium] complexity.large-file-change: 600 lines changed in one file (src/big.ts)',
    );
    expect(first.dissent[2]?.reasons).toEqual(['integration says uncertain']);

    expect(decide(votes, { tier: 1, strategy: 'weighted', round: 1 }).kind).toBe('revise');
    const last = decide(votes, { tier: 1, strategy: 'weighted', round: 2 });
    expect(last.kind).toBe('final');
    if (last.kind !== 'final') return;
    expect(last.verdict.decision).toBe('modify');
    expect(last.verdict.rounds).toBe(3);
    expect(last.verdict.remediation).toEqual([
      '[medium] complexity.large-file-change: 600 lines changed in one file (src/big.ts) [technical]',
    ]);
  });

  it('when a judge fails but the score still clears the threshold, then the council does not accept outright', () => {
    const votes = [...allPass().slice(0, 3), vote('integration', 'fail', 0.9)];
    expect(weightedScore(votes)).toBe(0.8);
    expect(decide(votes, { tier: 2, strategy: 'weighted', round: 0 }).kind).toBe('revise');
    const exhausted = decide(votes, { tier: 2, strategy: 'weighted', round: 2 });
    expect(exhausted.kind === 'final' && exhausted.verdict.decision).toBe('modify');
  });

  it('when the weighted score is exactly 0.5 and the judges split 2–2, then the council escalates to a person', () => {
    const votes = [
      vote('constitutional', 'pass', 1),
      vote('technical', 'pass', 0.5),
      vote('quality', 'fail', 0.9),
      vote('integration', 'fail', 0.9),
    ];
    expect(weightedScore(votes)).toBe(0.5);
    const outcome = decide(votes, { tier: 2, strategy: 'weighted', round: 0 });
    expect(outcome).toEqual({
      kind: 'escalate',
      score: 0.5,
      reason:
        'weighted score tied at 0.5: no consensus and no majority: passed constitutional, technical; did not pass quality, integration',
    });
  });

  it('when the weighted score is exactly 0.5 and three judges pass, then the majority breaks the tie towards revise', () => {
    const votes = [
      vote('constitutional', 'pass', 0.75),
      vote('technical', 'pass', 0.5),
      vote('quality', 'pass', 0.5),
      vote('integration', 'fail', 1),
    ];
    expect(weightedScore(votes)).toBe(0.5);
    expect(decide(votes, { tier: 2, strategy: 'weighted', round: 0 }).kind).toBe('revise');
  });

  it('when the score is below 0.5, then the council rejects without another round', () => {
    const votes = [vote('constitutional', 'pass', 1), ...JUDGE_IDS.slice(1).map((id) => vote(id, 'fail', 1))];
    const outcome = decide(votes, { tier: 3, strategy: 'weighted', round: 0 });
    expect(outcome.kind === 'final' && outcome.verdict.decision).toBe('reject');
  });

  it('when the strategy is majority, then three passes accept, a 2–2 split escalates and one pass rejects', () => {
    const opts = { tier: 1, strategy: 'majority', round: 0 } as const;
    const three = [...allPass(0.3).slice(0, 3), vote('integration', 'fail', 0)];
    const accepted = decide(three, opts);
    expect(accepted.kind === 'final' && accepted.verdict.decision).toBe('accept');

    const split = [...allPass().slice(0, 2), vote('quality', 'fail', 0), uncertainVerdict('integration', 'crashed')];
    const escalated = decide(split, opts);
    expect(escalated.kind).toBe('escalate');
    if (escalated.kind === 'escalate') expect(escalated.reason).toMatch(/^majority vote tied/);

    const one = [vote('constitutional', 'pass', 1), ...JUDGE_IDS.slice(1).map((id) => vote(id, 'fail', 0))];
    const rejected = decide(one, opts);
    expect(rejected.kind === 'final' && rejected.verdict.decision).toBe('reject');
  });

  it('when the strategy is unanimous, then all passes accept and a single dissent revises, then rejects', () => {
    const low = decide(allPass(0.3), { tier: 1, strategy: 'unanimous', round: 0 });
    expect(low.kind === 'final' && low.verdict.decision).toBe('accept');

    const votes = [...allPass().slice(0, 3), vote('integration', 'uncertain', 1)];
    const first = decide(votes, { tier: 3, strategy: 'unanimous', round: 0 });
    expect(first.kind).toBe('revise');
    if (first.kind === 'revise') expect(first.dissent.map((d) => d.judge_id)).toEqual(['integration']);
    const last = decide(votes, { tier: 3, strategy: 'unanimous', round: 2 });
    expect(last.kind === 'final' && last.verdict.decision).toBe('reject');
  });

  it('when a judge sent no verdict, then it counts as uncertain with score 0', () => {
    const votes = allPass().filter((v) => v.judge_id !== 'quality');
    const normalised = normaliseVotes(votes);
    expect(normalised[2]).toEqual(uncertainVerdict('quality', 'no verdict received'));
    expect(weightedScore(votes)).toBe(0.8);
  });

  it('when a judge votes twice, then its most conservative vote counts', () => {
    const votes = [...allPass(), vote('technical', 'fail', 0.9)];
    expect(normaliseVotes(votes)[1]?.verdict).toBe('fail');
  });

  it('when a judge errors, then uncertainVerdict builds a schema-valid uncertain verdict', () => {
    const v = uncertainVerdict('technical', 'activity failed: boom');
    expect(JudgeVerdictSchema.parse(v)).toEqual(v);
    expect(v).toMatchObject({ verdict: 'uncertain', score: 0, reasons: ['activity failed: boom'] });
  });

  it('when a passing vote turns uncertain, then the weighted score drops (uncertain is never a full pass)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...JUDGE_IDS),
        fc.integer({ min: 1, max: 100 }).map((n) => n / 100),
        (judge, score) => {
          const before = allPass().map((v) => (v.judge_id === judge ? vote(judge, 'pass', score) : v));
          const after = allPass().map((v) => (v.judge_id === judge ? vote(judge, 'uncertain', score) : v));
          expect(weightedScore(after)).toBeLessThan(weightedScore(before));
        },
      ),
    );
  });

  it('when the votes come in any order, then the outcome is identical (fast-check over permutations)', () => {
    const violation = fc.record({
      rule_id: fc.constantFrom('secret.aws-access-key', 'scope.outside-in', 'debug-logging', 'tests.failed'),
      severity: fc.constantFrom(...SEVERITIES),
      waivable: fc.boolean(),
      message: fc.constantFrom('a', 'b'),
    });
    const judgeVote = fc
      .record({
        judge: fc.constantFrom(...JUDGE_IDS),
        verdict: fc.constantFrom<Verdict>('pass', 'fail', 'uncertain'),
        // Multiples of 0.05 reach the exact thresholds and ties often.
        score: fc.integer({ min: 0, max: 20 }).map((n) => n / 20),
        violations: fc.array(violation, { maxLength: 2 }),
      })
      .map(({ judge, verdict, score, violations }) => vote(judge, verdict, score, violations));
    const votesAndPermutation = fc
      .array(judgeVote, { minLength: 0, maxLength: 6 })
      .chain((votes) =>
        fc.tuple(fc.constant(votes), fc.shuffledSubarray(votes, { minLength: votes.length, maxLength: votes.length })),
      );
    const options = fc.record({
      tier: fc.constantFrom(1 as const, 2 as const, 3 as const),
      strategy: fc.constantFrom(...CONSENSUS_STRATEGIES),
      round: fc.integer({ min: 0, max: 3 }),
    });
    fc.assert(
      fc.property(votesAndPermutation, options, ([votes, shuffled], opts) => {
        expect(decide(shuffled, opts)).toEqual(decide(votes, opts));
      }),
      { numRuns: 500 },
    );
  });
});
