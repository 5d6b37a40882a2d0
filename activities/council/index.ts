/**
 * Activities of the council pool (queue agency-council): one judge's verdict, and the signed record of a session's
 * outcome.
 *
 * A judge always runs its deterministic evaluator (works offline: budgets and scope on the diff, waivers, secrets,
 * unfinished markers, dangerous commands, acceptance coverage, contracts and migrations). When a model is configured
 * it also asks the model; the model's answer must match the verdict schema, and a malformed answer makes the judge
 * `uncertain`, keeping the deterministic violations (so a critical finding still vetoes).
 *
 * A judge heartbeats while it judges (when the workflow gave it a heartbeat timeout): a worker that dies mid-vote is
 * noticed within that timeout, whatever the model's latency, and the council asks again on another worker.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { z } from 'zod';
import { appendAuditEvent, taskAudit } from '../../common/audit.js';
import { getArtifact, putArtifact } from '../../common/artifacts.js';
import type { Config } from '../../common/config.js';
import type { Db } from '../../common/db.js';
import type { Logger } from '../../common/logger.js';
import {
  councilConsensusTotal,
  councilDecisionSeconds,
  councilReviewsTotal,
  judgeLatencySeconds,
  judgeVerdictsTotal,
} from '../../common/metrics.js';
import { loadOrCreateSigningKey, signJson, type SigningKey } from '../../common/signing.js';
import {
  EvidenceSchema,
  SeveritySchema,
  VerdictSchema,
  type JudgeId,
  type JudgeInput,
  type JudgeVerdict,
} from '../../workflows/council/definitions.js';
import type { JudgeRequest } from '../../workflows/council/session.js';
import type { ArtifactRef, TaskRef, VerdictSignature } from '../../workflows/task/definitions.js';
import type { FinalVerdict } from '../../workflows/council/definitions.js';
import { judgeWithModelMetered } from '../planning/llm-planner.js';
import { toActivityFailure } from '../planning/model-errors.js';
import { activityLanguageModel, type LanguageModel } from '../planning/providers.js';
import { activityLogger, SILENT } from '../logging.js';
import { JUDGE_EVALUATORS } from './judges/index.js';

export interface CouncilDeps {
  db: Db;
  config: Config;
  /** Overrides the configured model (tests); undefined means "use the configuration". */
  model?: LanguageModel | null;
  /** Activity logs (with the task's correlation id); silent when not given. */
  log?: Logger;
}

export interface JudgeOutcome {
  verdict: JudgeVerdict;
  usage: { tokens: number; costUsd: number };
}

const RANK = { pass: 0, uncertain: 1, fail: 2 } as const;

/**
 * A model's verdict as the `submit_verdict` tool asks for it: verdict, score, reasons and violations are required;
 * `evidence` and a violation's `message`, `file` and `line` are not, so an answer without them is still a verdict.
 */
const ModelVerdictSchema = z.object({
  verdict: VerdictSchema,
  score: z.number().min(0).max(1),
  reasons: z.array(z.string()),
  violations: z.array(
    z.object({
      rule_id: z.string().min(1),
      severity: SeveritySchema,
      waivable: z.boolean(),
      message: z.string().optional(),
      file: z.string().optional(),
      line: z.number().int().min(0).optional(),
    }),
  ),
  evidence: z.array(EvidenceSchema).default(() => []),
});

/** The model's answer as this judge's verdict, or undefined when it does not match the tool's schema. */
export function modelVerdictOf(judgeId: JudgeId, version: string, answer: unknown): JudgeVerdict | undefined {
  const parsed = ModelVerdictSchema.safeParse(answer);
  if (!parsed.success) return undefined;
  const { verdict, score, reasons, violations, evidence } = parsed.data;
  return {
    judge_id: judgeId,
    version,
    verdict,
    score,
    reasons,
    violations: violations.map((v) => ({ ...v, message: v.message ?? `reported by the model as ${v.rule_id}` })),
    evidence,
  };
}

/** The stricter of two verdicts of the same judge, with both sets of reasons, violations and evidence. */
export function mergeVerdicts(rules: JudgeVerdict, model: JudgeVerdict): JudgeVerdict {
  return {
    judge_id: rules.judge_id,
    version: `${rules.version}+model`,
    verdict: RANK[model.verdict] > RANK[rules.verdict] ? model.verdict : rules.verdict,
    score: Math.min(rules.score, model.score),
    reasons: [...rules.reasons, ...model.reasons.map((r) => `model: ${r}`)],
    violations: [...rules.violations, ...model.violations],
    evidence: [...rules.evidence, ...model.evidence],
  };
}

/** `unanimous` when every judge of the deciding round gave the same verdict, else `split`. */
export function consensusOf(votes: readonly Pick<JudgeVerdict, 'verdict'>[]): 'unanimous' | 'split' {
  return new Set(votes.map((v) => v.verdict)).size <= 1 ? 'unanimous' : 'split';
}

/**
 * Seconds since the council session (the workflow running this activity) started, as the server recorded it;
 * undefined outside an activity or when the server does not answer within 2 s (the metric is then not observed).
 */
async function sessionAgeSeconds(sessionId: string): Promise<number | undefined> {
  try {
    const { client, info } = Context.current();
    const described = await client.connection.withDeadline(Date.now() + 2_000, () =>
      client.workflowService.describeWorkflowExecution({
        namespace: info.workflowNamespace ?? info.activityNamespace,
        execution: { workflowId: sessionId },
      }),
    );
    const start = described.workflowExecutionInfo?.startTime;
    if (!start?.seconds) return undefined;
    const startedMs = Number(start.seconds) * 1000 + Math.floor((start.nanos ?? 0) / 1e6);
    return Math.max(0, (Date.now() - startedMs) / 1000);
  } catch {
    return undefined;
  }
}

/**
 * Heartbeats every third of the activity's heartbeat timeout until stopped. The details (the judge's id) tell a
 * start-to-close on a live judge from one on a worker that never heartbeated (workflows/council/handover.ts). Does
 * nothing outside an activity or without a heartbeat timeout.
 */
function keepHeartbeating(details: string): () => void {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return () => undefined; // called outside an activity (a test)
  }
  const timeoutMs = ctx.info.heartbeatTimeoutMs;
  if (!timeoutMs) return () => undefined;
  ctx.heartbeat(details);
  const timer = setInterval(() => ctx.heartbeat(details), Math.max(50, Math.floor(timeoutMs / 3)));
  return () => clearInterval(timer);
}

export function createCouncilActivities({ db, config, model: override, log = SILENT }: CouncilDeps) {
  let key: Promise<SigningKey> | undefined;
  const signingKey = (): Promise<SigningKey> => (key ??= loadOrCreateSigningKey(config.SIGNING_KEY_DIR));
  const model = (): LanguageModel | undefined => activityLanguageModel(config, override);

  const activities = {
    async runJudge(task: TaskRef, request: JudgeRequest): Promise<JudgeOutcome> {
      let diff: string | undefined;
      if (request.diffRef) {
        const artifact = await getArtifact(db, task.tenantId, request.diffRef.sha256);
        if (!artifact)
          throw ApplicationFailure.nonRetryable(`diff ${request.diffRef.sha256} not found`, 'ArtifactMissing');
        diff = artifact.content.toString('utf8');
      }
      const { judgeId, diffRef: _ref, subjectHash: _hash, ...rest } = request;
      const input: JudgeInput = { ...rest, diff };
      const rules = JUDGE_EVALUATORS[judgeId](input);
      const m = model();
      if (!m) return { verdict: rules, usage: { tokens: 0, costUsd: 0 } };

      let answer;
      try {
        answer = await judgeWithModelMetered(m, judgeId, {
          phase: input.phase,
          tier: input.tier,
          spec: { title: input.spec.title, scope: input.spec.scope, acceptance: input.spec.acceptance },
          diff: diff ?? null,
          gates: input.gates,
          deterministic_findings: rules.violations,
          dissent: input.dissent ?? [],
        });
      } catch (err) {
        throw toActivityFailure(err);
      }
      const usage = { tokens: answer.usage.inputTokens + answer.usage.outputTokens, costUsd: answer.costUsd };
      const fromModel = modelVerdictOf(judgeId, m.model, answer.verdict);
      if (!fromModel) {
        return {
          verdict: {
            ...rules,
            version: `${rules.version}+model`,
            verdict: 'uncertain',
            score: Math.min(rules.score, 0.5),
            reasons: [
              ...rules.reasons,
              'the model returned a verdict that does not match the schema; counted as uncertain',
            ],
          },
          usage,
        };
      }
      return { verdict: mergeVerdicts(rules, fromModel), usage };
    },

    /** Signs the final verdict (Ed25519 over canonical JSON), stores it as an artifact and appends it to the audit trail. */
    async recordVerdict(
      task: TaskRef,
      record: {
        sessionId: string;
        phase: 'plan' | 'result';
        subjectHash: string;
        verdict: FinalVerdict;
        votes: JudgeVerdict[];
      },
    ): Promise<{ verdictRef: ArtifactRef; signature: VerdictSignature }> {
      const k = await signingKey();
      await db.query(
        'INSERT INTO signing_keys (key_id, public_key_pem) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING',
        [k.keyId, k.publicKeyPem],
      );
      const payload = { tenantId: task.tenantId, taskId: task.taskId, workflowId: task.workflowId, ...record };
      const signature = signJson(payload, k);
      const verdictRef = await putArtifact(
        db,
        task.tenantId,
        JSON.stringify({ payload, signature, publicKeyPem: k.publicKeyPem }, null, 2),
        'application/vnd.agency.signed-verdict+json',
      );
      await appendAuditEvent(db, {
        ...taskAudit(task, 'council:session'),
        action: 'council.verdict',
        subject: record.sessionId,
        idempotencyKey: `${task.executionKey}/council.verdict/${record.sessionId}`,
        payload: {
          phase: record.phase,
          decision: record.verdict.decision,
          score: record.verdict.score,
          votes: record.verdict.votes,
          artifact: verdictRef.sha256,
          signature,
        },
      });
      return { verdictRef, signature };
    },

    /** Records that the council could not decide and a person will. */
    async recordEscalation(
      task: TaskRef,
      record: {
        sessionId: string;
        phase: 'plan' | 'result';
        subjectHash: string;
        reason: string;
        score: number;
        votes: JudgeVerdict[];
        /** `infrastructure`: a vote was lost to workers, not decided by a judge. */
        cause?: 'infrastructure';
      },
    ): Promise<void> {
      await appendAuditEvent(db, {
        ...taskAudit(task, 'council:session'),
        action: 'council.escalated',
        subject: record.sessionId,
        idempotencyKey: `${task.executionKey}/council.escalated/${record.sessionId}`,
        payload: {
          phase: record.phase,
          reason: record.reason,
          score: record.score,
          subjectHash: record.subjectHash,
          ...(record.cause ? { cause: record.cause } : {}),
        },
      });
    },
  };

  /** Council metrics of a session that ended (observed after its audit event was written: at least once). */
  async function observeSession(
    sessionId: string,
    phase: 'plan' | 'result',
    decision: FinalVerdict['decision'] | 'escalate',
    consensus: 'unanimous' | 'split' | 'escalated',
  ): Promise<void> {
    councilReviewsTotal.inc({ phase, decision });
    councilConsensusTotal.inc({ phase, consensus });
    const age = await sessionAgeSeconds(sessionId);
    if (age !== undefined) councilDecisionSeconds.observe({ phase, decision }, age);
  }

  // The activities as registered: the same, plus their metrics and log lines.
  return {
    ...activities,

    async runJudge(task: TaskRef, request: JudgeRequest): Promise<JudgeOutcome> {
      const started = performance.now();
      const stopHeartbeats = keepHeartbeating(request.judgeId);
      const outcome = await activities.runJudge(task, request).finally(stopHeartbeats);
      const latencyMs = performance.now() - started;
      const labels = { judge: request.judgeId, phase: request.phase };
      judgeLatencySeconds.observe(labels, latencyMs / 1000);
      judgeVerdictsTotal.inc({ ...labels, verdict: outcome.verdict.verdict });
      activityLogger(log, task).info(
        { ...labels, verdict: outcome.verdict.verdict, score: outcome.verdict.score, latencyMs: Math.round(latencyMs) },
        'judge verdict',
      );
      return outcome;
    },

    async recordVerdict(
      task: TaskRef,
      record: Parameters<typeof activities.recordVerdict>[1],
    ): ReturnType<typeof activities.recordVerdict> {
      const recorded = await activities.recordVerdict(task, record);
      const { decision, score, rounds } = record.verdict;
      const consensus = consensusOf(record.votes);
      await observeSession(record.sessionId, record.phase, decision, consensus);
      activityLogger(log, task).info(
        { sessionId: record.sessionId, phase: record.phase, decision, score, rounds, consensus },
        'council verdict recorded',
      );
      return recorded;
    },

    async recordEscalation(task: TaskRef, record: Parameters<typeof activities.recordEscalation>[1]): Promise<void> {
      await activities.recordEscalation(task, record);
      await observeSession(record.sessionId, record.phase, 'escalate', 'escalated');
      activityLogger(log, task).warn(
        { sessionId: record.sessionId, phase: record.phase, reason: record.reason, score: record.score },
        'council escalated to a person',
      );
    },
  };
}

export type CouncilActivities = ReturnType<typeof createCouncilActivities>;
