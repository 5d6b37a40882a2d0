import { describe, expect, it } from 'vitest';
import type { ArtifactRef, TaskResult, VerdictRecord } from '../../workflows/task/definitions.js';
import {
  budgetSpentEvent,
  buildProvenance,
  taskEndedEvent,
  type ProvenanceInput,
} from '../../workflows/task/provenance.js';

function ref(sha: string): ArtifactRef {
  return { sha256: sha.repeat(64).slice(0, 64), mediaType: 'application/json', sizeBytes: 42 };
}

const INPUT: ProvenanceInput['input'] = {
  id: 'fix-average',
  title: 'Fix average()',
  tenantId: 'acme',
  submittedBy: 'user:alice',
  mode: 'strict',
};
const WORKFLOW = { id: 'task-fix-average', firstRunId: 'run-1', namespace: 'agency' };

const VERDICT: VerdictRecord = {
  sessionId: 'task-fix-average-council-plan-1',
  phase: 'plan',
  verdict: {
    decision: 'accept',
    score: 0.9,
    votes: [],
    dissent: [],
    remediation: [],
    constitutional_refs: [],
    escalated: false,
    rounds: 1,
  },
  verdictRef: ref('v'),
  signature: { alg: 'Ed25519', keyId: 'k1', signature: 'sig', payloadSha256: 'p'.repeat(64) },
};

function result(): TaskResult {
  return {
    taskId: 'fix-average',
    status: 'completed',
    mode: 'strict',
    filesChanged: ['src/stats.ts'],
    steps: [],
    gates: [
      {
        name: 'tests',
        kind: 'tests',
        passed: true,
        exitCode: 0,
        durationMs: 12,
        logRef: ref('l'),
        evidence: 'exit 0',
      },
    ],
    evaluations: [],
    verdicts: [VERDICT],
    approvals: [
      {
        approver: 'user:bob',
        hash: 'h'.repeat(64),
        decision: 'approve',
        accepted: true,
        note: 'approve accepted for the plan',
        at: '2030-01-01T00:00:00.000Z',
      },
    ],
    artifacts: [],
    usage: { steps: 2, tokens: 10, costUsd: 0.5 },
    iterations: 1,
    specRef: ref('s'),
    diffRef: ref('d'),
  };
}

describe('buildProvenance', () => {
  it('when a task completes, then the record names the task, the run, the spec, plan and diff hashes, gates, verdicts, approvals and usage', () => {
    const r = result();
    const record = buildProvenance({
      input: INPUT,
      workflow: WORKFLOW,
      status: 'completed',
      planHash: 'a'.repeat(64),
      result: r,
    });
    // The stored artifact's hash depends on its bytes: the shape and key order are part of the contract.
    expect(JSON.stringify(record)).toBe(
      JSON.stringify({
        task: { id: 'fix-average', title: 'Fix average()', tenant: 'acme', submittedBy: 'user:alice', mode: 'strict' },
        workflow: { id: 'task-fix-average', firstRunId: 'run-1', namespace: 'agency' },
        status: 'completed',
        reason: null,
        spec: ref('s').sha256,
        planHash: 'a'.repeat(64),
        diff: ref('d').sha256,
        gates: [{ name: 'tests', passed: true, log: ref('l').sha256 }],
        verdicts: [
          {
            session: 'task-fix-average-council-plan-1',
            phase: 'plan',
            decision: 'accept',
            artifact: ref('v').sha256,
            signature: VERDICT.signature,
          },
        ],
        approvals: r.approvals,
        usage: { steps: 2, tokens: 10, costUsd: 0.5 },
      }),
    );
  });

  it('when a task ends before planning, then the hashes it never had are null and the lists empty', () => {
    const record = buildProvenance({
      input: INPUT,
      workflow: WORKFLOW,
      status: 'canceled',
      reason: 'canceled by user:alice',
      result: { gates: [], verdicts: [], approvals: [], usage: { steps: 0, tokens: 0, costUsd: 0 } },
    });
    expect(record).toMatchObject({
      status: 'canceled',
      reason: 'canceled by user:alice',
      spec: null,
      planHash: null,
      diff: null,
      gates: [],
      verdicts: [],
      approvals: [],
    });
  });

  it('when the reason is empty, then it is kept as given (only a missing reason is null)', () => {
    const record = buildProvenance({
      input: INPUT,
      workflow: WORKFLOW,
      status: 'failed',
      reason: '',
      result: result(),
    });
    expect(record.reason).toBe('');
  });

  it('when the record is built, then the result is not changed', () => {
    const r = result();
    const before = structuredClone(r);
    buildProvenance({ input: INPUT, workflow: WORKFLOW, status: 'completed', result: r });
    expect(r).toEqual(before);
  });
});

describe('the closing audit events', () => {
  it('when the budget spent is recorded, then the usage sits next to the task’s limits', () => {
    const event = budgetSpentEvent(
      { steps: 3, tokens: 1_000, costUsd: 0.25 },
      { max_steps: 100, max_tokens: 200_000, max_cost_usd: 5 },
    );
    expect(JSON.stringify(event)).toBe(
      JSON.stringify({
        steps: 3,
        tokens: 1_000,
        costUsd: 0.25,
        limits: { steps: 100, tokens: 200_000, costUsd: 5 },
      }),
    );
  });

  it('when the task ends, then its event carries the reason and the diff hash, or null for each', () => {
    expect(taskEndedEvent('quality gates failed: lint (exit 1)', { diffRef: ref('d') })).toEqual({
      reason: 'quality gates failed: lint (exit 1)',
      diff: ref('d').sha256,
    });
    expect(taskEndedEvent(undefined, {})).toEqual({ reason: null, diff: null });
  });
});
