/**
 * Structured logs of activities: a pino child logger carrying the task's correlation id (set by the API from the
 * request's x-correlation-id, or made up there) and workflow id, plus the running activity's type and attempt, so one
 * id follows a request from the API's log lines into every activity of its task.
 */
import { Context } from '@temporalio/activity';
import { createLogger, type Logger } from '../common/logger.js';
import type { TaskRef } from '../workflows/task/definitions.js';

/** What activity factories fall back to when no logger is passed (tests that build activities by hand). */
export const SILENT = createLogger('silent');

export function activityLogger(log: Logger, task: Pick<TaskRef, 'correlationId' | 'workflowId' | 'taskId'>): Logger {
  let activity: Record<string, unknown> = {};
  try {
    const { activityType, attempt } = Context.current().info;
    activity = { activityType, attempt };
  } catch {
    // not inside an activity (a direct call in a test)
  }
  return log.child({
    correlationId: task.correlationId,
    workflowId: task.workflowId,
    taskId: task.taskId,
    ...activity,
  });
}
