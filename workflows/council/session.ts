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
  maxRounds?: number;
}

/** What one judge activity receives. */
export type JudgeRequest = Omit<CouncilRequest, 'task' | 'strategy' | 'consensusTimeoutMs' | 'maxRounds'> & {
  judgeId: JudgeId;
  dissent?: Dissent[];
};

/** Model tokens and cost the judges spent (zero offline). */
export interface CouncilUsage {
  tokens: number;
  costUsd: number;
}

export type CouncilOutcome =
  | { kind: 'final'; record: VerdictRecord; usage: CouncilUsage }
  | { kind: 'escalate'; sessionId: string; reason: string; score: number; votes: JudgeVerdict[]; usage: CouncilUsage };

export interface CouncilSession {
  sessionId: string;
  taskId: string;
  phase: 'plan' | 'result';
  tier: RiskTier;
  strategy: ConsensusStrategy;
  status: 'deliberating' | 'decided' | 'escalated';
  rounds: JudgeVerdict[][];
  outcome?: CouncilOutcome;
}

export const sessionQuery = defineQuery<CouncilSession>('session');

export function councilSessionId(parentWorkflowId: string, phase: 'plan' | 'result', n: number): string {
  return `${parentWorkflowId}-council-${phase}-${n}`;
}
