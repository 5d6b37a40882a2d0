/**
 * Stand-alone council reviews: a diff judged against a working spec by the full council, without executing anything
 * (a councilDeliberation workflow with no task behind it).
 *
 * A review's id comes from what is reviewed: the sha256 of the tenant and the canonical JSON of the checked input
 * (spec, diff, consensus strategy, gate evidence). Posting the same review again therefore names the same workflow:
 * while it runs Temporal hands back the running one (conflict policy USE_EXISTING); once it has completed the start
 * is refused and the completed one stands (reuse policy ALLOW_DUPLICATE_FAILED_ONLY); only a review that failed, timed
 * out or was terminated runs again. Starting answers at once; the caller polls getReview for the status and, once the
 * council has decided, the verdict.
 */
import { checkVerdict, type VerdictCheck } from '../common/verdict-check.js';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { putArtifact, type ArtifactRef } from '../common/artifacts.js';
import { hashJson } from '../common/hash.js';
import { TenantKey } from '../temporal/search-attributes.js';
import { queueFor } from '../temporal/task-queues.js';
import type { ConsensusStrategy, GateStatus } from '../workflows/council/definitions.js';
import type { CouncilOutcome } from '../workflows/council/session.js';
import { councilDeliberationWorkflow } from '../workflows/index.js';
import type { VerdictRecord } from '../workflows/task/definitions.js';
import { DEFAULT_TIER_POLICY } from '../workflows/task/policy.js';
import type { WorkingSpec } from '../workflows/task/spec.js';
import type { AppDeps } from './app.js';
import { validate } from './errors.js';
import { ownedWorkflow } from './ownership.js';
import type { Principal } from './principal.js';
import { ReviewBodySchema, ReviewIdSchema } from './schemas.js';
import { checkSpec } from './spec-input.js';

export type ReviewServiceDeps = Pick<AppDeps, 'temporal' | 'db' | 'config'>;

/** Where a review is polled. */
export const reviewHref = (id: string): string => `/api/v1/council/review/${id}`;

/** What decides a review's outcome, after validation (defaults applied, the spec checked and normalised). */
export interface ReviewInput {
  spec: WorkingSpec;
  /** The diff's sha256 (the diff itself is stored as an artifact). */
  diff: string;
  consensus: ConsensusStrategy;
  gates: GateStatus[];
}

/** The review's workflow id: `review-` and the sha256 of the tenant and the canonical JSON of the input. */
export function reviewId(tenantId: string, input: ReviewInput): string {
  return `review-${hashJson({ tenantId, ...input })}`;
}

export interface ReviewAccepted {
  /** The review's id, which is its council session's id. */
  sessionId: string;
  specHash: string;
  diff: ArtifactRef;
  /** Poll this (GET) for the status and the verdict. */
  href: string;
}

/** Starts a review of the body's diff (body: ReviewBodySchema), or finds the same review started before. */
export async function startReview(
  deps: ReviewServiceDeps,
  principal: Principal,
  body: unknown,
  correlationId: string,
): Promise<ReviewAccepted> {
  const { temporal, db, config } = deps;
  const request = validate(ReviewBodySchema, body);
  const { spec } = checkSpec(request.spec, request.strict_spec);
  const diff = await putArtifact(db, principal.tenantId, request.diff, 'text/x-diff');
  const id = reviewId(principal.tenantId, {
    spec,
    diff: diff.sha256,
    consensus: request.consensus,
    gates: request.gates,
  });
  const specHash = hashJson(spec);
  const tier = spec.risk_tier;
  try {
    await temporal.workflow.start(councilDeliberationWorkflow, {
      workflowId: id,
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
      taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
      memo: { tenantId: principal.tenantId, specHash, diff },
      typedSearchAttributes: [{ key: TenantKey, value: principal.tenantId }],
      args: [
        {
          task: { tenantId: principal.tenantId, taskId: id, workflowId: id, executionKey: id, correlationId },
          phase: 'result',
          tier,
          strategy: request.consensus,
          spec,
          diffRef: diff,
          commands: spec.gates.map((g) => g.run),
          budget: {
            maxFiles: spec.change_budget?.max_files ?? DEFAULT_TIER_POLICY[tier].maxFiles,
            maxLoc: spec.change_budget?.max_loc ?? DEFAULT_TIER_POLICY[tier].maxLoc,
          },
          gates: request.gates,
          activeWaivers: [],
          subjectHash: diff.sha256,
          consensusTimeoutMs: config.COUNCIL_CONSENSUS_TIMEOUT,
          judgeHandoverMs: config.COUNCIL_JUDGE_HANDOVER,
        },
      ],
    });
  } catch (err) {
    // The same review has already completed: it stands.
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
  return { sessionId: id, specHash, diff, href: reviewHref(id) };
}

/** deliberating (running), decided (a verdict), escalated (no verdict: a person decides), failed (no outcome). */
export type ReviewStatus = 'deliberating' | 'decided' | 'escalated' | 'failed';

export interface ReviewView extends ReviewAccepted {
  status: ReviewStatus;
  temporalStatus: string;
  /** Once the council has ended: its signed verdict record (kind final) or its escalation. */
  outcome: CouncilOutcome | null;
  /** The council's verdict, once decided. */
  verdict: VerdictRecord['verdict'] | null;
  /** Whether the verdict's signature verifies, and with which key (a failing one is flagged). */
  verdictCheck: VerdictCheck | null;
}

/** One of the caller's reviews: 400 for a malformed id, 404 for an unknown one or another tenant's. */
export async function getReview(
  deps: Pick<ReviewServiceDeps, 'temporal' | 'db'>,
  principal: Principal,
  rawId: unknown,
): Promise<ReviewView> {
  const id = validate(ReviewIdSchema, rawId, 'params');
  const d = await ownedWorkflow(deps.temporal, principal, id, {
    type: councilDeliberationWorkflow.name,
    what: `review ${id}`,
  });
  let status: ReviewStatus = d.status.name === 'RUNNING' ? 'deliberating' : 'failed';
  let outcome: CouncilOutcome | null = null;
  if (d.status.name === 'COMPLETED') {
    outcome = await deps.temporal.workflow.getHandle<typeof councilDeliberationWorkflow>(id, d.runId).result();
    status = outcome.kind === 'final' ? 'decided' : 'escalated';
  }
  return {
    sessionId: id,
    status,
    temporalStatus: d.status.name,
    specHash: d.memo?.specHash as string,
    diff: d.memo?.diff as ArtifactRef,
    href: reviewHref(id),
    outcome,
    verdict: outcome?.kind === 'final' ? outcome.record.verdict : null,
    verdictCheck: outcome?.kind === 'final' ? await checkVerdict(deps.db, principal.tenantId, outcome.record) : null,
  };
}
