/**
 * runtimeTuning: finds the ONNX Runtime session settings and serving policy (dynamic batching, concurrency) under which
 * a model version serves its workload best, and on request records them as a new version of the same ONNX artifact
 * and rolls that out like any version (canary by default, blue-green on request), so the canary analysis guards it.
 *
 * Steps: load the version's settings (the baseline) → trial 0 measures the baseline → each further trial: the
 * optimiser suggests a point of the search space (Bayesian: Gaussian process + log EI; or random), the host is read
 * and the trial deferred while it is busy or hot (workflows/scheduling/), the trial measures the candidate (with the
 * quality guardrail) → until the budget is spent or the space exhausted → `done`: waits for `apply` or `cancel`.
 * Apply: recordTunedVersion → validateModelVersion (M1) → canaryRollout child (M2), abandoned on close.
 *
 * Activities (all on the inference pool, agency-inference): loadTuningTarget, suggestTrial, runTuningTrial,
 * readHostState, recordTunedVersion, validateModelVersion.
 * Messages: query `trials`; updates `apply` (validator: tuning done, a successful trial exists), `cancel`.
 * Search attribute AgencyModel = "<tenant>/<model>".
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  ParentClosePolicy,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { TuningActivities } from '../../activities/inference/tuning/index.js';
import type { ValidationActivities } from '../../activities/inference/validation.js';
import { ModelKey } from '../../temporal/search-attributes.js';
import { canaryRolloutWorkflow } from '../models/canary-rollout.workflow.js';
import { RolloutOptionsSchema, rolloutWorkflowId } from '../models/rollout-definitions.js';
import { proxyOn, queueOf } from '../proxy.js';
import { awaitHostCapacity } from '../scheduling/defer.js';
import {
  type ApplyRequest,
  applyUpdate,
  type Candidate,
  cancelUpdate,
  candidateOf,
  DEFAULT_SPACE,
  objectiveValue,
  type TrialRecord,
  trialsQuery,
  TuningInputSchema,
  type TuningInput,
  type TuningOptions,
  type TuningStatus,
} from './definitions.js';
import type { Point } from './space.js';

/** How long a finished run waits for `apply` before it completes (its trials stay readable in the history). */
const APPLY_WINDOW = '7 days';

// Made per run (the API imports this module for its type, outside any workflow).
const activities = (o: TuningOptions) => ({
  // Registry reads and writes and the optimiser: idempotent (registration finds its retry by provenance), retried.
  control: proxyOn<TuningActivities>('inference', { startToCloseTimeout: '2 minutes', retry: { maximumAttempts: 5 } }),
  // A trial stops itself at trialTimeoutMs; the margin covers loading, the guardrail and the slot wait. Heartbeats
  // notice a killed worker within 15 s; the retry re-measures from the start (a trial only measures).
  trial: proxyOn<TuningActivities>('inference', {
    startToCloseTimeout: o.measurement.trialTimeoutMs + 5 * 60_000,
    heartbeatTimeout: '15 seconds',
    retry: { maximumAttempts: 3 },
  }),
  // Validation loads the version and writes its outcome once (idempotent unless forced).
  validation: proxyOn<ValidationActivities>('inference', {
    startToCloseTimeout: '5 minutes',
    retry: { maximumAttempts: 3 },
  }),
});

class TuningRun {
  readonly status: TuningStatus;
  trialScope: CancellationScope | undefined;
  cancelled = false;
  baseline: Candidate | undefined;

  constructor(readonly input: TuningInput & TuningOptions) {
    this.status = {
      model: input.model,
      version: input.version,
      phase: 'tuning',
      budget: input.budget,
      trials: [],
      incumbent: null,
      baseline: null,
      scheduling: [],
    };
  }

  record(t: TrialRecord): void {
    this.status.trials.push(t);
    const best = this.status.incumbent === null ? null : this.status.trials[this.status.incumbent]!.objective;
    if (t.objective !== null && (best === null || t.objective < best)) this.status.incumbent = t.index;
  }
}

export async function runtimeTuningWorkflow(raw: TuningInput): Promise<TuningStatus> {
  const input = { ...raw, ...TuningInputSchema.parse(stripOwn(raw)) };
  upsertSearchAttributes([{ key: ModelKey, value: `${input.tenantId}/${input.model}` }]);
  const run = new TuningRun(input);
  const acts = activities(input);
  setHandler(trialsQuery, () => run.status);
  setHandler(cancelUpdate, (_by) => cancel(run), { validator: (_by) => assertPhase(run, ['tuning', 'done']) });
  setHandler(applyUpdate, (req) => apply(run, acts, req), {
    validator: (req: ApplyRequest) => assertApplicable(run, req),
  });

  try {
    const target = await acts.control.loadTuningTarget({
      tenantId: input.tenantId,
      model: input.model,
      version: input.version,
    });
    run.baseline = target.baseline;
    await tune(run, acts);
  } catch (err) {
    if (!isCancellation(err)) throw err;
  }
  if (run.status.phase === 'tuning') run.status.phase = run.cancelled ? 'cancelled' : 'done';
  await condition(() => run.status.phase !== 'done', APPLY_WINDOW);
  await condition(allHandlersFinished);
  return run.status;
}

/** The baseline, then trials until the budget is spent, the space exhausted or the run cancelled. */
async function tune(run: TuningRun, acts: ReturnType<typeof activities>): Promise<void> {
  const input = run.input;
  const space = input.space ?? DEFAULT_SPACE;
  await measure(run, acts, null, run.baseline!);
  run.status.baseline = 0;
  let warm: Awaited<ReturnType<TuningActivities['suggestTrial']>>['hyper'];
  while (!run.cancelled && run.status.trials.length <= input.budget) {
    const history = run.status.trials.filter((t) => t.index > 0).map((t) => ({ point: t.point, value: t.objective }));
    const s = await acts.control.suggestTrial({ space, history, strategy: input.strategy, seed: input.seed, warm });
    if (!s.point) break;
    warm = s.hyper ?? warm;
    await measure(run, acts, s.point, candidateOf(s.point, run.baseline!));
  }
}

/** One trial: wait for the host if it is busy, measure, record. A cancelled run cancels the trial in progress. */
async function measure(
  run: TuningRun,
  acts: ReturnType<typeof activities>,
  point: Point | null,
  candidate: Candidate,
): Promise<void> {
  const input = run.input;
  const index = run.status.trials.length;
  const done = run.status.trials.map((t) => t.result.durationMs);
  // One scope for the wait and the trial: a cancel ends either at once.
  run.trialScope = new CancellationScope();
  const { deferral, result, startedAt } = await run.trialScope.run(async () => {
    const deferral = await awaitHostCapacity({
      workload: {
        name: `tuning trial ${index} of ${input.model}@${input.version}`,
        priority: 'low',
        deferrable: true,
        estimatedDurationMs: Math.round(done.length > 0 ? Math.max(...done) : input.measurement.trialTimeoutMs / 2),
        // The candidate's intra-op threads (ONNX Runtime's default is one per core: 2 on the machines we run).
        expectedLoad: candidate.session.intraOpNumThreads || 2,
      },
      policy: input.deferral,
      hostQueue: queueOf('inference'),
    });
    run.status.scheduling.push({
      trial: index,
      waitedMs: deferral.waitedMs,
      reason: deferral.final.reason,
      over: deferral.entries.flatMap((e) => e.decision.over).slice(0, 5),
    });
    const startedAt = new Date().toISOString();
    const result = await acts.trial.runTuningTrial({
      tenantId: input.tenantId,
      model: input.model,
      version: input.version,
      candidate,
      baseline: run.baseline!,
      workload: input.workload,
      measurement: input.measurement,
      guardrail: input.guardrail,
    });
    return { deferral, result, startedAt };
  });
  run.trialScope = undefined;
  run.record({
    index,
    point: point ?? {},
    candidate,
    result,
    objective: result.status === 'ok' && result.figures ? objectiveValue(input.objective, result.figures) : null,
    deferredMs: deferral.waitedMs,
    startedAt,
  });
}

function cancel(run: TuningRun): TuningStatus {
  run.cancelled = true;
  run.trialScope?.cancel();
  run.status.phase = 'cancelled';
  return run.status;
}

async function apply(
  run: TuningRun,
  acts: ReturnType<typeof activities>,
  req: ApplyRequest & { by: string },
): Promise<TuningStatus> {
  const { input, status } = run;
  const chosen = status.trials[req.trial ?? status.incumbent!]!;
  status.phase = 'applying';
  const { version } = await acts.control.recordTunedVersion({
    tenantId: input.tenantId,
    model: input.model,
    version: input.version,
    candidate: chosen.candidate,
    figures: chosen.result.figures!,
    baselineFigures: status.baseline === null ? undefined : status.trials[status.baseline]!.result.figures,
    workflowId: workflowInfo().workflowId,
    requestedBy: req.by,
  });
  const validation = await acts.validation.validateModelVersion({
    tenantId: input.tenantId,
    name: input.model,
    version,
    actor: workflowInfo().workflowId,
  });
  status.appliedVersion = version;
  if (!validation.passed) {
    status.phase = 'failed';
    status.error = `the tuned version ${version} failed validation: ${validation.reasons.join('; ')}`;
    return status;
  }
  const rolloutId = rolloutWorkflowId(input.tenantId, input.model, version);
  await startChild(canaryRolloutWorkflow, {
    workflowId: rolloutId,
    args: [
      {
        tenantId: input.tenantId,
        model: input.model,
        version,
        requestedBy: req.by,
        options: req.rollout ?? RolloutOptionsSchema.parse({ strategy: input.rollout }),
      },
    ],
    // The rollout outlives this run: it ends when the canary is promoted or rolled back.
    parentClosePolicy: ParentClosePolicy.ABANDON,
    workflowIdReusePolicy: 'REJECT_DUPLICATE',
  });
  status.rolloutWorkflowId = rolloutId;
  status.phase = 'applied';
  return status;
}

function assertPhase(run: TuningRun, phases: TuningStatus['phase'][]): void {
  if (!phases.includes(run.status.phase))
    throw ApplicationFailure.create({ type: 'Conflict', message: `the tuning run is ${run.status.phase}` });
}

function assertApplicable(run: TuningRun, req: ApplyRequest): void {
  assertPhase(run, ['done']);
  const index = req.trial ?? run.status.incumbent;
  const t = index === null ? undefined : run.status.trials[index];
  if (!t || t.result.status !== 'ok' || !t.result.figures)
    throw ApplicationFailure.create({
      type: 'Conflict',
      message: index === null ? 'no trial succeeded: nothing to apply' : `trial ${index} did not succeed`,
    });
}

/** The request part of the input (the schema is strict; tenant and requester are added by the API). */
function stripOwn(raw: TuningInput): Record<string, unknown> {
  const { tenantId: _t, requestedBy: _r, ...rest } = raw;
  return rest;
}
