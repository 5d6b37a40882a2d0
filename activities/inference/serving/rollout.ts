/**
 * Activities of the canaryRollout workflow (inference pool). They move the serving row (common/model-serving.ts),
 * wait for the serving processes to apply it, analyse the rollout (analysis.ts) and record statuses and decisions.
 * Each is idempotent: a row set to a value, a status moved to a target, an audit event under an idempotency key.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { appendAuditEvent } from '../../../common/audit.js';
import type { Db } from '../../../common/db.js';
import {
  armCounts,
  armLatencies,
  liveReplicas,
  setServing,
  type ServingChange,
} from '../../../common/model-serving.js';
import type { AnalysisSummary, RolloutOptions, StepWindow } from '../../../workflows/models/rollout-definitions.js';
import { decide, type ArmEvents } from './analysis.js';
import type { ModelRegistryPort } from './registry.js';

export interface RolloutDeps {
  db: Db;
  registry: ModelRegistryPort;
  /** A serving process silent this long no longer counts (3 × its re-read interval). */
  replicaLiveMs: number;
}

interface ModelRef {
  tenantId: string;
  model: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createRolloutActivities({ db, registry, replicaLiveMs }: RolloutDeps) {
  return {
    /** Marks the version `canary` and names the baseline: the serving row's, else the registry's active version. */
    async beginRollout({ tenantId, model, version }: ModelRef & { version: string }): Promise<{
      baselineVersion: string | null;
    }> {
      const status = await registry.status(tenantId, model, version);
      if (status === undefined) throw ApplicationFailure.nonRetryable(`no version ${version} of ${model}`, 'NotFound');
      if (!['validated', 'canary'].includes(status)) {
        throw ApplicationFailure.nonRetryable(
          `version ${version} is ${status}; only a validated version rolls out`,
          'NotValidated',
        );
      }
      const baseline = await registry.activeVersion(tenantId, model);
      if (status === 'validated') await registry.setStatus(tenantId, model, version, 'canary', { rollout: 'started' });
      return { baselineVersion: baseline && baseline !== version ? baseline : null };
    },

    async setTraffic({
      tenantId,
      model,
      change,
    }: ModelRef & { change: ServingChange }): Promise<{ generation: number }> {
      const row = await setServing(db, tenantId, model, change);
      return { generation: row.generation };
    },

    /**
     * Waits until every live serving process has applied `generation` (loaded and warmed every version it names).
     * With no live serving process there is nothing to wait for.
     */
    async awaitReplicas({ tenantId, model, generation }: ModelRef & { generation: number }): Promise<{
      replicas: number;
      waitedMs: number;
    }> {
      const started = performance.now();
      for (;;) {
        const live = await liveReplicas(db, tenantId, model, replicaLiveMs);
        const behind = live.filter((r) => r.generation < generation);
        if (behind.length === 0) return { replicas: live.length, waitedMs: performance.now() - started };
        Context.current().heartbeat({ behind: behind.map((r) => r.replicaId) });
        await sleep(50);
      }
    },

    /** The analysis of the rollout so far (the current step is the last window). */
    async analyseRollout(
      input: ModelRef & {
        baseline: string;
        canary: string;
        steps: StepWindow[];
        options: RolloutOptions;
      },
    ): Promise<AnalysisSummary> {
      const { tenantId, model, options } = input;
      const versions = { baseline: input.baseline, canary: input.canary };
      const now = new Date();
      const windows = await Promise.all(
        input.steps.map((s) =>
          armCounts(db, tenantId, model, versions, new Date(s.startedAt), s.endedAt ? new Date(s.endedAt) : now),
        ),
      );
      const share = (c: number, b: number) => (c + b > 0 ? c / (c + b) : 0);
      const errors: ArmEvents[] = windows.map((w) => ({
        canaryEvents: w.canary.errors,
        baselineEvents: w.baseline.errors,
        canaryShare: share(w.canary.requests, w.baseline.requests),
      }));
      const wrong: ArmEvents[] = windows.map((w) => ({
        canaryEvents: w.canary.wrong,
        baselineEvents: w.baseline.wrong,
        canaryShare: share(w.canary.labelled, w.baseline.labelled),
      }));
      const current = input.steps[input.steps.length - 1]!;
      const counts = windows[windows.length - 1]!;
      const from = new Date(current.startedAt);
      const stepComplete =
        counts.canary.requests >= options.min_samples && now.getTime() - from.getTime() >= options.min_step_ms;
      const latency = stepComplete ? await armLatencies(db, tenantId, model, versions, from, now) : undefined;
      const result = decide({ errors, wrong, latency, stepComplete }, options.thresholds);
      return { ...result, baseline: counts.baseline, canary: counts.canary, at: now.toISOString() };
    },

    /** Final statuses: promoted → the version active, the old one retired; rolled_back → with the evidence. */
    async concludeRollout(
      input: ModelRef & {
        version: string;
        baselineVersion: string | null;
        outcome: 'promoted' | 'rolled_back';
        evidence: Record<string, unknown>;
      },
    ): Promise<void> {
      const { tenantId, model, version, baselineVersion, outcome, evidence } = input;
      if (outcome === 'promoted') {
        await registry.setStatus(tenantId, model, version, 'active', evidence);
        if (baselineVersion && baselineVersion !== version) {
          await registry.setStatus(tenantId, model, baselineVersion, 'retired', { replacedBy: version, ...evidence });
        }
      } else {
        await registry.setStatus(tenantId, model, version, 'rolled_back', evidence);
      }
    },

    /** One rollout decision in the audit trail (once, whatever the retries). */
    async recordRolloutDecision(
      input: ModelRef & {
        version: string;
        action: string;
        by: string;
        reasons: string[];
        seq: number;
      },
    ): Promise<void> {
      const workflowId = Context.current().info.workflowExecution?.workflowId ?? 'unknown';
      await appendAuditEvent(db, {
        tenantId: input.tenantId,
        // A person's decision is theirs (user:…); the analysis's and the workflow's are the inference pool's.
        actor: input.by.startsWith('user:') ? input.by : 'worker:inference',
        action: `model.rollout.${input.action}`,
        subject: `${input.model}@${input.version}`,
        workflowId,
        idempotencyKey: `${workflowId}:decision:${input.seq}`,
        payload: { by: input.by, reasons: input.reasons },
      });
    },
  };
}

export type RolloutActivities = ReturnType<typeof createRolloutActivities>;
