/**
 * Contracts of the tool layer (MCP) as the workflows see them: security levels, how a spec step becomes a tool call,
 * a step's binding to a registered tool, conflicts, and the plan-time result. Workflow-safe: no I/O.
 */
import type { SpecStep } from '../task/spec.js';
import type { SignedDecision } from '../task/decision-proof.js';

export const SECURITY_LEVELS = ['read-only', 'standard', 'privileged'] as const;
export type SecurityLevel = (typeof SECURITY_LEVELS)[number];

export function levelRank(level: SecurityLevel): number {
  return SECURITY_LEVELS.indexOf(level);
}

/** What a step asks of the tool layer: capabilities, and for the built-in step kinds the tool's name. */
export interface ToolRequest {
  capabilities: string[];
  tool?: string;
  server?: string;
  arguments: Record<string, unknown>;
  /** A command step's own time limit. */
  timeoutSeconds?: number;
}

/**
 * The spec's step kinds are calls of the workspace tools (mcp/workspace-server): write_file → write_file,
 * replace → apply_patch, command → run_command; a `tool` step names capabilities and arguments directly.
 */
export function toolRequestOf(step: SpecStep): ToolRequest {
  switch (step.kind) {
    case 'write_file':
      return { capabilities: ['fs.write'], tool: 'write_file', arguments: { path: step.path, content: step.content } };
    case 'replace':
      return {
        capabilities: ['fs.edit'],
        tool: 'apply_patch',
        arguments: { path: step.path, edits: [{ old_text: step.find, new_text: step.replace }] },
      };
    case 'command':
      return {
        capabilities: ['process.exec'],
        tool: 'run_command',
        arguments: { argv: step.run, ...(step.timeout_seconds ? { timeout_seconds: step.timeout_seconds } : {}) },
        timeoutSeconds: step.timeout_seconds,
      };
    case 'tool':
      return { capabilities: step.capabilities, tool: step.tool, server: step.server, arguments: step.arguments };
  }
}

/** The registered tool a step will call, chosen by the coordinator. */
export interface ToolBinding {
  serverId: string;
  tool: string;
  level: SecurityLevel;
  /** The registry's timeout for this server: the call's (and its activity's) time limit. */
  timeoutMs: number;
  maxOutputBytes: number;
  /** The tool's level is above what the task may use: the call needs a person's approval of these exact arguments. */
  needsApproval: boolean;
  /** sha256 of the canonical JSON of the arguments: what an approval is bound to. */
  argsSha256: string;
  /** sha256 of approvalKey(): the hash a person approves when this call waits for them during execution. */
  approvalHash: string;
  /** Other tools with the same capabilities (read-only steps are cross-checked against the first). */
  alternates: { serverId: string; tool: string }[];
}

/** `server/tool/argsSha256`: the key an approved privileged call is listed under. */
export function approvalKey(b: Pick<ToolBinding, 'serverId' | 'tool' | 'argsSha256'>): string {
  return `${b.serverId}/${b.tool}/${b.argsSha256}`;
}

/** Two steps that edit the same file region, or two tools that disagree: detected, recorded, resolved or escalated. */
export interface ToolConflict {
  kind: 'edit_overlap' | 'overwrite' | 'tool_disagreement';
  steps: number[];
  path?: string;
  evidence: string;
  resolution: 'ordering' | 'three_way_merge' | 'priority' | 'escalated';
  detail: string;
}

/** What the coordinator returns for a plan: each step's binding, conflicts, and the steps to run (after merges). */
export interface ToolPlan {
  steps: SpecStep[];
  bindings: ToolBinding[];
  conflicts: ToolConflict[];
  /** Privileged calls a person must approve; the hash binds the plan and these exact arguments. */
  approval?: { hash: string; calls: { step: number; key: string; serverId: string; tool: string }[] };
}

/** What the task's policy allows, and the privileged calls a person approved. */
export interface ToolGrant {
  allowedLevel: SecurityLevel;
  approvedCalls: string[];
}

/** A tool the agent loop may call, as the model is shown it. */
export interface AgentToolInfo {
  server: string;
  tool: string;
  description: string;
  capabilities: string[];
  level: SecurityLevel;
  /** Calling it waits for a person's approval of the exact arguments. */
  needsApproval: boolean;
}

/** The execution child asks its parent for a person's decision on one privileged call (agent turns). */
export interface ToolApprovalRequest {
  executionId: string;
  step: number;
  key: string;
  serverId: string;
  tool: string;
  level: SecurityLevel;
  argsSha256: string;
  approvalHash: string;
}

export interface ToolApprovalDecision {
  key: string;
  approved: boolean;
  by: string;
  reason?: string;
  /** The person's signed decision (task/decision-proof.ts): an approval without one is refused by the child. */
  proof?: SignedDecision;
}
