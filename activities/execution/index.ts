/**
 * Activities of the execution pool (queue agency-execution): an isolated copy of the workspace per task, the spec's
 * steps applied one activity each, quality gates, the diff as an artifact, and clean-up.
 *
 * Effects land once: a step's completion is recorded in the audit trail under an idempotency key built from the
 * workspace and the step index; a retried step that finds its record returns it instead of running again, and edits
 * are written so that applying them a second time changes nothing.
 *
 * Workspaces are portable (./workspace.ts): activities take the workflow's WorkspaceRef and bring this worker's copy
 * to its head first, and a step that changed the files records a new head. A `string` in its place is the directory of
 * a run started before that (one worker's disk), served as it was then.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { lstat, mkdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Context, ApplicationFailure } from '@temporalio/activity';
import { appendAuditEvent, taskAudit } from '../../common/audit.js';
import { putArtifact } from '../../common/artifacts.js';
import type { Config } from '../../common/config.js';
import type { Db } from '../../common/db.js';
import { hashJson, sha256Hex } from '../../common/hash.js';
import type { Logger } from '../../common/logger.js';
import type { DiffSummary, WorkspaceRef } from '../../workflows/execution/definitions.js';
import {
  approvalKey,
  toolRequestOf,
  type AgentToolInfo,
  type SecurityLevel,
  type ToolBinding,
  type ToolGrant,
  type ToolPlan,
} from '../../workflows/execution/tools.js';
import { gateKind } from '../../workflows/task/policy.js';
import type { GateOutcome, StepOutcome, TaskRef } from '../../workflows/task/definitions.js';
import type { Gate, GateKind, SpecStep } from '../../workflows/task/spec.js';
import { activityLogger, SILENT } from '../logging.js';
import {
  criteriaTests,
  parseEslintJson,
  parseIstanbulSummary,
  parseJUnit,
  parseLcov,
  parseStrykerReport,
} from './reports.js';
import { callTool, type ToolCallResult } from './tools/call.js';
import { ToolClients } from './tools/clients.js';
import { createToolLayer, type DiscoveryResult } from './tools/index.js';
import { getServer, storeDiscovery, type DiscoveredTool, type ToolServer } from '../../common/tool-registry.js';
import { createWorkspaces, sweepIdleWorkspaces } from './workspace.js';
import { createRepositoryActivities } from './repository.js';
import { localSource } from '../source.js';
import { releaseBlobRefs } from '../../common/blob-store/index.js';
import type { WorkspaceSource } from '../../workflows/task/definitions.js';

const git = promisify(execFile);

export interface ExecutionDeps {
  db: Db;
  config: Pick<
    Config,
    | 'EXECUTION_ALLOWED_COMMANDS'
    | 'EXECUTION_COMMAND_TIMEOUT'
    | 'WORKSPACES_DIR'
    | 'SANDBOX_ALLOW_UNSANDBOXED'
    | 'BWRAP_PATH'
    | 'SANDBOX_MAX_PROCESSES'
    | 'SANDBOX_MEMORY_BYTES'
  > &
    Partial<Pick<Config, 'WORKSPACE_IDLE_TTL' | 'REPOSITORY_FILE_ROOTS'>>;
  /** Activity logs (with the task's correlation id); silent when not given. */
  log?: Logger;
  /** MCP connections of this worker (made here when not given; closed with closeToolClients). */
  clients?: ToolClients;
}

/** Built-in edit tools: they take the hash of the content they replace (mcp/workspace-server). */
const EDIT_TOOLS = new Set(['write_file', 'apply_patch']);

/** sha256 of a workspace file as it is now, or `absent`. Only regular files are hashed. */
async function fileHash(workdir: string, relative: string): Promise<string> {
  const file = insideWorkspace(workdir, relative);
  const info = await lstat(file).catch(() => undefined);
  if (!info) return 'absent';
  if (!info.isFile()) return 'not-a-regular-file';
  return sha256Hex(await readFile(file));
}

interface CommandRun {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  output: string;
  truncated: boolean;
}

/** What run_command reported (structured), or the refusal text when it refused or hit a limit. */
function commandResult(r: ToolCallResult): CommandRun {
  const s = r.structured;
  if (r.outcome === 'ok' && s && 'exitCode' in s) {
    return {
      exitCode: typeof s.exitCode === 'number' ? s.exitCode : null,
      signal: typeof s.signal === 'string' ? s.signal : null,
      timedOut: s.timedOut === true,
      output: typeof s.output === 'string' ? s.output : r.text,
      truncated: s.truncated === true,
    };
  }
  const timedOut = r.outcome === 'timeout' || /time limit|timed out/i.test(r.text);
  return { exitCode: null, signal: null, timedOut, output: r.text, truncated: r.truncated };
}

function stepOutcome(index: number, step: SpecStep, r: ToolCallResult, note: string): StepOutcome {
  const via = `${r.server}/${r.tool}`;
  if (step.kind === 'command') {
    const run = commandResult(r);
    const what = run.timedOut
      ? 'timed out'
      : r.outcome === 'ok'
        ? `exited with ${run.exitCode ?? run.signal}`
        : `was not run: ${r.text.slice(0, 500)}`;
    return {
      index,
      kind: step.kind,
      ok: r.outcome === 'ok' && run.exitCode === 0,
      detail: `${step.run.join(' ')} ${what}`,
      skipped: false,
    };
  }
  const already = r.structured?.already === true;
  const s = r.structured;
  // The workspace edit tools answer with {path, sha256, applied, already}: said in words, the JSON is in the audit.
  const summary =
    r.outcome === 'ok' && s && typeof s.path === 'string' && typeof s.sha256 === 'string' && 'applied' in s
      ? `${already ? 'already applied to' : 'applied to'} ${s.path} (now sha256 ${s.sha256.slice(0, 12)})`
      : undefined;
  const text = summary ?? (r.text.length > 500 ? `${r.text.slice(0, 500)}…` : r.text);
  return {
    index,
    kind: step.kind,
    ok: r.outcome === 'ok',
    detail: `${via}: ${r.outcome === 'ok' ? text || 'ok' : `${r.outcome}: ${text}`}${note}`,
    skipped: already,
  };
}

const allClients = new Set<ToolClients>();
const sweepers = new Set<NodeJS.Timeout>();
/**
 * Closes every MCP connection the execution activities of this process opened, and stops their idle-workspace sweeps
 * (worker shutdown, tests).
 */
export async function closeToolClients(): Promise<void> {
  for (const timer of sweepers) clearInterval(timer);
  sweepers.clear();
  await Promise.all([...allClients].map((c) => c.closeAll()));
}

/**
 * Each gate run writes its report into an output directory the platform names and creates empty just before the
 * command (`{out}` in the gate's argv is replaced by its workspace-relative path), and the report is read from there
 * only: a report left in the workspace by an earlier run, or committed to the repository, never counts.
 */
export const GATE_OUTPUT_ROOT = '.agency/gates';
export const OUT_PLACEHOLDER = '{out}';

/** The report file read in the output directory when the gate names none, by kind, in order. */
const DEFAULT_REPORTS: Record<GateKind, string[]> = {
  tests: ['junit.xml'],
  coverage: ['coverage-summary.json', 'lcov.info'],
  mutation: ['mutation.json'],
  lint: ['eslint.json', 'junit.xml'],
  types: ['junit.xml'],
  contracts: ['junit.xml'],
  custom: ['junit.xml'],
};

type Measured = Pick<GateOutcome, 'value' | 'missing' | 'evidence' | 'tests' | 'acceptance'> & {
  /** What the report shows for a pass/fail gate: checks ran and none failed. Undefined for threshold gates. */
  reportPassed?: boolean;
  report?: { relative: string; text: string };
};

/** Reads a gate's measurement from its report in this run's output directory; no readable report is `missing`. */
async function measure(
  outDir: string,
  outRel: string,
  gate: Gate,
  acceptanceIds: readonly string[],
): Promise<Measured> {
  const kind = gateKind(gate);
  const candidates = gate.report ? [gate.report] : DEFAULT_REPORTS[kind];
  for (const name of candidates) {
    const relative = `${outRel}/${name}`;
    const text = await readFile(insideWorkspace(outDir, name), 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const report = { relative, text };
    try {
      if (kind === 'mutation') {
        const m = parseStrykerReport(text);
        return { value: m.score, evidence: `${relative}: ${m.detected}/${m.valid} mutants detected`, report };
      }
      if (kind === 'coverage') {
        const c = name.endsWith('.json') ? parseIstanbulSummary(text) : parseLcov(text);
        const note = c.note ? ` (${c.note})` : '';
        return { value: c.value, evidence: `${relative}: ${c.basis} ${c.value.toFixed(4)}${note}`, report };
      }
      if (name.endsWith('.json')) {
        const l = parseEslintJson(text);
        const evidence = `${relative}: ${l.files} file(s) linted, ${l.errors} error(s), ${l.warnings} warning(s)`;
        return { reportPassed: l.errors === 0, evidence, report };
      }
      const t = parseJUnit(text);
      const tests = { ran: t.ran, passed: t.passed, failed: t.failed, skipped: t.skipped };
      const acceptance = acceptanceIds.length ? criteriaTests(t, acceptanceIds) : undefined;
      const shows =
        t.ran === 0
          ? 'no test ran'
          : `${t.ran} ran, ${t.passed} passed, ${t.failed} failed${t.skipped ? `, ${t.skipped} skipped` : ''}`;
      return {
        reportPassed: t.ran > 0 && t.failed === 0,
        evidence: `${relative}: ${shows}`,
        tests,
        acceptance,
        report,
      };
    } catch (err) {
      return { missing: true, evidence: `${relative} is unreadable: ${(err as Error).message}`, report };
    }
  }
  const where = candidates.map((c) => `${outRel}/${c}`).join(' or ');
  return { missing: true, evidence: `no report at ${where}: this run wrote none` };
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

export function createExecutionActivities({ db, config, log = SILENT, clients: given }: ExecutionDeps) {
  const workspacesDir = config.WORKSPACES_DIR ?? path.join(os.tmpdir(), 'agency-workspaces');
  const workdirOf = (task: TaskRef): string =>
    path.join(workspacesDir, task.workflowId.replace(/[^A-Za-z0-9_.-]/g, '_'));
  const actor = 'worker:execution';
  const workspaces = createWorkspaces(db, workspacesDir);
  /** This worker's copy of the workspace at its recorded head (a legacy directory as it is). */
  const local = (workspace: string | WorkspaceRef): Promise<string> =>
    typeof workspace === 'string'
      ? Promise.resolve(workspace)
      : workspaces.materialize(workspace, () => Context.current().heartbeat());
  const clients =
    given ??
    new ToolClients({
      // The platform's own servers (the workspace server) get the command allow-list and the sandbox's limits.
      platformEnv: {
        WORKSPACE_ALLOWED_COMMANDS: config.EXECUTION_ALLOWED_COMMANDS.join(','),
        SANDBOX_TIMEOUT_SECONDS: String(Math.ceil(config.EXECUTION_COMMAND_TIMEOUT / 1000)),
        SANDBOX_ALLOW_UNSANDBOXED: String(config.SANDBOX_ALLOW_UNSANDBOXED),
        SANDBOX_MAX_PROCESSES: String(config.SANDBOX_MAX_PROCESSES),
        SANDBOX_MEMORY_BYTES: String(config.SANDBOX_MEMORY_BYTES),
        ...(config.BWRAP_PATH ? { BWRAP_PATH: config.BWRAP_PATH } : {}),
      },
      onToolsChanged: (server, tools) => storeDiscovery(db, server.id, tools),
      log,
    });
  allClients.add(clients);
  const idleMs = config.WORKSPACE_IDLE_TTL;
  if (idleMs) {
    // Copies of workspaces this worker served once and others finished: removed, with their tool servers, when idle.
    const sweep = setInterval(
      () =>
        void sweepIdleWorkspaces(workspacesDir, idleMs)
          .then((dirs) => Promise.all(dirs.map((d) => clients.closeWorkspace(d))))
          .catch((err: unknown) => log.warn({ err }, 'idle workspace sweep failed')),
      Math.min(idleMs, 3_600_000),
    );
    sweep.unref();
    sweepers.add(sweep);
  }
  const tools = createToolLayer({ db, clients, log });
  const repositories = createRepositoryActivities({
    db,
    fileRoots: config.REPOSITORY_FILE_ROOTS ?? {},
    workspaces,
    log,
  });

  /**
   * Two tools that claim the same capability must agree on a read-only call: the alternate is called too, and a
   * different answer is recorded as a conflict with both digests; the registry's ordering decides (the bound tool,
   * the one of lower priority number, stands).
   */
  async function crossCheck(
    task: TaskRef,
    index: number,
    primary: ToolCallResult,
    alternate: { serverId: string; tool: string },
    call: (s: ToolServer, t: DiscoveredTool) => Promise<ToolCallResult>,
  ): Promise<string> {
    const other = await tools.lookup(task.tenantId, alternate.serverId, alternate.tool).then(
      ({ server, tool }) => call(server, tool),
      () => undefined,
    );
    if (!other || other.outcome !== 'ok') return '';
    const digest = (r: ToolCallResult) => hashJson(r.structured ?? r.text);
    if (digest(other) === digest(primary)) return '';
    await appendAuditEvent(db, {
      ...taskAudit(task, actor),
      action: 'tool.conflict',
      subject: `step-${index}`,
      idempotencyKey: `${task.executionKey}/step-${index}/tool-conflict`,
      payload: {
        kind: 'tool_disagreement',
        steps: [index],
        evidence: {
          [`${primary.server}/${primary.tool}`]: { sha256: digest(primary), excerpt: primary.text.slice(0, 200) },
          [`${other.server}/${other.tool}`]: { sha256: digest(other), excerpt: other.text.slice(0, 200) },
        },
        resolution: 'priority',
        detail: `${primary.server}/${primary.tool} stands (registry priority)`,
      },
    });
    return ` (conflict: ${other.server}/${other.tool} answered differently; ${primary.server} stands by priority)`;
  }

  /** The outcome recorded under an idempotency key by an earlier attempt, if any. */
  async function recorded(key: string): Promise<StepOutcome | undefined> {
    const { rows } = await db.query<{ payload: StepOutcome }>(
      'SELECT payload FROM audit_events WHERE idempotency_key = $1',
      [key],
    );
    return rows[0]?.payload;
  }

  return {
    ...repositories,

    /**
     * Clones the workspace repository into a new workspace of this execution run and stores its base bundle, so any
     * worker can rebuild it (reused when a retry finds it ready). The workspace's id is the run's: a reset run gets
     * its own workspace, and its own step records.
     */
    async prepareWorkspace(
      task: TaskRef,
      source: WorkspaceSource,
    ): Promise<{ workdir: string; baseCommit: string; workspace: WorkspaceRef }> {
      // A fetched repository (a bundle in the blob store) or the deprecated local path.
      const workspace = await localSource(db, source);
      if (!(await exists(path.join(workspace, '.git')))) {
        throw ApplicationFailure.nonRetryable(`workspace ${workspace} is not a git repository`, 'InvalidWorkspace');
      }
      const id = Context.current().info.workflowExecution?.runId ?? randomUUID();
      const { workdir, ref } = await workspaces.create(task.tenantId, id, workspace);
      const baseCommit = ref.baseCommit;
      await appendAuditEvent(db, {
        ...taskAudit(task, actor),
        action: 'workspace.prepared',
        idempotencyKey: `${task.executionKey}/workspace-${id}/prepared`,
        payload: { baseCommit, workspace: id },
      });
      activityLogger(log, task).info({ workdir, baseCommit, workspace: id }, 'workspace prepared');
      return { workdir, baseCommit, workspace: ref };
    },

    /**
     * Applies one step: exactly one MCP tool call, through the tool the coordinator bound (or binds now, for an agent
     * turn). The step's record under its idempotency key makes a retry return the first outcome; an edit also carries
     * the hash of the content it expects to replace, pinned in an intent record before the first attempt, so a retry
     * after a crash between the edit and its record finds the edit applied instead of applying it twice.
     *
     * With a WorkspaceRef, the step is applied to this worker's copy brought to the recorded head, the result is
     * recorded as the new head (returned as `workspace`, and kept in the step's record, so a retry that finds the
     * record moves the workflow to the head the step made), and the key belongs to the workspace: a reset run's new
     * workspace applies every step once to itself.
     */
    async applyStep(
      task: TaskRef,
      workspace: string | WorkspaceRef,
      index: number,
      step: SpecStep,
      binding?: ToolBinding,
      grant: ToolGrant = { allowedLevel: 'standard', approvedCalls: [] },
    ): Promise<StepOutcome & { workspace?: WorkspaceRef }> {
      const portable = typeof workspace === 'string' ? undefined : workspace;
      const key = portable
        ? `${task.executionKey}/workspace-${portable.id}/step-${index}`
        : `${task.executionKey}/step-${index}`;
      const done = await recorded(key);
      if (done) return { ...done, skipped: true };
      const workdir = await local(workspace);

      const request = toolRequestOf(step);
      const bound = binding ?? (await tools.bind(task.tenantId, request, grant.allowedLevel));
      if (bound.needsApproval && !grant.approvedCalls.includes(approvalKey(bound))) {
        throw ApplicationFailure.nonRetryable(
          `step ${index}: ${bound.serverId}/${bound.tool} is ${bound.level}, above what the task may use (${grant.allowedLevel}), and no person approved this call with these arguments`,
          'ToolApprovalRequired',
        );
      }
      const { server, tool } = await tools.lookup(task.tenantId, bound.serverId, bound.tool);
      const args = { ...request.arguments };
      if (server.tenantId === null && EDIT_TOOLS.has(tool.name) && args.expected_sha256 === undefined) {
        const intent = await appendAuditEvent(db, {
          ...taskAudit(task, actor),
          action: 'step.intent',
          subject: `step-${index}`,
          idempotencyKey: `${key}/intent`,
          payload: { tool: tool.name, expected_sha256: await fileHash(workdir, String(args.path)) },
        });
        args.expected_sha256 = intent.payload.expected_sha256;
      }
      const ctx = Context.current();
      const call = (s: ToolServer, t: DiscoveredTool) =>
        callTool({
          db,
          clients,
          task,
          workspace: workdir,
          server: s,
          tool: t,
          args,
          timeoutMs: bound.timeoutMs,
          signal: ctx.cancellationSignal,
          heartbeat: () => ctx.heartbeat(),
          subject: `step-${index}`,
        });
      const result = await call(server, tool);
      let conflictNote = '';
      if (bound.level === 'read-only' && bound.alternates[0] && result.outcome === 'ok') {
        conflictNote = await crossCheck(task, index, result, bound.alternates[0], call);
      }
      const outcome = stepOutcome(index, step, result, conflictNote);
      const head = portable && (await workspaces.snapshot(portable, workdir, `step ${index}`));
      await appendAuditEvent(db, {
        ...taskAudit(task, actor),
        action: 'step.applied',
        subject: `step-${index}`,
        idempotencyKey: key,
        payload: {
          ...outcome,
          server: result.server,
          tool: result.tool,
          outcome: result.outcome,
          ...(head ? { workspace: head } : {}),
        },
      });
      activityLogger(log, task)[outcome.ok ? 'info' : 'warn'](
        {
          step: index,
          kind: step.kind,
          tool: `${result.server}/${result.tool}`,
          ok: outcome.ok,
          detail: outcome.detail,
        },
        'step applied',
      );
      return head ? { ...outcome, workspace: head } : outcome;
    },

    /**
     * Runs one quality gate through the sandboxed run_command tool, in a fresh output directory named for this run
     * (GATE_OUTPUT_ROOT), and judges it on what its report there shows: a pass/fail gate passes only when its command
     * exited 0 and its report shows checks that ran and none that failed (a tests gate: at least one test ran, none
     * failed); a coverage or mutation gate's value is read from its report. The full output and the report are kept as
     * artifacts; the output directory is removed afterwards (it is evidence, not part of the change).
     */
    async runGate(
      task: TaskRef,
      workspace: string | WorkspaceRef,
      gate: Gate,
      opts: { acceptanceIds?: string[]; source?: GateOutcome['source'] } = {},
    ): Promise<GateOutcome> {
      const workdir = await local(workspace);
      const ctx = Context.current();
      const runKey = `${gate.name}-${ctx.info.activityId}-${ctx.info.attempt}`.replace(/[^A-Za-z0-9_.-]/g, '_');
      const outRel = `${GATE_OUTPUT_ROOT}/${runKey}`;
      const outDir = insideWorkspace(workdir, outRel);
      await rm(outDir, { recursive: true, force: true });
      await mkdir(outDir, { recursive: true });
      const argv = gate.run.map((a) => a.split(OUT_PLACEHOLDER).join(outRel));
      const request = toolRequestOf({ kind: 'command', run: argv, timeout_seconds: gate.timeout_seconds });
      const bound = await tools.bind(task.tenantId, request, 'standard');
      const { server, tool } = await tools.lookup(task.tenantId, bound.serverId, bound.tool);
      const result = await callTool({
        db,
        clients,
        task,
        workspace: workdir,
        server,
        tool,
        args: {
          argv,
          timeout_seconds: gate.timeout_seconds ?? Math.ceil(config.EXECUTION_COMMAND_TIMEOUT / 1000),
        },
        timeoutMs: (gate.timeout_seconds ?? config.EXECUTION_COMMAND_TIMEOUT / 1000) * 1000 + 5_000,
        signal: ctx.cancellationSignal,
        heartbeat: () => ctx.heartbeat(),
        subject: `gate-${gate.name}`,
      });
      const run = commandResult(result);
      const header = `$ ${argv.join(' ')}\nexit ${run.exitCode ?? run.signal ?? 'none'}${run.timedOut ? ' (timed out)' : ''} in ${result.durationMs} ms${result.truncated || run.truncated ? ' (output truncated)' : ''}\n\n`;
      const logRef = await putArtifact(db, task.tenantId, header + run.output, 'text/plain; charset=utf-8');
      const { reportPassed, report, ...measured } = await measure(outDir, outRel, gate, opts.acceptanceIds ?? []);
      await rm(outDir, { recursive: true, force: true });
      const exited = result.outcome === 'ok' && run.exitCode === 0 && !run.timedOut;
      const reportRef = report && (await putArtifact(db, task.tenantId, report.text, 'text/plain; charset=utf-8'));
      const outcome: GateOutcome = {
        name: gate.name,
        kind: gateKind(gate),
        // Never the exit code alone: a pass/fail gate needs its report to show checks that ran and passed.
        passed: exited && reportPassed !== false,
        exitCode: run.exitCode,
        durationMs: result.durationMs,
        logRef,
        ...measured,
        ...(exited || measured.missing
          ? {}
          : { evidence: `exit ${run.exitCode ?? run.signal ?? 'none'}; ${measured.evidence}` }),
        outputDir: outRel,
        ...(reportRef ? { reportRef } : {}),
        ...(opts.source ? { source: opts.source } : {}),
      };
      await appendAuditEvent(db, {
        ...taskAudit(task, actor),
        action: 'gate.evaluated',
        subject: gate.name,
        idempotencyKey: `${task.executionKey}/gate-${gate.name}/${ctx.info.activityId}`,
        payload: { ...outcome },
      });
      activityLogger(log, task).info(
        { gate: gate.name, passed: outcome.passed, exitCode: outcome.exitCode, durationMs: outcome.durationMs },
        'gate evaluated',
      );
      return outcome;
    },

    /** The tools the agent loop may call, for the model's prompt. */
    async toolCatalog(task: TaskRef, allowedLevel: SecurityLevel): Promise<AgentToolInfo[]> {
      return tools.catalog(task.tenantId, allowedLevel);
    },

    /** Binds a step to a tool (agent turns; plan steps are bound by resolveToolPlan). */
    async bindTool(task: TaskRef, step: SpecStep, allowedLevel: SecurityLevel): Promise<ToolBinding> {
      return tools.bind(task.tenantId, toolRequestOf(step), allowedLevel);
    },

    /** The coordinator at plan time: every step bound, edit conflicts resolved or escalated, privileged calls listed. */
    async resolveToolPlan(
      task: TaskRef,
      input: { workspace: WorkspaceSource; steps: SpecStep[]; allowedLevel: SecurityLevel; planHash: string },
    ): Promise<ToolPlan> {
      return tools.resolvePlan(task, { ...input, workspace: await localSource(db, input.workspace) });
    },

    /** Discovers one registered server (POST /api/v1/tools/servers/:id/refresh, through toolDiscoveryWorkflow). */
    async discoverToolServer(tenantId: string, serverId: string): Promise<DiscoveryResult> {
      const server = await getServer(db, tenantId, serverId);
      if (!server) throw ApplicationFailure.nonRetryable(`no tool server ${serverId}`, 'ToolUnavailable');
      return tools.discover(server);
    },

    /** The unified diff of everything the task changed (tracked and new files), stored as an artifact. */
    async collectDiff(
      task: TaskRef,
      workspace: string | WorkspaceRef,
      excludePaths: string[] = [],
    ): Promise<DiffSummary> {
      const workdir = await local(workspace);
      // Reports the gates wrote (coverage, mutation) are evidence, not part of the change.
      const excluded = [...excludePaths, GATE_OUTPUT_ROOT].map(
        (p) => `:(exclude)${insideWorkspace(workdir, p).slice(workdir.length + 1)}`,
      );
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

    /**
     * A point to come back to if an iteration makes things worse: the recorded head (already durable), or for a
     * legacy directory the git tree of its files (tracked and new).
     */
    async checkpointWorkspace(_task: TaskRef, workspace: string | WorkspaceRef, _iteration: number): Promise<string> {
      if (typeof workspace !== 'string') return workspace.head;
      await git('git', ['add', '--all'], { cwd: workspace });
      const { stdout } = await git('git', ['write-tree'], { cwd: workspace });
      return stdout.trim();
    },

    /**
     * Puts the workspace back to a checkpoint: files added since are removed, changed files restored. A portable
     * workspace records the restored files as its new head and returns it.
     */
    async restoreCheckpoint(
      _task: TaskRef,
      workspace: string | WorkspaceRef,
      checkpoint: string,
    ): Promise<WorkspaceRef | undefined> {
      const workdir = await local(workspace);
      await git('git', ['read-tree', '--reset', '-u', checkpoint], { cwd: workdir });
      await git('git', ['clean', '-fdq', '-e', '.git'], { cwd: workdir });
      if (typeof workspace === 'string') return undefined;
      return workspaces.snapshot(workspace, workdir, `restore ${checkpoint.slice(0, 12)}`);
    },

    /**
     * Removes the workspace: this worker's copy, its tool servers, and (for a portable workspace) the references that
     * keep its bundles. Copies other workers made are swept when idle (sweepIdleWorkspaces). Safe to call twice.
     */
    async cleanupWorkspace(task: TaskRef, workspace?: Pick<WorkspaceRef, 'id' | 'tenantId'>): Promise<void> {
      // The fetched repository's bundle (fetchRepository), if any, is no longer needed by this task.
      await releaseBlobRefs(db, task.tenantId, { kind: 'task-source', id: task.executionKey });
      if (workspace) {
        await clients.closeWorkspace(workspaces.dirOf(workspace));
        await workspaces.release(workspace);
        return;
      }
      await clients.closeWorkspace(workdirOf(task));
      await rm(workdirOf(task), { recursive: true, force: true });
    },
  };
}

export type ExecutionActivities = ReturnType<typeof createExecutionActivities>;
