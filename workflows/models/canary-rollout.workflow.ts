/**
 * canaryRollout: moves a registered, validated model version to 100% of its traffic, or rolls it back.
 *
 * Steps (canary strategy): mark the version `canary` → name it in the serving row at weight 0 and wait until every
 * serving process has it loaded and warm → for each step (default 5 → 10 → 25 → 50 → 100%): set the weight, wait for
 * every process to apply it, then analyse every `analysis_interval_ms` (errors and labelled accuracy continuously,
 * latency at the step boundary; activities/inference/serving/analysis.ts states the rules) until the step is complete
 * (min_samples canary requests and min_step_ms) → promote: the canary becomes the baseline (active), the old version
 * is retired. An automatic rollback sets the canary weight to 0 at once and marks the version rolled_back with the
 * evidence. Blue-green: load and warm, switch all traffic at once, keep the old version warm for min_step_ms (an
 * abort in that time switches back instantly), then retire it. A model with no active version is deployed directly.
 *
 * Activities (inference pool, agency-inference): beginRollout, setTraffic, awaitReplicas, analyseRollout,
 * concludeRollout, recordRolloutDecision (audit trail, idempotent per decision).
 * Messages: updates `promote`, `abort` (validators: refused once final), signals `pause`, `resume`, query `status`.
 * Search attribute AgencyModel = "<tenant>/<model>".
 */
import { ApplicationFailure, condition, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { RolloutActivities } from '../../activities/inference/serving/rollout.js';
import { ModelKey } from '../../temporal/search-attributes.js';
import { proxyOn } from '../proxy.js';
import {
  abortUpdate,
  FINAL_PHASES,
  pauseSignal,
  promoteUpdate,
  resumeSignal,
  statusQuery,
  type Person,
  type RolloutInput,
  type RolloutStatus,
} from './rollout-definitions.js';

// Every activity is idempotent (rows set to a value, statuses moved to a target, audit by idempotency key), so the
// default retries are safe. awaitReplicas polls and heartbeats: a lost worker is noticed within its heartbeat timeout.
// Made per run (not at module load: the API imports this module, outside any workflow, for its type).
const rolloutActivities = () =>
  proxyOn<RolloutActivities>('inference', {
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '20 seconds',
    retry: { initialInterval: '200ms', maximumInterval: '5s' },
  });

interface Control {
  paused: boolean;
  promote?: Person;
  abort?: Person;
}

class Rollout {
  readonly control: Control = { paused: false };
  readonly status: RolloutStatus;
  readonly acts = rolloutActivities();
  private seq = 0;

  constructor(readonly input: RolloutInput) {
    this.status = {
      model: input.model,
      version: input.version,
      strategy: input.options.strategy,
      phase: 'preparing',
      step: -1,
      percent: 0,
      steps: [],
      decisions: [],
    };
  }

  get final(): boolean {
    return FINAL_PHASES.includes(this.status.phase);
  }

  /** Appends a decision to the status and the audit trail. */
  async decide(action: string, by: string, reasons: string[]): Promise<void> {
    const at = new Date().toISOString();
    this.status.decisions.push({ at, action, by, reasons });
    const { tenantId, model, version } = this.input;
    await this.acts.recordRolloutDecision({ tenantId, model, version, action, by, reasons, seq: this.seq++ });
  }

  async traffic(change: Parameters<RolloutActivities['setTraffic']>[0]['change']): Promise<void> {
    const { tenantId, model } = this.input;
    const { generation } = await this.acts.setTraffic({ tenantId, model, change });
    await this.acts.awaitReplicas({ tenantId, model, generation });
  }

  async rollBack(by: string, reasons: string[], phase: 'rolled_back' | 'aborted'): Promise<void> {
    const { tenantId, model, version } = this.input;
    const base = this.status.baselineVersion!;
    // Weight 0 first, in one statement: every serving process stops sending to the canary when it hears of it.
    const { generation } = await this.acts.setTraffic({
      tenantId,
      model,
      change: { baselineVersion: base, canaryVersion: null, canaryWeight: 0, shadowShare: 0, warmVersions: [] },
    });
    this.status.percent = 0;
    this.closeStep();
    await this.decide(phase === 'aborted' ? 'abort' : 'rollback', by, reasons);
    await this.acts.concludeRollout({
      tenantId,
      model,
      version,
      baselineVersion: base,
      outcome: 'rolled_back',
      evidence: this.evidence(reasons),
    });
    await this.acts.awaitReplicas({ tenantId, model, generation });
    this.status.phase = phase;
  }

  async promote(by: string, reasons: string[]): Promise<void> {
    const { tenantId, model, version } = this.input;
    const base = this.status.baselineVersion;
    this.closeStep();
    await this.traffic({
      baselineVersion: version,
      canaryVersion: null,
      canaryWeight: 0,
      shadowShare: 0,
      warmVersions: [],
    });
    this.status.percent = 100;
    await this.decide('promote', by, reasons);
    await this.acts.concludeRollout({
      tenantId,
      model,
      version,
      baselineVersion: base ?? null,
      outcome: 'promoted',
      evidence: this.evidence(reasons),
    });
    this.status.phase = 'promoted';
  }

  startStep(index: number, percent: number): void {
    this.closeStep();
    this.status.step = index;
    this.status.percent = percent;
    this.status.steps.push({ percent, startedAt: new Date().toISOString() });
  }

  private closeStep(): void {
    const last = this.status.steps[this.status.steps.length - 1];
    if (last && !last.endedAt) last.endedAt = new Date().toISOString();
  }

  private evidence(reasons: string[]): Record<string, unknown> {
    return { reasons, steps: this.status.steps, analysis: this.status.analysis, workflow: 'canaryRollout' };
  }
}

function installHandlers(r: Rollout): void {
  const notFinal = (_p: Person): void => {
    if (r.final) throw ApplicationFailure.nonRetryable(`the rollout is already ${r.status.phase}`, 'RolloutOver');
  };
  setHandler(statusQuery, () => r.status);
  setHandler(
    pauseSignal,
    (p) => void ((r.control.paused = true), r.decide('pause', p.by, [p.reason ?? 'paused by a person'])),
  );
  setHandler(resumeSignal, (p) => void ((r.control.paused = false), r.decide('resume', p.by, [p.reason ?? 'resumed'])));
  setHandler(
    promoteUpdate,
    async (p) => {
      r.control.promote = p;
      await condition(() => r.final);
      return r.status;
    },
    { validator: notFinal },
  );
  setHandler(
    abortUpdate,
    async (p) => {
      r.control.abort = p;
      await condition(() => r.final);
      return r.status;
    },
    { validator: notFinal },
  );
}

/** Runs one canary step until it completes (true) or the rollout ends (false). */
async function runStep(r: Rollout, index: number, percent: number): Promise<boolean> {
  const { tenantId, model, version, options } = r.input;
  r.startStep(index, percent);
  await r.traffic({ canaryVersion: version, canaryWeight: Math.round(percent * 100) });
  const started = Date.now();
  for (;;) {
    const woke = await condition(
      () => !!r.control.abort || !!r.control.promote || r.control.paused,
      options.analysis_interval_ms,
    );
    if (r.control.abort)
      return (
        void (await r.rollBack(r.control.abort.by, [r.control.abort.reason ?? 'aborted by a person'], 'aborted')),
        false
      );
    if (r.control.promote)
      return (
        void (await r.promote(r.control.promote.by, [r.control.promote.reason ?? 'promoted by a person'])),
        false
      );
    if (r.control.paused) {
      r.status.phase = 'paused';
      await condition(() => !r.control.paused || !!r.control.abort || !!r.control.promote);
      r.status.phase = 'stepping';
      continue;
    }
    if (woke) continue;
    const analysis = await r.acts.analyseRollout({
      tenantId,
      model,
      baseline: r.status.baselineVersion!,
      canary: version,
      steps: r.status.steps,
      options,
    });
    r.status.analysis = analysis;
    if (analysis.decision === 'rollback')
      return (void (await r.rollBack('canary-analysis', analysis.reasons, 'rolled_back')), false);
    if (analysis.decision === 'continue') return true;
    if (analysis.decision === 'pause' || Date.now() - started > options.max_step_ms) {
      r.control.paused = true;
      const reasons =
        analysis.decision === 'pause'
          ? analysis.reasons
          : [`step ${percent}% incomplete after ${options.max_step_ms} ms`];
      await r.decide('pause', 'canary-analysis', reasons);
    }
  }
}

async function canarySteps(r: Rollout): Promise<void> {
  const { version, shadow_percent, steps } = { ...r.input.options, version: r.input.version };
  await r.traffic({ canaryVersion: version, canaryWeight: 0, shadowShare: Math.round(shadow_percent * 100) });
  r.status.phase = 'stepping';
  for (const [index, percent] of steps.entries()) {
    if (percent >= 100) break;
    if (!(await runStep(r, index, percent))) return;
    await r.decide('continue', 'canary-analysis', r.status.analysis?.reasons ?? []);
  }
  await r.promote('canary-analysis', ['every step passed']);
}

async function blueGreen(r: Rollout): Promise<void> {
  const { version, options } = r.input;
  const old = r.status.baselineVersion!;
  await r.traffic({ canaryVersion: version, canaryWeight: 0 }); // loaded and warm everywhere before the switch
  await r.traffic({ baselineVersion: version, canaryVersion: null, canaryWeight: 0, warmVersions: [old] });
  r.status.phase = 'baking';
  r.status.percent = 100;
  r.startStep(0, 100);
  await r.decide('switch', 'canary-rollout', [
    `all traffic on ${version}; ${old} kept warm for ${options.min_step_ms} ms`,
  ]);
  await condition(() => !!r.control.abort || !!r.control.promote, options.min_step_ms);
  if (r.control.abort) {
    // The old version is warm: switching back is a weight change, not a load.
    await r.traffic({ baselineVersion: old, canaryVersion: null, warmVersions: [] });
    return r.rollBack(r.control.abort.by, [r.control.abort.reason ?? 'aborted by a person'], 'aborted');
  }
  await r.promote(r.control.promote?.by ?? 'canary-rollout', ['blue-green: no abort while the old version was warm']);
}

export async function canaryRolloutWorkflow(input: RolloutInput): Promise<RolloutStatus> {
  const r = new Rollout(input);
  installHandlers(r);
  upsertSearchAttributes([{ key: ModelKey, value: `${input.tenantId}/${input.model}` }]);
  const { tenantId, model, version } = input;
  const begun = await r.acts.beginRollout({ tenantId, model, version });
  r.status.baselineVersion = begun.baselineVersion ?? undefined;
  await r.decide('start', input.requestedBy, [`${input.options.strategy} rollout of ${version}`]);
  if (!begun.baselineVersion) await r.promote(input.requestedBy, ['first version of the model: deployed directly']);
  else if (input.options.strategy === 'blue-green') await blueGreen(r);
  else await canarySteps(r);
  return r.status;
}
