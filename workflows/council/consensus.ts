/**
 * Consensus of the council (CAWS.md, "Council"): from the judges' verdicts to accept, reject or modify, another
 * revise round, or an escalation to a person. Pure and workflow-safe: no clock, no randomness, and the result does
 * not depend on the order of the votes.
 *
 * Rules, applied in this order for every strategy:
 * 1. Votes are put in council order (constitutional, technical, quality, integration). A judge without a vote counts
 *    as `uncertain` with score 0 (`uncertainVerdict`). A judge with several votes counts with its most conservative
 *    one (fail before uncertain before pass, then the lower score).
 * 2. Veto → reject: a `critical` violation in any vote (duplicates included), or a veto judge (constitutional) whose
 *    verdict is `fail` or `uncertain` — an errored or timed-out veto judge fails closed. A vote lost to infrastructure
 *    (`lostVerdict`: no worker answered for the judge within the round) is no judge's doubt and vetoes nothing.
 * 2b. A vote lost to infrastructure → escalate to a person (cause `infrastructure`), never reject: the missing vote
 *    could have gone either way. Only a veto by a judge that did answer (rule 2) rejects regardless of it.
 * 3. The strategy decides:
 *    - weighted (default): see `weightedScore`. With T = 0.8 at tier 1 and 0.6 at tiers 2–3:
 *      score ≥ T and no judge voted `fail` → accept;
 *      score > 0.5 otherwise (below T, or at/above T with a `fail` vote) → the revise band: another round while
 *      rounds remain, then `modify` with remediation built from the violations;
 *      score < 0.5 → reject;
 *      score exactly 0.5 → tie-break.
 *    - majority: more than half of the judges pass → accept; more than half do not pass (fail or uncertain) → reject;
 *      an even split (2–2) → tie-break.
 *    - unanimous: every judge passes → accept; otherwise another round while rounds remain, then reject.
 * 4. Tie-break, in order, never random: consensus (every judge gave the same verdict: pass → the revise band,
 *    fail → reject, uncertain → escalate), then majority (more than half pass → the revise band, more than half do not
 *    pass → reject), else escalate to a person.
 *
 * Rounds: `round` counts the revise rounds already held (0 on the first vote); another round is allowed while
 * `round < maxRounds` (default 2), so there are at most two revise rounds and three votes.
 */
import {
  JUDGE_IDS,
  JUDGES,
  SEVERITIES,
  type ConsensusStrategy,
  type Dissent,
  type FinalVerdict,
  type JudgeId,
  type JudgeVerdict,
  type Verdict,
  type Violation,
} from './definitions.js';
import type { RiskTier } from '../task/spec.js';

/** Weighted score at or above which the council accepts, by risk tier (1 is the most critical). */
export const ACCEPT_THRESHOLD: Readonly<Record<RiskTier, number>> = { 1: 0.8, 2: 0.6, 3: 0.6 };
export const DEFAULT_MAX_ROUNDS = 2;
/** The score at which the weighted strategy is tied between reject (below) and the revise band (above). */
export const TIE_SCORE = 0.5;

export interface ConsensusOptions {
  tier: RiskTier;
  strategy: ConsensusStrategy;
  /** Revise rounds already held: 0 on the first vote. */
  round: number;
  /** Revise rounds allowed; 2 unless given. */
  maxRounds?: number;
}

export type ConsensusOutcome =
  | { kind: 'final'; verdict: FinalVerdict }
  | { kind: 'revise'; dissent: Dissent[]; score: number }
  | { kind: 'escalate'; reason: string; score: number; cause?: 'infrastructure' };

export const UNAVAILABLE_JUDGE_VERSION = 'unavailable';

/** The verdict that stands in for a judge that errored, timed out or never answered. */
export function uncertainVerdict(judgeId: JudgeId, reason: string): JudgeVerdict {
  return {
    judge_id: judgeId,
    version: UNAVAILABLE_JUDGE_VERSION,
    verdict: 'uncertain',
    score: 0,
    reasons: [reason],
    violations: [],
    evidence: [],
  };
}

/**
 * The stand-in for a vote that no worker delivered within the round (see handover.ts): uncertain, score 0, and marked
 * `unavailable: 'infrastructure'`, so that it escalates instead of vetoing.
 */
export function lostVerdict(judgeId: JudgeId, reason: string): JudgeVerdict {
  return { ...uncertainVerdict(judgeId, reason), unavailable: 'infrastructure' };
}

const VERDICT_RANK: Record<Verdict, number> = { fail: 0, uncertain: 1, pass: 2 };
const SEVERITY_RANK = Object.fromEntries(SEVERITIES.map((s, i) => [s, i])) as Record<Violation['severity'], number>;

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

/**
 * The weighted score: Σ weight(j) · credit(j) / Σ weight(j) over the four judges, where credit is the judge's score
 * for `pass`, half its score for `uncertain` and 0 for `fail`. So an uncertain judge never counts as a full pass, and
 * a failing judge counts as nothing whatever its score. Summed in council order and rounded to 6 decimals, so the
 * result is the same for any order of the votes and free of floating-point noise at the thresholds.
 */
export function weightedScore(votes: readonly JudgeVerdict[]): number {
  const ordered = normaliseVotes(votes);
  let total = 0;
  let weights = 0;
  for (const v of ordered) {
    const weight = JUDGES[v.judge_id].weight;
    const credit = v.verdict === 'pass' ? v.score : v.verdict === 'uncertain' ? 0.5 * v.score : 0;
    total += weight * credit;
    weights += weight;
  }
  return weights === 0 ? 0 : round6(total / weights);
}

/** The most conservative vote first; a full tie is broken by the vote's JSON, so the choice never depends on order. */
function compareConservative(a: JudgeVerdict, b: JudgeVerdict): number {
  const byVerdict = VERDICT_RANK[a.verdict] - VERDICT_RANK[b.verdict];
  if (byVerdict !== 0) return byVerdict;
  if (a.score !== b.score) return a.score - b.score;
  const [ja, jb] = [JSON.stringify(a), JSON.stringify(b)];
  return ja < jb ? -1 : ja > jb ? 1 : 0;
}

/** One vote per judge, in council order (rule 1 above). */
export function normaliseVotes(votes: readonly JudgeVerdict[]): JudgeVerdict[] {
  return JUDGE_IDS.map((id) => {
    const own = votes.filter((v) => v.judge_id === id).sort(compareConservative);
    return own[0] ?? uncertainVerdict(id, 'no verdict received');
  });
}

/** `[severity] rule_id: message (file:line)`, the one-line form used in reasons, dissent and remediation. */
export function violationText(v: Violation): string {
  const where = v.file ? ` (${v.file}${v.line !== undefined ? `:${v.line}` : ''})` : '';
  return `[${v.severity}] ${v.rule_id}: ${v.message}${where}`;
}

function unique(items: readonly string[]): string[] {
  return [...new Set(items)];
}

/** Judges that did not pass, or passed below the threshold, with their reasons and violations. */
function dissentOf(votes: readonly JudgeVerdict[], threshold: number): Dissent[] {
  return votes
    .filter((v) => v.verdict !== 'pass' || v.score < threshold)
    .map((v) => {
      const reasons = unique([
        ...v.reasons,
        ...v.violations.filter((x) => x.severity !== 'info').map((x) => violationText(x)),
      ]);
      return {
        judge_id: v.judge_id,
        reasons: reasons.length ? reasons : [`${v.verdict} with score ${v.score}`],
      };
    });
}

/** Non-info violations, most severe first, then council order, rule id, file and line. */
function remediationOf(votes: readonly JudgeVerdict[]): string[] {
  const all = votes.flatMap((vote) =>
    vote.violations
      .filter((v) => v.severity !== 'info')
      .map((v) => ({ v, judge: JUDGE_IDS.indexOf(vote.judge_id), text: `${violationText(v)} [${vote.judge_id}]` })),
  );
  all.sort(
    (a, b) =>
      SEVERITY_RANK[b.v.severity] - SEVERITY_RANK[a.v.severity] ||
      a.judge - b.judge ||
      (a.text < b.text ? -1 : a.text > b.text ? 1 : 0),
  );
  return unique(all.map((x) => x.text));
}

function criticalRuleIds(votes: readonly JudgeVerdict[]): string[] {
  return votes.flatMap((vote) => vote.violations.filter((v) => v.severity === 'critical').map((v) => v.rule_id));
}

function constitutionalRefs(ordered: readonly JudgeVerdict[], allVotes: readonly JudgeVerdict[]): string[] {
  const own = ordered
    .filter((v) => v.judge_id === 'constitutional')
    .flatMap((v) => v.violations.filter((x) => x.severity !== 'info').map((x) => x.rule_id));
  return unique([...own, ...criticalRuleIds(allVotes)]).sort();
}

type Side = 'pass' | 'fail' | 'escalate';

/** Tie-break (rule 4): consensus, then majority, else escalate. */
function tieBreak(ordered: readonly JudgeVerdict[]): { side: Side; reason: string } {
  const verdicts = ordered.map((v) => v.verdict);
  if (verdicts.every((v) => v === verdicts[0])) {
    const all = verdicts[0];
    if (all === 'pass') return { side: 'pass', reason: 'every judge passed' };
    if (all === 'fail') return { side: 'fail', reason: 'every judge failed' };
    return { side: 'escalate', reason: 'every judge was uncertain' };
  }
  const passing = ordered.filter((v) => v.verdict === 'pass').map((v) => v.judge_id);
  const others = ordered.filter((v) => v.verdict !== 'pass').map((v) => v.judge_id);
  if (passing.length * 2 > ordered.length) return { side: 'pass', reason: `majority passed (${passing.join(', ')})` };
  if (others.length * 2 > ordered.length)
    return { side: 'fail', reason: `majority did not pass (${others.join(', ')})` };
  return {
    side: 'escalate',
    reason: `no consensus and no majority: passed ${passing.join(', ')}; did not pass ${others.join(', ')}`,
  };
}

/** Decides on one round of votes; see the rules at the top of this module. */
export function decide(votes: readonly JudgeVerdict[], opts: ConsensusOptions): ConsensusOutcome {
  const maxRounds = opts.maxRounds ?? DEFAULT_MAX_ROUNDS;
  const threshold = ACCEPT_THRESHOLD[opts.tier];
  const ordered = normaliseVotes(votes);
  const score = weightedScore(ordered);
  const roundsLeft = opts.round < maxRounds;

  const final = (decision: FinalVerdict['decision'], extraRemediation: string[] = []): ConsensusOutcome => {
    const dissent = dissentOf(ordered, threshold);
    let remediation = unique([...extraRemediation, ...remediationOf(ordered)]);
    if (decision === 'modify' && remediation.length === 0) {
      remediation = dissent.flatMap((d) => d.reasons.map((r) => `${d.judge_id}: ${r}`));
    }
    return {
      kind: 'final',
      verdict: {
        decision,
        score,
        votes: ordered.map((v) => ({
          judge_id: v.judge_id,
          weight: JUDGES[v.judge_id].weight,
          verdict: v.verdict,
          score: v.score,
        })),
        dissent,
        remediation,
        constitutional_refs: constitutionalRefs(ordered, votes),
        escalated: false,
        rounds: opts.round + 1,
      },
    };
  };
  const reviseBand = (): ConsensusOutcome =>
    roundsLeft ? { kind: 'revise', dissent: dissentOf(ordered, threshold), score } : final('modify');

  // 2. Vetoes.
  const critical = unique(criticalRuleIds(votes)).sort();
  if (critical.length) return final('reject', [`vetoed by critical violations: ${critical.join(', ')}`]);
  const vetoing = ordered.filter((v) => JUDGES[v.judge_id].veto && v.verdict !== 'pass' && !v.unavailable);
  if (vetoing.length) {
    return final(
      'reject',
      vetoing.map(
        (v) => `vetoed: ${v.judge_id} judge ${v.verdict === 'fail' ? 'failed' : 'was uncertain (fails closed)'}`,
      ),
    );
  }

  // 2b. Votes lost to infrastructure.
  const lost = ordered.filter((v) => v.unavailable === 'infrastructure');
  if (lost.length) {
    const which = lost.map((v) => `${v.judge_id} (${v.reasons.join('; ')})`).join(', ');
    return {
      kind: 'escalate',
      cause: 'infrastructure',
      reason: `votes lost to infrastructure, not the judges' answers: ${which}; escalated, not rejected`,
      score,
    };
  }

  // 3. Strategy.
  const passes = ordered.filter((v) => v.verdict === 'pass').length;
  switch (opts.strategy) {
    case 'unanimous':
      if (passes === ordered.length) return final('accept');
      return roundsLeft ? reviseBand() : final('reject');
    case 'majority': {
      if (passes * 2 > ordered.length) return final('accept');
      if (passes * 2 < ordered.length) return final('reject');
      const tie = tieBreak(ordered);
      return { kind: 'escalate', reason: `majority vote tied: ${tie.reason}`, score };
    }
    case 'weighted': {
      const anyFail = ordered.some((v) => v.verdict === 'fail');
      if (score >= threshold && !anyFail) return final('accept');
      if (score > TIE_SCORE) return reviseBand();
      if (score < TIE_SCORE) return final('reject');
      const tie = tieBreak(ordered);
      if (tie.side === 'pass') return reviseBand();
      if (tie.side === 'fail') return final('reject', [`weighted score tied at ${TIE_SCORE}: ${tie.reason}`]);
      return { kind: 'escalate', reason: `weighted score tied at ${TIE_SCORE}: ${tie.reason}`, score };
    }
  }
}
