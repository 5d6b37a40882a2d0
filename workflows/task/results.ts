/**
 * How an execution child's result becomes part of the task's result, and how its gate evaluations are put to the
 * council and to the person reading the reason. Pure functions; workflow-safe.
 */
import type { GateStatus } from '../council/definitions.js';
import type { ExecutionResult } from '../execution/definitions.js';
import type { GateOutcome, TaskResult } from './definitions.js';
import { trustScore, type GateEvaluation } from './policy.js';
import type { Gate } from './spec.js';

/**
 * The task's result after its `n`-th execution (a new object; `result` is not changed): the steps add up, the
 * iterations too; the gates, evaluations, trust score, usage (the child's count includes the parent's) and diff are
 * the latest; the diff and every gate log are kept as artifacts named after the execution.
 */
export function mergeExecution(result: TaskResult, exec: ExecutionResult, n: number): TaskResult {
  const measured = (kind: string) => exec.gates.find((g) => g.kind === kind);
  const named = (name: string) => exec.gates.find((g) => g.name === name);
  return {
    ...result,
    steps: [...result.steps, ...exec.steps],
    gates: exec.gates,
    evaluations: exec.evaluations,
    trust: trustScore({
      coverage: measured('coverage')?.value,
      mutation: measured('mutation')?.value,
      contracts: measured('contracts')?.passed,
      a11y: named('a11y')?.passed,
      perf: named('perf')?.passed,
    }),
    usage: { ...exec.usage },
    iterations: result.iterations + exec.iterations,
    diffRef: exec.diff.diffRef,
    diffHash: exec.diff.diffRef.sha256,
    filesChanged: exec.diff.files,
    artifacts: [
      ...result.artifacts,
      { name: `diff-${n}`, ...exec.diff.diffRef },
      ...exec.gates.map((g) => ({ name: `gate-${g.name}-${n}`, ...g.logRef })),
      ...exec.gates.flatMap((g) => (g.reportRef ? [{ name: `gate-${g.name}-report-${n}`, ...g.reportRef }] : [])),
    ],
  };
}

/**
 * The evaluations as the council sees them: a gate's reason names the requirements the spec says it covers, and its
 * acceptance carries what its test report maps to each criterion (the only coverage the quality judge counts).
 */
export function councilGates(
  evaluations: readonly GateEvaluation[],
  gates: readonly Pick<Gate, 'name' | 'covers'>[],
  outcomes: readonly Pick<GateOutcome, 'name' | 'acceptance'>[] = [],
): GateStatus[] {
  return evaluations.map((e) => {
    const covers = gates.find((g) => g.name === e.gate)?.covers ?? [];
    const acceptance = outcomes.find((o) => o.name === e.gate)?.acceptance;
    return {
      gate: e.gate,
      status: e.status,
      reason: covers.length ? `${e.reason}; covers ${covers.join(' ')}` : e.reason,
      ...(acceptance ? { acceptance } : {}),
    };
  });
}

/** The failing gates, as `name (reason)`. */
export function failedGates(evaluations: readonly GateEvaluation[]): string[] {
  return evaluations.filter((e) => e.status === 'fail').map((e) => `${e.gate} (${e.reason})`);
}
