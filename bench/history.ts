/**
 * Where a task's time went, from the Temporal histories of its workflows (the task and its council and execution
 * children): per activity type, the wait in the task queue (scheduled → started: no free worker slot) and the run
 * (started → completed); and for workflow tasks, the wait for the orchestration worker.
 */
import type { Client } from '@temporalio/client';
import type proto from '@temporalio/proto';

type History = proto.temporal.api.history.v1.IHistory;
type Timestamp = proto.google.protobuf.ITimestamp | null | undefined;

export interface Spans {
  /** Per activity type (and `(workflow task)`), queue wait and run times in ms. */
  byType: Record<string, { waitMs: number[]; runMs: number[] }>;
  workflows: number;
}

function ms(t: Timestamp): number {
  if (!t) return Number.NaN;
  return Number(t.seconds ?? 0) * 1000 + Math.round((t.nanos ?? 0) / 1e6);
}

function addSpans(history: History, into: Spans): string[] {
  const byId = new Map<string, { type: string; scheduled: number; started?: number }>();
  const children: string[] = [];
  const bucket = (type: string) => (into.byType[type] ??= { waitMs: [], runMs: [] });
  for (const e of history.events ?? []) {
    const id = String(e.eventId);
    const at = ms(e.eventTime);
    if (e.activityTaskScheduledEventAttributes) {
      byId.set(id, { type: e.activityTaskScheduledEventAttributes.activityType?.name ?? '?', scheduled: at });
    } else if (e.activityTaskStartedEventAttributes) {
      const s = byId.get(String(e.activityTaskStartedEventAttributes.scheduledEventId));
      if (s) s.started = at;
    } else if (e.activityTaskCompletedEventAttributes) {
      const s = byId.get(String(e.activityTaskCompletedEventAttributes.scheduledEventId));
      if (s?.started !== undefined) {
        bucket(s.type).waitMs.push(s.started - s.scheduled);
        bucket(s.type).runMs.push(at - s.started);
      }
    } else if (e.workflowTaskScheduledEventAttributes) {
      byId.set(id, { type: '(workflow task)', scheduled: at });
    } else if (e.workflowTaskStartedEventAttributes) {
      const s = byId.get(String(e.workflowTaskStartedEventAttributes.scheduledEventId));
      if (s) s.started = at;
    } else if (e.workflowTaskCompletedEventAttributes) {
      const s = byId.get(String(e.workflowTaskCompletedEventAttributes.scheduledEventId));
      if (s?.started !== undefined) {
        bucket(s.type).waitMs.push(s.started - s.scheduled);
        bucket(s.type).runMs.push(at - s.started);
      }
    } else if (e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId) {
      children.push(e.childWorkflowExecutionStartedEventAttributes.workflowExecution.workflowId);
    }
  }
  return children;
}

/** Collects the spans of the given workflows and, recursively, of their children. */
export async function collectSpans(client: Client, workflowIds: string[]): Promise<Spans> {
  const spans: Spans = { byType: {}, workflows: 0 };
  const queue = [...workflowIds];
  while (queue.length) {
    const id = queue.shift()!;
    const history = await client.workflow.getHandle(id).fetchHistory();
    spans.workflows++;
    queue.push(...addSpans(history, spans));
  }
  return spans;
}
