import { describe, expect, it } from 'vitest';
import type { ExecutionResult } from '../../workflows/execution/definitions.js';
import type { ArtifactRef, GateOutcome, TaskResult } from '../../workflows/task/definitions.js';
import type { GateEvaluation } from '../../workflows/task/policy.js';
import { councilGates, failedGates, mergeExecution } from '../../workflows/task/results.js';

function ref(sha: string): ArtifactRef {
  return { sha256: sha.repeat(64).slice(0, 64), mediaType: 'text/plain', sizeBytes: 10 };
}

function gate(name: string, extra: Partial<GateOutcome> = {}): GateOutcome {
  return {
    name,
    kind: name,
    passed: true,
    exitCode: 0,
    durationMs: 5,
    logRef: ref(name[0]!),
    evidence: `${name} ok`,
    ...extra,
  };
}

/** A task's result as the workflow has it after planning and the council on the plan. */
function planned(): TaskResult {
  return {
    taskId: 't-1',
    status: 'failed',
    mode: 'auto',
    filesChanged: [],
    steps: [],
    gates: [],
    evaluations: [],
    verdicts: [],
    approvals: [],
    artifacts: [{ name: 'spec', ...ref('s') }],
    usage: { steps: 0, tokens: 120, costUsd: 0.01 },
    iterations: 0,
    specRef: ref('s'),
  };
}

function execution(extra: Partial<ExecutionResult> = {}): ExecutionResult {
  return {
    workdir: '/tmp/w',
    baseCommit: 'abc',
    steps: [
      { index: 0, kind: 'replace', ok: true, detail: 'edited', skipped: false },
      { index: 1, kind: 'command', ok: true, detail: 'ran', skipped: false },
    ],
    gates: [gate('tests'), gate('coverage', { value: 0.9 })],
    evaluations: [
      { gate: 'tests', status: 'pass', reason: 'exit 0' },
      { gate: 'coverage', status: 'pass', reason: '0.90 >= 0.80', threshold: 0.8, value: 0.9 },
    ],
    diff: { diffRef: ref('d'), files: ['src/a.ts'], linesAdded: 3, linesRemoved: 1 },
    usage: { steps: 2, tokens: 300, costUsd: 0.02 },
    iterations: 1,
    stopReason: 'gates_passed',
    detail: '',
    ...extra,
  };
}

describe('mergeExecution', () => {
  it('when the first execution is merged, then its steps, gates, diff and usage are the task result’s and its diff and gate logs are artifacts named after it', () => {
    const merged = mergeExecution(planned(), execution(), 1);
    expect(merged.steps).toHaveLength(2);
    expect(merged.gates.map((g) => g.name)).toEqual(['tests', 'coverage']);
    expect(merged.evaluations).toEqual(execution().evaluations);
    expect(merged.usage).toEqual({ steps: 2, tokens: 300, costUsd: 0.02 });
    expect(merged.iterations).toBe(1);
    expect(merged.diffRef).toEqual(ref('d'));
    expect(merged.diffHash).toBe(ref('d').sha256);
    expect(merged.filesChanged).toEqual(['src/a.ts']);
    expect(merged.artifacts.map((a) => a.name)).toEqual(['spec', 'diff-1', 'gate-tests-1', 'gate-coverage-1']);
    expect(merged.artifacts[2]).toEqual({ name: 'gate-tests-1', ...ref('t') });
  });

  it('when a result is merged, then the input result and the execution are left unchanged and the usage is a copy', () => {
    const result = planned();
    const exec = execution();
    const before = structuredClone({ result, exec });
    const merged = mergeExecution(result, exec, 1);
    expect({ result, exec }).toEqual(before);
    expect(merged).not.toBe(result);
    expect(merged.usage).not.toBe(exec.usage);
  });

  it('when a refinement is merged after the first execution, then steps and iterations add up and the latest gates and diff win', () => {
    const first = mergeExecution(planned(), execution(), 1);
    const second = mergeExecution(
      first,
      execution({
        steps: [{ index: 2, kind: 'replace', ok: true, detail: 'fixed', skipped: false }],
        gates: [gate('tests')],
        diff: { diffRef: ref('e'), files: ['src/a.ts', 'src/b.ts'], linesAdded: 5, linesRemoved: 1 },
        usage: { steps: 3, tokens: 500, costUsd: 0.03 },
        iterations: 2,
      }),
      2,
    );
    expect(second.steps.map((s) => s.index)).toEqual([0, 1, 2]);
    expect(second.iterations).toBe(3);
    expect(second.gates.map((g) => g.name)).toEqual(['tests']);
    expect(second.diffHash).toBe(ref('e').sha256);
    expect(second.filesChanged).toEqual(['src/a.ts', 'src/b.ts']);
    expect(second.usage).toEqual({ steps: 3, tokens: 500, costUsd: 0.03 });
    expect(second.artifacts.map((a) => a.name)).toEqual([
      'spec',
      'diff-1',
      'gate-tests-1',
      'gate-coverage-1',
      'diff-2',
      'gate-tests-2',
    ]);
  });

  it('when a result is merged, then the keys keep the order the task result is serialized in (new ones after the existing)', () => {
    const merged = mergeExecution(planned(), execution(), 1);
    expect(Object.keys(merged)).toEqual([
      'taskId',
      'status',
      'mode',
      'filesChanged',
      'steps',
      'gates',
      'evaluations',
      'verdicts',
      'approvals',
      'artifacts',
      'usage',
      'iterations',
      'specRef',
      'trust',
      'diffRef',
      'diffHash',
    ]);
  });

  it('when gates measure coverage and mutation by kind and a11y and perf by name, then the trust score reads them so', () => {
    const merged = mergeExecution(
      planned(),
      execution({
        gates: [
          gate('branches', { kind: 'coverage', value: 1 }),
          gate('mutants', { kind: 'mutation', value: 1 }),
          gate('api', { kind: 'contracts' }),
          gate('a11y', { kind: 'custom' }),
          gate('perf', { kind: 'custom', passed: false }),
        ],
      }),
      1,
    );
    const c = merged.trust!.components;
    expect([c.coverage.value, c.mutation.value, c.contracts.value, c.a11y.value, c.perf.value]).toEqual([
      1, 1, 1, 1, 0,
    ]);
    expect(merged.trust!.score).toBe(0.9);
  });

  it('when no gate measures anything, then every trust component is missing and counted as 0', () => {
    const merged = mergeExecution(planned(), execution({ gates: [] }), 1);
    expect(merged.trust!.score).toBe(0);
    expect(merged.trust!.notes).toHaveLength(5);
  });
});

describe('councilGates and failedGates', () => {
  const evaluations: GateEvaluation[] = [
    { gate: 'tests', status: 'pass', reason: 'exit 0' },
    { gate: 'lint', status: 'fail', reason: 'exit 1' },
    { gate: 'extra', status: 'waived', reason: 'WV-0001' },
  ];

  it('when the spec says what a gate covers, then the council reads it in the reason; other reasons are unchanged', () => {
    expect(
      councilGates(evaluations, [
        { name: 'tests', covers: ['A1', 'A2'] },
        { name: 'lint', covers: [] },
      ]),
    ).toEqual([
      { gate: 'tests', status: 'pass', reason: 'exit 0; covers A1 A2' },
      { gate: 'lint', status: 'fail', reason: 'exit 1' },
      { gate: 'extra', status: 'waived', reason: 'WV-0001' },
    ]);
  });

  it('when gates fail, then they are listed by name and reason; waived and passing gates are not', () => {
    expect(failedGates(evaluations)).toEqual(['lint (exit 1)']);
    expect(failedGates([])).toEqual([]);
  });
});
