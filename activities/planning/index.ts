/**
 * Activities of the planning pool (queue agency-planning): resolve and check the working spec, and record the task's
 * state transitions in the audit trail. Language-model planning arrives here behind the provider interface.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import YAML from 'yaml';
import { appendAuditEvent } from '../../common/audit.js';
import { putArtifact } from '../../common/artifacts.js';
import type { Db } from '../../common/db.js';
import type { ArtifactRef } from '../../workflows/task/definitions.js';
import { WorkingSpecSchema, type WorkingSpec } from '../../workflows/task/spec.js';
import type { TaskRef } from '../execution/index.js';

export interface PlanningDeps {
  db: Db;
}

export type PlanOutcome =
  | { kind: 'planned'; spec: WorkingSpec; specRef: ArtifactRef; source: 'request' | 'workspace' }
  | { kind: 'needs_clarification'; reasons: string[] };

export const SPEC_FILE = '.caws/working-spec.yaml';

/** Formats zod issues as "path: message" lines. */
export function describeIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string[] {
  return issues.map((i) => `${i.path.length ? i.path.map(String).join('.') : '(spec)'}: ${i.message}`);
}

export function createPlanningActivities({ db }: PlanningDeps) {
  return {
    /** Uses the spec from the request, else the workspace's .caws/working-spec.yaml; validates and stores it. */
    async planTask(task: TaskRef, workspace: string, requestSpec: WorkingSpec | undefined): Promise<PlanOutcome> {
      let raw: unknown = requestSpec;
      let source: 'request' | 'workspace' = 'request';
      if (raw === undefined) {
        const file = path.join(workspace, SPEC_FILE);
        let text: string;
        try {
          text = await readFile(file, 'utf8');
        } catch {
          return {
            kind: 'needs_clarification',
            reasons: [
              `no working spec in the request and no ${SPEC_FILE} in the workspace; with no language model configured a spec is required`,
            ],
          };
        }
        try {
          raw = YAML.parse(text);
        } catch (err) {
          throw ApplicationFailure.nonRetryable(
            `${SPEC_FILE} is not valid YAML: ${(err as Error).message}`,
            'InvalidSpec',
          );
        }
        source = 'workspace';
      }
      const parsed = WorkingSpecSchema.safeParse(raw);
      if (!parsed.success) {
        throw ApplicationFailure.nonRetryable(
          `the working spec is invalid:\n${describeIssues(parsed.error.issues).join('\n')}`,
          'InvalidSpec',
        );
      }
      const spec = parsed.data;
      if (spec.steps.length === 0) {
        return { kind: 'needs_clarification', reasons: ['the working spec has no steps to execute'] };
      }
      const specRef = await putArtifact(db, task.tenantId, JSON.stringify(spec, null, 2), 'application/json');
      return { kind: 'planned', spec, specRef, source };
    },

    /** Records a state transition of the task; idempotent under retry. */
    async recordTaskEvent(task: TaskRef, action: string, payload: Record<string, unknown>): Promise<void> {
      await appendAuditEvent(db, {
        tenantId: task.tenantId,
        actor: 'system',
        action,
        workflowId: task.workflowId,
        correlationId: task.correlationId,
        idempotencyKey: `${task.executionKey}/${action}`,
        payload,
      });
    },
  };
}

export type PlanningActivities = ReturnType<typeof createPlanningActivities>;
