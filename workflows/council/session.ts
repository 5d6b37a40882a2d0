/** Contracts of the councilDeliberation child workflow (one council session). Workflow-safe. */
import { defineQuery } from '@temporalio/workflow';
import type { ArtifactRef, TaskRef, VerdictRecord } from '../task/definitions.js';
import type { RiskTier, WorkingSpec } from '../task/spec.js';
import type { ActiveWaiver, ConsensusStrategy, Dissent, GateStatus, JudgeId, JudgeVerdict } from './definitions.js';

export interface CouncilRequest {
  task: TaskRef;
  phase: 'plan' | 'result';
  tier: RiskTier;
  strategy: ConsensusStrategy;
  spec: WorkingSpec;
  /** Result phase: the diff, by reference (claim check: large diffs never travel through workflow history). */
  diffRef?: ArtifactRef;
  plannedFiles?: string[];
  commands: string[][];
  budget: { maxFiles: number; maxLoc: number };
  gates: GateStatus[];
  activeWaivers: ActiveWaiver[];
  /** Hash of what is judged (the plan or the diff): bound into the signed verdict. */
  subjectHash: string;
  consensusTimeoutMs: number;
  /**
   * A vote's hand-over time: how long it may wait for a worker, or go without a heartbeat, before it is asked again on
   * another worker (COUNCIL_JUDGE_HANDOVER). Unset (requests from before it existed): DEFAULT_JUDGE_HANDOVER_MS.
   */
  judgeHandoverMs?: number;
  maxRounds?: number;
}

/** What one judge activity receives. */
export type JudgeRequest = Omit<
  CouncilRequest,
  'task' | 'strategy' | 'consensusTimeoutMs' | 'judgeHandoverMs' | 'maxRounds'
> & {
  judgeId: JudgeId;
  dissent?: Dissent[];
};

/** Model tokens and cost the judges spent (zero offline). */
export interface CouncilUsage {
  tokens: number;
  costUsd: number;
}

export type CouncilOutcome =
  | {
      kind: 'final';
      record: VerdictRecord;
      usage: CouncilUsage;
      /** The plan the planner revised on the dissent between rounds, which the verdict is on (plan phase, model). */
      revised?: { spec: WorkingSpec; planHash: string };
    }
  | {
      kind: 'escalate';
      sessionId: string;
      reason: string;
      score: number;
      votes: JudgeVerdict[];
      usage: CouncilUsage;
      /** `infrastructure`: a vote was lost to workers, not decided by a judge (the votes say which: `unavailable`). */
      cause?: 'infrastructure';
    };

export interface CouncilSession {
  sessionId: string;
  taskId: string;
  phase: 'plan' | 'result';
  tier: RiskTier;
  strategy: ConsensusStrategy;
  status: 'deliberating' | 'decided' | 'escalated';
  rounds: JudgeVerdict[][];
  /** The hash of the plan or diff each round judged (a revised plan has a new one). */
  plans?: string[];
  outcome?: CouncilOutcome;
}

export const sessionQuery = defineQuery<CouncilSession>('session');

export function councilSessionId(parentWorkflowId: string, phase: 'plan' | 'result', n: number): string {
  return `${parentWorkflowId}-council-${phase}-${n}`;
}
