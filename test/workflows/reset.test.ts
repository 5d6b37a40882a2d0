/**
 * Reset, as the Web UI's Reset button does it (ResetWorkflowExecution to a workflow task), on a completed task: the
 * reset run applies every step once to its own workspace and ends as the original did, with the same diff.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client, WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import { getArtifact } from '../../common/artifacts.js';
import type { agentTaskWorkflow } from '../../workflows/index.js';
import { approveSignal, progressQuery, type TaskResult } from '../../workflows/task/definitions.js';
import {
  eventually,
  sampleRepo,
  startWorkers,
  temporalClient,
  testConfig,
  type RunningWorkers,
} from '../helpers/stack.js';
import { calculatorSpec, directTaskInput, signedApproval, startTaskWorkflow } from '../helpers/tasks.js';
import type { WorkingSpec } from '../../workflows/task/spec.js';

const { EventType, ResetReapplyType } = proto.temporal.api.enums.v1;
type EventId = NonNullable<
  proto.temporal.api.workflowservice.v1.IResetWorkflowExecutionRequest['workflowTaskFinishEventId']
>;
const config = testConfig();

describe('a completed task reset from the Web UI', () => {
  let workers: RunningWorkers;
  let client: Client;
  beforeAll(async () => {
    workers = await startWorkers(config);
    client = await temporalClient(config);
  });
  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  /** Approves the plan a run is waiting on (strict mode: a person approves before execution). */
  async function approvePlan(handle: WorkflowHandle<typeof agentTaskWorkflow>): Promise<void> {
    const pending = await eventually(async () => (await handle.query(progressQuery)).pendingApproval, {
      what: 'the plan approval',
    });
    await handle.signal(approveSignal, await signedApproval(config, handle.workflowId, pending.hash));
  }

  async function diffOf(result: TaskResult): Promise<string> {
    return (await getArtifact(workers.db, 'default', result.diffRef!.sha256))!.content.toString();
  }

  /** Resets the run to the workflow task that completed at `eventId`, without reapplying later signals. */
  async function reset(handle: WorkflowHandle, runId: string, eventId: number): Promise<string> {
    const response = await client.workflowService.resetWorkflowExecution({
      namespace: config.TEMPORAL_NAMESPACE,
      workflowExecution: { workflowId: handle.workflowId, runId },
      reason: 'test: reset as the Web UI does',
      // int64 fields take a plain number at run time (protobufjs); the generated type names only Long.
      workflowTaskFinishEventId: eventId as unknown as EventId,
      requestId: randomUUID(),
      resetReapplyType: ResetReapplyType.RESET_REAPPLY_TYPE_NONE,
    });
    return response.runId;
  }

  /** Ids of the WorkflowTaskCompleted events of a run, with the event id of the plan's approval signal. */
  async function landmarks(handle: WorkflowHandle, runId: string) {
    const history = await client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
    const events = history.events ?? [];
    const completed = events
      .filter((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
      .map((e) => Number(e.eventId));
    const approved = Number(
      events.find((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'approve')?.eventId,
    );
    return { firstWorkflowTask: completed[0]!, afterApproval: completed.find((id) => id > approved)! };
  }

  it('when reset to its first workflow task and approved again, or to a point after the approval, then each reset run completes with the same diff as the original', async () => {
    const spec = calculatorSpec({
      mode: 'fix',
      scope: { in: ['src/', 'notes.txt'], out: ['test/'] },
      steps: [
        ...(calculatorSpec().steps as unknown[]),
        { kind: 'write_file', path: 'notes.txt', content: 'fixed\n' },
        { kind: 'command', run: ['node', '-e', "require('fs').appendFileSync('notes.txt', 'checked\\n')"] },
      ],
    }) as unknown as WorkingSpec;
    const input = {
      ...directTaskInput(`reset-${Date.now()}`, await sampleRepo(), 'Reset me', spec),
      mode: 'strict' as const,
    };
    const handle = await startTaskWorkflow(client, config, input);
    await approvePlan(handle);
    const original = await handle.result();
    expect(original.status).toBe('completed');
    const originalDiff = await diffOf(original);
    expect(originalDiff).toContain('+  return sum(values) / values.length;');
    expect(originalDiff).toContain('+checked');
    const points = await landmarks(handle, handle.firstExecutionRunId);

    // 1. To the first workflow task: the run plans again and waits for a person, who approves again.
    const fromStart = await reset(handle, handle.firstExecutionRunId, points.firstWorkflowTask);
    const rerun = client.workflow.getHandle<typeof agentTaskWorkflow>(handle.workflowId, fromStart);
    await approvePlan(rerun);
    const again = await rerun.result();
    expect(again.status, again.reason).toBe('completed');
    expect(again.steps.map((s) => [s.ok, s.skipped])).toEqual(original.steps.map(() => [true, false]));
    expect(await diffOf(again)).toBe(originalDiff);

    // 2. To the workflow task after the approval: execution starts again at once.
    const afterApproval = await reset(handle, handle.firstExecutionRunId, points.afterApproval);
    const resumed = await client.workflow
      .getHandle<typeof agentTaskWorkflow>(handle.workflowId, afterApproval)
      .result();
    expect(resumed.status, resumed.reason).toBe('completed');
    expect(resumed.steps.map((s) => [s.ok, s.skipped])).toEqual(original.steps.map(() => [true, false]));
    expect(await diffOf(resumed)).toBe(originalDiff);
  });
});
