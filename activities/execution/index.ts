/**
 * Activities of the execution pool (queue agency-execution): an isolated copy of the workspace per task, the spec's
 * steps applied one activity each, quality gates, the diff as an artifact, and clean-up.
 *
 * Effects land once: a step's completion is recorded in the audit trail under an idempotency key built from the
 * workflow id and step index; a retried step that finds its record returns it instead of running again, and edits
 * are written so that applying them a second time changes nothing.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Context, ApplicationFailure } from '@temporalio/activity';
import { appendAuditEvent } from '../../common/audit.js';
import { putArtifact } from '../../common/artifacts.js';
import type { Config } from '../../common/config.js';
import type { Db } from '../../common/db.js';
import type { Logger } from '../../common/logger.js';
import type { DiffSummary } from '../../workflows/execution/definitions.js';
import { gateKind } from '../../workflows/task/policy.js';
import type { GateOutcome, StepOutcome, TaskRef } from '../../workflows/task/definitions.js';
import type { Gate, SpecStep } from '../../workflows/task/spec.js';
import { activityLogger, SILENT } from '../logging.js';
import { parseIstanbulSummary, parseLcov, parseStrykerReport } from './reports.js';
import { CommandRefused, runCommand } from './run-command.js';

const git = promisify(execFile);

export interface ExecutionDeps {
  db: Db;
  config: Pick<Config, 'EXECUTION_ALLOWED_COMMANDS' | 'EXECUTION_COMMAND_TIMEOUT' | 'WORKSPACES_DIR'>;
  /** Activity logs (with the task's correlation id); silent when not given. */
  log?: Logger;
}

/** Where a coverage or mutation gate's report is read when the gate names none. */
const DEFAULT_REPORTS: Partial<Record<string, string[]>> = {
  coverage: ['coverage/coverage-summary.json', 'coverage/lcov.info'],
  mutation: ['reports/mutation/mutation.json'],
};

/** Reads a coverage or mutation gate's measurement from its report; a missing or unreadable report is `missing`. */
async function measure(workdir: string, gate: Gate): Promise<{ value?: number; missing?: boolean; evidence: string }> {
  const kind = gateKind(gate);
  const candidates = gate.report ? [gate.report] : (DEFAULT_REPORTS[kind] ?? []);
  if (candidates.length === 0) return { evidence: 'exit code' };
  for (const relative of candidates) {
    const text = await readFile(insideWorkspace(workdir, relative), 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    try {
      if (kind === 'mutation') {
        const m = parseStrykerReport(text);
        return { value: m.score, evidence: `${relative}: ${m.detected}/${m.valid} mutants detected` };
      }
      const c = relative.endsWith('.json') ? parseIstanbulSummary(text) : parseLcov(text);
      return {
        value: c.value,
        evidence: `${relative}: ${c.basis} ${c.value.toFixed(4)}${c.note ? ` (${c.note})` : ''}`,
      };
    } catch (err) {
      return { missing: true, evidence: `${relative} is unreadable: ${(err as Error).message}` };
    }
  }
  return { missing: true, evidence: `no report at ${candidates.join(' or ')}` };
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Resolves a workspace-relative path and refuses anything that would leave the workspace. */
export function insideWorkspace(root: string, relative: string): string {
  const full = path.resolve(root, relative);
  if (full !== root && !full.startsWith(root + path.sep)) {
    throw ApplicationFailure.nonRetryable(
      `path ${JSON.stringify(relative)} leaves the workspace`,
      'PathOutsideWorkspace',
    );
  }
  return full;
}

export function createExecutionActivities({ db, config, log = SILENT }: ExecutionDeps) {
  const workspacesDir = config.WORKSPACES_DIR ?? path.join(os.tmpdir(), 'agency-workspaces');
  const workdirOf = (task: TaskRef): string =>
    path.join(workspacesDir, task.workflowId.replace(/[^A-Za-z0-9_.-]/g, '_'));
  const actor = 'worker:execution';

  /** The outcome recorded under an idempotency key by an earlier attempt, if any. */
  async function recorded(key: string): Promise<StepOutcome | undefined> {
    const { rows } = await db.query<{ payload: StepOutcome }>(
      'SELECT payload FROM audit_events WHERE idempotency_key = $1',
      [key],
    );
    return rows[0]?.payload;
  }

  return {
    /** Clones the workspace repository into a fresh directory for this task (reused when a retry finds it ready). */
    async prepareWorkspace(task: TaskRef, workspace: string): Promise<{ workdir: string; baseCommit: string }> {
      const workdir = workdirOf(task);
      const ready = path.join(workdir, '.git', 'agency-ready');
      if (!(await exists(ready))) {
        if (!(await exists(path.join(workspace, '.git')))) {
          throw ApplicationFailure.nonRetryable(`workspace ${workspace} is not a git repository`, 'InvalidWorkspace');
        }
        await rm(workdir, { recursive: true, force: true });
        await mkdir(workspacesDir, { recursive: true });
        await git('git', ['clone', '--quiet', '--no-hardlinks', workspace, workdir]);
        await writeFile(ready, task.workflowId);
      }
      const { stdout } = await git('git', ['rev-parse', 'HEAD'], { cwd: workdir });
      const baseCommit = stdout.trim();
      await appendAuditEvent(db, {
        tenantId: task.tenantId,
        actor,
        action: 'workspace.prepared',
        workflowId: task.workflowId,
        correlationId: task.correlationId,
        idempotencyKey: `${task.executionKey}/workspace.prepared`,
        payload: { baseCommit },
      });
      activityLogger(log, task).info({ workdir, baseCommit }, 'workspace prepared');
      return { workdir, baseCommit };
    },

    /** Applies one step of the spec. */
    async applyStep(task: TaskRef, workdir: string, index: number, step: SpecStep): Promise<StepOutcome> {
      const key = `${task.executionKey}/step-${index}`;
      const done = await recorded(key);
      if (done) return { ...done, skipped: true };

      let outcome: StepOutcome;
      if (step.kind === 'write_file') {
        const file = insideWorkspace(workdir, step.path);
        await mkdir(path.dirname(file), { recursive: true });
        await writeFile(file, step.content);
        outcome = { index, kind: step.kind, ok: true, detail: `wrote ${step.path}`, skipped: false };
      } else if (step.kind === 'replace') {
        const file = insideWorkspace(workdir, step.path);
        const before = await readFile(file, 'utf8').catch(() => {
          throw ApplicationFailure.nonRetryable(`step ${index}: ${step.path} does not exist`, 'StepFailed');
        });
        const count = before.split(step.find).length - 1;
        if (count === 1) {
          await writeFile(
            file,
            before.replace(step.find, () => step.replace),
          );
          outcome = { index, kind: step.kind, ok: true, detail: `replaced text in ${step.path}`, skipped: false };
        } else if (count === 0 && step.replace && before.includes(step.replace)) {
          // An earlier attempt applied it and died before recording: applying again would change nothing.
          outcome = { index, kind: step.kind, ok: true, detail: `already applied to ${step.path}`, skipped: true };
        } else {
          outcome = {
            index,
            kind: step.kind,
            ok: false,
            detail: `expected the text to replace exactly once in ${step.path}, found it ${count} times`,
            skipped: false,
          };
        }
      } else {
        try {
          const result = await runCommand(step.run, {
            cwd: workdir,
            timeoutMs: (step.timeout_seconds ?? config.EXECUTION_COMMAND_TIMEOUT / 1000) * 1000,
            allowed: config.EXECUTION_ALLOWED_COMMANDS,
            signal: Context.current().cancellationSignal,
            onTick: () => Context.current().heartbeat(),
            groupFile: path.join(workdir, '.git', `agency-step-${index}.pgid`),
          });
          const ok = result.exitCode === 0;
          const what = result.timedOut ? 'timed out' : `exited with ${result.exitCode ?? result.signal}`;
          outcome = { index, kind: step.kind, ok, detail: `${step.run.join(' ')} ${what}`, skipped: false };
        } catch (err) {
          if (err instanceof CommandRefused) throw ApplicationFailure.nonRetryable(err.message, 'CommandRefused');
          throw err;
        }
      }
      await appendAuditEvent(db, {
        tenantId: task.tenantId,
        actor,
        action: 'step.applied',
        subject: `step-${index}`,
        workflowId: task.workflowId,
        correlationId: task.correlationId,
        idempotencyKey: key,
        payload: { ...outcome },
      });
      activityLogger(log, task)[outcome.ok ? 'info' : 'warn'](
        { step: index, kind: step.kind, ok: outcome.ok, detail: outcome.detail },
        'step applied',
      );
      return outcome;
    },

    /** Runs one quality gate; its full output is kept as an artifact. */
    async runGate(task: TaskRef, workdir: string, gate: Gate): Promise<GateOutcome> {
      let result;
      try {
        result = await runCommand(gate.run, {
          cwd: workdir,
          timeoutMs: (gate.timeout_seconds ?? config.EXECUTION_COMMAND_TIMEOUT / 1000) * 1000,
          allowed: config.EXECUTION_ALLOWED_COMMANDS,
          signal: Context.current().cancellationSignal,
          onTick: () => Context.current().heartbeat(),
          groupFile: path.join(workdir, '.git', `agency-gate-${gate.name}.pgid`),
        });
      } catch (err) {
        if (err instanceof CommandRefused) throw ApplicationFailure.nonRetryable(err.message, 'CommandRefused');
        throw err;
      }
      const header = `$ ${gate.run.join(' ')}\nexit ${result.exitCode ?? result.signal}${result.timedOut ? ' (timed out)' : ''} in ${result.durationMs} ms${result.truncated ? ' (output truncated)' : ''}\n\n`;
      const logRef = await putArtifact(db, task.tenantId, header + result.output, 'text/plain; charset=utf-8');
      const measured = await measure(workdir, gate);
      const outcome: GateOutcome = {
        name: gate.name,
        kind: gateKind(gate),
        passed: result.exitCode === 0 && !result.timedOut,
        exitCode: result.exitCode,
        durationMs: result.durationMs,
        logRef,
        ...measured,
      };
      await appendAuditEvent(db, {
        tenantId: task.tenantId,
        actor,
        action: 'gate.evaluated',
        subject: gate.name,
        workflowId: task.workflowId,
        correlationId: task.correlationId,
        idempotencyKey: `${task.executionKey}/gate-${gate.name}/${Context.current().info.activityId}`,
        payload: { ...outcome },
      });
      activityLogger(log, task).info(
        { gate: gate.name, passed: outcome.passed, exitCode: outcome.exitCode, durationMs: outcome.durationMs },
        'gate evaluated',
      );
      return outcome;
    },

    /** The unified diff of everything the task changed (tracked and new files), stored as an artifact. */
    async collectDiff(task: TaskRef, workdir: string, excludePaths: string[] = []): Promise<DiffSummary> {
      // Reports the gates wrote (coverage, mutation) are evidence, not part of the change.
      const excluded = excludePaths.map((p) => `:(exclude)${insideWorkspace(workdir, p).slice(workdir.length + 1)}`);
      await git('git', ['add', '--all', '--', '.', ...excluded], { cwd: workdir });
      const opts = { cwd: workdir, maxBuffer: 64 * 1024 * 1024 };
      const { stdout: diff } = await git('git', ['diff', '--cached', '--binary', 'HEAD'], opts);
      const { stdout: numstat } = await git('git', ['diff', '--cached', '--numstat', 'HEAD'], opts);
      let linesAdded = 0;
      let linesRemoved = 0;
      const files: string[] = [];
      for (const line of numstat.split('\n').filter(Boolean)) {
        const [added, removed, file] = line.split('\t');
        files.push(file ?? '');
        linesAdded += Number(added) || 0;
        linesRemoved += Number(removed) || 0;
      }
      const diffRef = await putArtifact(db, task.tenantId, diff, 'text/x-diff');
      return { diffRef, files, linesAdded, linesRemoved };
    },

    /** Snapshots the workspace (tracked and new files) as a git tree, so a worse iteration can be undone. */
    async checkpointWorkspace(_task: TaskRef, workdir: string, _iteration: number): Promise<string> {
      await git('git', ['add', '--all'], { cwd: workdir });
      const { stdout } = await git('git', ['write-tree'], { cwd: workdir });
      return stdout.trim();
    },

    /** Puts the workspace back to a checkpoint: files added since are removed, changed files restored. */
    async restoreCheckpoint(_task: TaskRef, workdir: string, tree: string): Promise<void> {
      await git('git', ['read-tree', '--reset', '-u', tree], { cwd: workdir });
      await git('git', ['clean', '-fdq', '-e', '.git'], { cwd: workdir });
    },

    /** Removes the task's workspace copy. Safe to call twice. */
    async cleanupWorkspace(task: TaskRef): Promise<void> {
      await rm(workdirOf(task), { recursive: true, force: true });
    },
  };
}

export type ExecutionActivities = ReturnType<typeof createExecutionActivities>;
