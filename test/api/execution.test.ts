/** Execution details on the real stack: continue-as-new, gates measured from the workspace's reports, the deadline. */
import { describe, expect, it } from 'vitest';
import type { Config } from '../../common/config.js';
import { executionWorkflowId } from '../../workflows/execution/definitions.js';
import {
  CALCULATOR_GATES,
  eventually,
  sampleRepo,
  temporalClient,
  useStack,
  type RunningApi,
} from '../helpers/stack.js';
import { calculatorSpec, taskClient } from '../helpers/tasks.js';

/** A gate command that writes an istanbul coverage summary with the given branch counts (or nothing). */
/** The spec's tests gate and the sample's real coverage command, declared by the spec (no coverage is registered here). */
const MEASURED_GATES = [
  ...(calculatorSpec().gates as unknown[]),
  { name: 'coverage', kind: 'coverage', run: CALCULATOR_GATES.coverage.run, report: CALCULATOR_GATES.coverage.report },
];

function coverageGate(branches?: { covered: number; total: number }) {
  const summary = branches && {
    total: {
      lines: { total: 10, covered: 10, skipped: 0, pct: 100 },
      branches: { ...branches, skipped: 0, pct: (100 * branches.covered) / branches.total },
    },
  };
  const script = summary
    ? `require('fs').writeFileSync('{out}/coverage-summary.json', ${JSON.stringify(JSON.stringify(summary))})`
    : 'process.exit(0)';
  // The report goes into the output directory the platform names for the run (`{out}`), the only place it is read.
  return { name: 'coverage', kind: 'coverage', run: ['node', '-e', script], report: 'coverage-summary.json' };
}

describe('execution', () => {
  let config: Config;
  let api: RunningApi;
  const client = taskClient(() => api);

  // No coverage command registered: the spec's own coverage gate (coverageGate) is what measures it here.
  const { coverage: _coverage, ...gates } = CALCULATOR_GATES;
  // A council's `modify` offline goes to a person, whom nobody answers here: the task fails after 3 s.
  const env = {
    EXECUTION_CONTINUE_AS_NEW_AFTER: '2',
    TENANT_GATE_COMMANDS: JSON.stringify({ '*': gates }),
    TASK_APPROVAL_TIMEOUT: '3s',
  };
  useStack((stack) => ({ config, api } = stack), { env });

  it('when a plan has more steps than one run may take, then execution continues as new and still completes every step once', async () => {
    const extra = [1, 2, 3, 4].map((n) => ({
      kind: 'write_file',
      path: `src/part${n}.js`,
      content: `export const part${n} = ${n};\n`,
    }));
    const id = await client.submit({
      title: 'Many steps',
      workspace: await sampleRepo(),
      spec: calculatorSpec({ steps: [...(calculatorSpec().steps as unknown[]), ...extra], gates: MEASURED_GATES }),
    });
    const done = await client.finished(id);
    expect(done.status).toBe('completed');
    expect(done.result!.steps.map((s) => s.index)).toEqual([0, 1, 2, 3, 4]);
    expect(done.result!.filesChanged.sort()).toEqual([
      'src/calculator.js',
      'src/part1.js',
      'src/part2.js',
      'src/part3.js',
      'src/part4.js',
    ]);
    // Five steps, two per run: the execution child ran three times under one workflow id.
    const temporal = await temporalClient(config);
    const runs = await eventually(
      async () => {
        const page = await temporal.workflowService.listWorkflowExecutions({
          namespace: config.TEMPORAL_NAMESPACE,
          query: `WorkflowId = '${executionWorkflowId(done.workflowId, 1)}'`,
        });
        return page.executions.length >= 3 ? page.executions : undefined;
      },
      { what: 'the continued runs to be visible' },
    );
    expect(runs).toHaveLength(3);
    await temporal.connection.close();
  });

  it('when a pause arrives during the last step before continue-as-new, then the continued run stays paused until resumed', async () => {
    const slow = {
      kind: 'command',
      run: ['node', '-e', "setTimeout(() => require('fs').writeFileSync('slow.txt', 's'), 3000)"],
    };
    const later = [1, 2].map((n) => ({
      kind: 'write_file',
      path: `src/after${n}.js`,
      content: `export default ${n};\n`,
    }));
    const id = await client.submit({
      title: 'Pause across continue-as-new',
      workspace: await sampleRepo(),
      spec: calculatorSpec({
        scope: { in: ['src/', 'slow.txt'], out: ['test/'] },
        steps: [...(calculatorSpec().steps as unknown[]), slow, ...later],
        gates: MEASURED_GATES,
      }),
    });
    const temporal = await temporalClient(config);
    const execution = temporal.workflow.getHandle(executionWorkflowId(`task-${id}`, 1));
    // Step 2 of 2 in the first run is the slow command: pause while it runs.
    const first = await eventually(
      async () =>
        (await execution.query<{ step: string }>('progress')).step === 'step 2/4' && (await execution.describe()).runId,
      { what: 'the slow step to run' },
    );
    expect((await client.post(`/api/v1/tasks/${id}/pause`)).status).toBe(202);
    // The first run ends after the slow step; the continued run holds the pause: no step 3 while paused.
    await eventually(
      async () => {
        const description = await execution.describe();
        return description.runId !== first && description.status.name === 'RUNNING' ? description : undefined;
      },
      { what: 'the continued run' },
    );
    await new Promise((r) => setTimeout(r, 3_000));
    const paused = await execution.query<{ paused: boolean; step: string }>('progress');
    expect(paused.paused).toBe(true);
    const applied = async () =>
      (
        await api.db.query(`SELECT 1 FROM audit_events WHERE workflow_id = $1 AND action = 'step.applied'`, [
          `task-${id}`,
        ])
      ).rowCount;
    expect(await applied()).toBe(2);

    expect((await client.post(`/api/v1/tasks/${id}/resume`)).status).toBe(202);
    const done = await client.finished(id);
    expect(done.status).toBe('completed');
    expect(done.result!.steps.map((s) => s.index)).toEqual([0, 1, 2, 3]);
    expect(await applied()).toBe(4);
    await temporal.connection.close();
  });

  it('when a coverage gate writes its report, then the branch coverage is measured against the tier and kept out of the diff', async () => {
    const spec = calculatorSpec({
      gates: [...(calculatorSpec().gates as unknown[]), coverageGate({ covered: 17, total: 20 })],
    });
    const done = await client.finished(await client.submit({ title: 'Covered', workspace: await sampleRepo(), spec }));
    expect(done.status).toBe('completed');
    expect(done.result!.evaluations.find((e) => e.gate === 'coverage')).toMatchObject({
      status: 'pass',
      value: 0.85,
      threshold: 0.7,
    });
    expect(done.result!.trust!.components.coverage.value).toBe(0.85);
    expect(done.result!.filesChanged).toEqual(['src/calculator.js']);
  });

  it('when coverage is below the tier threshold, or its report is missing, then the gate fails and the task does not complete', async () => {
    const low = await client.finished(
      await client.submit({
        title: 'Thin coverage',
        workspace: await sampleRepo(),
        spec: calculatorSpec({
          gates: [...(calculatorSpec().gates as unknown[]), coverageGate({ covered: 13, total: 20 })],
        }),
      }),
    );
    expect(low.status).toBe('failed');
    expect(low.result!.evaluations.find((e) => e.gate === 'coverage')).toMatchObject({ status: 'fail', value: 0.65 });
    expect(low.result!.reason).toContain('coverage');

    const missing = await client.finished(
      await client.submit({
        title: 'No report',
        workspace: await sampleRepo(),
        spec: calculatorSpec({ gates: [...(calculatorSpec().gates as unknown[]), coverageGate()] }),
      }),
    );
    expect(missing.status).toBe('failed');
    const evaluation = missing.result!.evaluations.find((e) => e.gate === 'coverage')!;
    expect(evaluation.status).toBe('fail');
    expect(evaluation.reason).toContain('input missing');
  });

  it('when the deadline passes mid-execution, then the task stops, fails saying so, and its workspace is cleaned', async () => {
    const id = await client.submit({
      title: 'Out of time',
      workspace: await sampleRepo(),
      budgets: { deadline: new Date(Date.now() + 4_000).toISOString() },
      spec: calculatorSpec({ steps: [{ kind: 'command', run: ['node', '-e', 'setTimeout(() => {}, 60000)'] }] }),
    });
    const done = await client.finished(id);
    expect(done.status).toBe('failed');
    expect(done.result!.reason).toMatch(/^deadline .* passed$/);
  });
});
