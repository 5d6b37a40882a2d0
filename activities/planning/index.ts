/**
 * Activities of the planning pool (queue agency-planning): resolve and check the working spec (from the request,
 * the workspace, or a language model), assess ambiguity and risk, load waivers, pick the agent's next action, and
 * record the task's state transitions and artifacts.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/activity';
import { loadApprovalPublicKeys } from '../../common/approval-keys.js';
import { appendAuditEvent, taskAudit } from '../../common/audit.js';
import { getArtifact, putArtifact } from '../../common/artifacts.js';
import type { Config } from '../../common/config.js';
import { localSource } from '../source.js';
import type { Db } from '../../common/db.js';
import { hashJson } from '../../common/hash.js';
import type { Logger } from '../../common/logger.js';
import { riskScore, tasksCompletedTotal } from '../../common/metrics.js';
import type { ArtifactRef, RiskSummary, TaskRef, WorkspaceSource } from '../../workflows/task/definitions.js';
import type { ApprovalPublicKeys } from '../../workflows/task/decision-proof.js';
import { WaiverSchema, type RegisteredGate, type Waiver } from '../../workflows/task/policy.js';
import { registeredGates } from '../../common/gate-commands.js';
import { getRepository } from '../../common/repositories.js';
import { parseWorkingSpec, type SpecStep, type WorkingSpec } from '../../workflows/task/spec.js';
import { activityLogger, SILENT } from '../logging.js';
import { nextAgentActionWithModel, type AgentAction, type AgentContext } from './agent.js';
import { assessAmbiguity, DEFAULT_AMBIGUITY_THRESHOLD, missingFromRequest } from './ambiguity.js';
import { planWithModel, revisePlanWithModel } from './llm-planner.js';
import { ModelOutputError, toActivityFailure } from './model-errors.js';
import { activityLanguageModel, type LanguageModel } from './providers.js';
import { assessRisk, type RiskInput } from './risk.js';
import { parseUnifiedDiff } from '../council/review.js';
import { loadWorkingSpec } from './spec-loader.js';

const git = promisify(execFile);

export interface PlanningDeps {
  db: Db;
  config: Config;
  /** Overrides the configured model (tests); undefined means "use the configuration". */
  model?: LanguageModel | null;
  /** Activity logs (with the task's correlation id); silent when not given. */
  log?: Logger;
}

/** Audit actions that end a task (agentTask's finish()). */
const FINAL_TASK_EVENT = /^task\.(completed|failed|canceled)$/;

export interface PlanUsage {
  tokens: number;
  costUsd: number;
}

export type PlanOutcome =
  | {
      kind: 'planned';
      spec: WorkingSpec;
      specRef: ArtifactRef;
      /** Hash of the canonical spec: what an approver approves. */
      planHash: string;
      plannedFiles: string[];
      commands: string[][];
      warnings: string[];
      source: 'request' | 'workspace' | 'model';
      modelAvailable: boolean;
      usage: PlanUsage;
    }
  | { kind: 'needs_clarification'; reasons: string[]; ambiguity: number; modelAvailable: boolean; usage: PlanUsage };

export const SPEC_FILE = '.caws/working-spec.yaml';

/** The planner's answer to the council's dissent between revise rounds. */
export type PlanRevision =
  | {
      kind: 'revised';
      spec: WorkingSpec;
      planHash: string;
      plannedFiles: string[];
      commands: string[][];
      usage: PlanUsage;
    }
  | { kind: 'unchanged'; reason: string; usage: PlanUsage };

/** Formats zod issues as "path: message" lines. */
export function describeIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string[] {
  return issues.map((i) => `${i.path.length ? i.path.map(String).join('.') : '(spec)'}: ${i.message}`);
}

function plannedFilesOf(steps: readonly SpecStep[]): string[] {
  return [
    ...new Set(
      steps.flatMap((s) => {
        if (s.kind === 'command') return [];
        if (s.kind === 'tool') return typeof s.arguments.path === 'string' ? [s.arguments.path] : [];
        return [s.path];
      }),
    ),
  ];
}

function commandsOf(spec: WorkingSpec): string[][] {
  return [...spec.steps.flatMap((s) => (s.kind === 'command' ? [s.run] : [])), ...spec.gates.map((g) => g.run)];
}

/** A risk assessment as the task records it, with the metric and the log line. */
function riskSummaryOf(
  log: Logger,
  task: TaskRef,
  spec: WorkingSpec,
  basis: 'plan' | 'diff',
  input: RiskInput,
): RiskSummary {
  const assessed = assessRisk(input);
  riskScore.observe({ tier: String(assessed.tier) }, assessed.score);
  activityLogger(log, task).info(
    { tier: assessed.tier, specTier: spec.risk_tier, score: assessed.score, method: assessed.method, basis },
    'task risk assessed',
  );
  return {
    tier: assessed.tier,
    specTier: spec.risk_tier,
    score: assessed.score,
    method: assessed.method,
    dimensions: Object.fromEntries(
      Object.entries(assessed.dimensions).map(([name, d]) => [
        name,
        { score: d.score, evidence: d.evidence.map((e) => ({ kind: e.kind, detail: e.detail })) },
      ]),
    ),
    ...(basis === 'diff' ? { basis } : {}),
  };
}

export function createPlanningActivities({ db, config, model: override, log = SILENT }: PlanningDeps) {
  const model = (): LanguageModel | undefined => activityLanguageModel(config, override);
  const withModel = async <T>(fn: (m: LanguageModel) => Promise<T>): Promise<T> => {
    const m = model();
    if (!m)
      throw ApplicationFailure.nonRetryable(
        'no language model is configured (LLM_PROVIDER=offline)',
        'ModelUnavailable',
      );
    try {
      return await fn(m);
    } catch (err) {
      if (err instanceof ModelOutputError) throw err;
      throw toActivityFailure(err);
    }
  };

  return {
    /**
     * The spec from the request, else the workspace's .caws/working-spec.yaml, else (with a model) one planned from the
     * title and description. Without any of these the task is ambiguous and needs clarification.
     */
    async planTask(
      task: TaskRef,
      req: { workspace: WorkspaceSource; spec?: WorkingSpec; title: string; description: string },
    ): Promise<PlanOutcome> {
      const now = new Date().toISOString();
      const usage: PlanUsage = { tokens: 0, costUsd: 0 };
      const modelAvailable = model() !== undefined;
      let parsed: ReturnType<typeof parseWorkingSpec>;
      let source: 'request' | 'workspace' | 'model';
      if (req.spec) {
        parsed = parseWorkingSpec(req.spec, { now });
        source = 'request';
      } else {
        // A fetched repository is read from its bundle (this worker's cache); a local path as it is.
        const workspace = await localSource(db, req.workspace);
        const text = await readFile(path.join(workspace, SPEC_FILE), 'utf8').catch(() => undefined);
        if (text !== undefined) {
          parsed = loadWorkingSpec(text, SPEC_FILE, { now });
          source = 'workspace';
        } else if (modelAvailable && assessAmbiguity({ title: req.title, description: req.description }).ambiguous) {
          // Too ambiguous to plan without guessing: the requester clarifies first (the score decides).
          const ambiguity = assessAmbiguity({ title: req.title, description: req.description });
          return {
            kind: 'needs_clarification',
            reasons: [
              `the request is ambiguous (score ${ambiguity.score.toFixed(2)} ≥ ${DEFAULT_AMBIGUITY_THRESHOLD}): clarify it before the model plans`,
              ...ambiguity.reasons,
            ],
            ambiguity: ambiguity.score,
            modelAvailable,
            usage,
          };
        } else if (modelAvailable) {
          const files = await git('git', ['ls-files'], { cwd: workspace, maxBuffer: 16 * 1024 * 1024 }).then(
            (r) => r.stdout,
            () => '',
          );
          let planned;
          try {
            planned = await withModel((m) =>
              planWithModel(m, { title: req.title, description: req.description, repoSummary: files }),
            );
          } catch (err) {
            if (!(err instanceof ModelOutputError)) throw err;
            return {
              kind: 'needs_clarification',
              reasons: [`the model did not produce a working spec: ${err.message}`],
              ambiguity: 1,
              modelAvailable,
              usage: {
                tokens: (err.usage?.inputTokens ?? 0) + (err.usage?.outputTokens ?? 0),
                costUsd: err.costUsd ?? 0,
              },
            };
          }
          usage.tokens += planned.usage.inputTokens + planned.usage.outputTokens;
          usage.costUsd += planned.costUsd;
          parsed = parseWorkingSpec(planned.spec, { now });
          source = 'model';
          if (!parsed.ok) {
            return {
              kind: 'needs_clarification',
              reasons: ['the model planned an invalid spec:', ...parsed.errors],
              ambiguity: 1,
              modelAvailable,
              usage,
            };
          }
        } else {
          const ambiguity = assessAmbiguity({ title: req.title, description: req.description });
          return {
            kind: 'needs_clarification',
            reasons: [
              `no working spec in the request and no ${SPEC_FILE} in the workspace, and no language model is configured to plan one`,
              // Offline nothing can guess what the request leaves open: name it.
              ...missingFromRequest({ title: req.title, description: req.description }),
              ...ambiguity.reasons.filter((r) => !r.startsWith('no acceptance criteria')),
            ],
            ambiguity: Math.max(ambiguity.score, 0.5),
            modelAvailable,
            usage,
          };
        }
      }
      if (!parsed.ok) {
        throw ApplicationFailure.nonRetryable(
          `the working spec is invalid:\n${parsed.errors.join('\n')}`,
          'InvalidSpec',
        );
      }
      const spec = parsed.spec;
      if (spec.steps.length === 0 && !modelAvailable) {
        return {
          kind: 'needs_clarification',
          reasons: ['the working spec has no steps, and no language model is configured to act on it'],
          ambiguity: assessAmbiguity({ title: req.title, description: req.description, spec }).score,
          modelAvailable,
          usage,
        };
      }
      const specRef = await putArtifact(db, task.tenantId, JSON.stringify(spec, null, 2), 'application/json');
      activityLogger(log, task).info(
        {
          source,
          specId: spec.id,
          riskTier: spec.risk_tier,
          steps: spec.steps.length,
          warnings: parsed.warnings.length,
        },
        'task planned',
      );
      return {
        kind: 'planned',
        spec,
        specRef,
        planHash: hashJson(spec),
        plannedFiles: plannedFilesOf(spec.steps),
        commands: commandsOf(spec),
        warnings: parsed.warnings,
        source,
        modelAvailable,
        usage,
      };
    },

    /**
     * Between the council's revise rounds on a plan: the model revises the spec on the judges' dissent. Offline, or when
     * the model's answer is no valid spec, the plan stays as it is (`unchanged`, with why).
     */
    async revisePlan(
      task: TaskRef,
      req: { spec: WorkingSpec; dissent: { judge_id: string; reasons: string[] }[] },
    ): Promise<PlanRevision> {
      const none = { tokens: 0, costUsd: 0 };
      if (!model()) return { kind: 'unchanged', reason: 'no language model is configured', usage: none };
      let answer;
      try {
        answer = await withModel((m) => revisePlanWithModel(m, req));
      } catch (err) {
        if (!(err instanceof ModelOutputError)) throw err;
        const usage = {
          tokens: (err.usage?.inputTokens ?? 0) + (err.usage?.outputTokens ?? 0),
          costUsd: err.costUsd ?? 0,
        };
        return { kind: 'unchanged', reason: err.message, usage };
      }
      const usage = { tokens: answer.usage.inputTokens + answer.usage.outputTokens, costUsd: answer.costUsd };
      const parsed = parseWorkingSpec(answer.spec, { now: new Date().toISOString() });
      if (!parsed.ok)
        return { kind: 'unchanged', reason: `the revised spec is invalid: ${parsed.errors.join('; ')}`, usage };
      const spec = parsed.spec;
      activityLogger(log, task).info({ specId: spec.id, dissent: req.dissent.length }, 'plan revised on the dissent');
      return {
        kind: 'revised',
        spec,
        planHash: hashJson(spec),
        plannedFiles: plannedFilesOf(spec.steps),
        commands: commandsOf(spec),
        usage,
      };
    },

    /** Risk on four dimensions with its evidence; the tier can only become more critical than the spec claims. */
    assessTaskRisk(task: TaskRef, spec: WorkingSpec, description: string): Promise<RiskSummary> {
      const contents: Record<string, string> = {};
      for (const s of spec.steps) {
        if (s.kind === 'write_file') contents[s.path] = (contents[s.path] ?? '') + s.content;
        if (s.kind === 'replace') contents[s.path] = (contents[s.path] ?? '') + s.replace;
      }
      return Promise.resolve(
        riskSummaryOf(log, task, spec, 'plan', {
          files: plannedFilesOf(spec.steps),
          contents,
          commands: commandsOf(spec),
          spec,
          description,
        }),
      );
    },

    /**
     * Risk on the actual diff (its files and added lines, with the plan's commands): what an agent loop, which has no
     * planned steps, or a command's side effects really changed. Assessed before the council on the result.
     */
    async assessDiffRisk(
      task: TaskRef,
      spec: WorkingSpec,
      description: string,
      diffRef: ArtifactRef,
    ): Promise<RiskSummary> {
      const artifact = await getArtifact(db, task.tenantId, diffRef.sha256);
      if (!artifact) throw ApplicationFailure.nonRetryable(`diff ${diffRef.sha256} not found`, 'ArtifactMissing');
      const files = parseUnifiedDiff(artifact.content.toString('utf8'));
      const contents = Object.fromEntries(files.map((f) => [f.path, f.added.map((l) => l.text).join('\n')]));
      const changed = files.flatMap((f) => (f.oldPath ? [f.path, f.oldPath] : [f.path]));
      return riskSummaryOf(log, task, spec, 'diff', {
        files: changed,
        contents,
        commands: commandsOf(spec),
        spec,
        description,
      });
    },

    /** The tenant's waivers with these ids (unknown ids are simply absent: they waive nothing). */
    async loadWaivers(task: TaskRef, ids: string[]): Promise<Waiver[]> {
      const { rows } = await db.query<{ doc: unknown }>(
        `SELECT jsonb_build_object('id', id, 'gates', gates, 'reason', reason, 'impact_level', impact_level,
                'approved_by', approved_by, 'expires_at', to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                'created_at', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                'status', status, 'mitigation', mitigation, 'budget_delta', budget_delta) AS doc
           FROM waivers WHERE tenant_id = $1 AND id = ANY($2) AND status <> 'pending'`,
        [task.tenantId, ids],
      );
      return rows.flatMap((r) => {
        const doc = Object.fromEntries(Object.entries(r.doc as Record<string, unknown>).filter(([, v]) => v !== null));
        const parsed = WaiverSchema.safeParse(doc);
        return parsed.success ? [parsed.data] : [];
      });
    },

    /**
     * The gate commands registered for the task outside its spec (common/gate-commands.ts): the repository's
     * registration first, then the tenant's default (TENANT_GATE_COMMANDS), one per kind. The tier policy's required
     * gates run these (planGates).
     */
    async registeredGates(task: TaskRef, repositoryId?: string): Promise<RegisteredGate[]> {
      const repository = repositoryId ? await getRepository(db, task.tenantId, repositoryId) : undefined;
      return registeredGates(config.TENANT_GATE_COMMANDS ?? {}, task.tenantId, repository?.gates);
    },

    /** The agent loop's next action, from the configured model. */
    async nextAgentAction(_task: TaskRef, ctx: AgentContext): Promise<AgentAction> {
      try {
        return await withModel((m) => nextAgentActionWithModel(m, ctx));
      } catch (err) {
        if (err instanceof ModelOutputError) {
          // A malformed answer ends the loop for this iteration rather than failing the task; its tokens still count.
          return {
            kind: 'done',
            summary: `the model's answer was unusable: ${err.message}`,
            usage: err.usage ?? { inputTokens: 0, outputTokens: 0 },
            costUsd: err.costUsd ?? 0,
          };
        }
        throw err;
      }
    },

    /** Records a state transition of the task; idempotent under retry (key: the task's execution + action + suffix). */
    async recordTaskEvent(
      task: TaskRef,
      action: string,
      payload: Record<string, unknown>,
      suffix?: string,
    ): Promise<void> {
      // A refused, unverified attempt names no one (approver `unverified`, its claim aside): the system records it.
      const actor =
        action.startsWith('approval.') && typeof payload.approver === 'string' && payload.approver.startsWith('user:')
          ? payload.approver
          : 'system';
      await appendAuditEvent(db, {
        ...taskAudit(task, actor),
        action,
        idempotencyKey: `${task.executionKey}/${action}${suffix ? `/${suffix}` : ''}`,
        payload,
      });
      const final = FINAL_TASK_EVENT.exec(action);
      if (final) tasksCompletedTotal.inc({ status: final[1] });
      activityLogger(log, task)[final?.[1] === 'failed' ? 'warn' : 'info']({ action }, 'task event recorded');
    },

    /** The public keys signed decisions are checked against (a workflow asks when it meets an unknown key id). */
    async approvalPublicKeys(): Promise<ApprovalPublicKeys> {
      return loadApprovalPublicKeys(config);
    },

    /** Stores a JSON document as a content-addressed artifact of the task's tenant. */
    async storeJsonArtifact(task: TaskRef, _name: string, value: unknown): Promise<ArtifactRef> {
      return putArtifact(db, task.tenantId, JSON.stringify(value, null, 2), 'application/json');
    },
  };
}

export type PlanningActivities = ReturnType<typeof createPlanningActivities>;
