/**
 * The tool coordinator of the execution pool: discovery (tools/list into the registry; a server that fails is marked
 * unhealthy with its error), capability matching under the task's allowed security level, conflict detection at plan
 * time, and the approval binding of privileged calls. The calls themselves are in ./call.ts; applyStep and runGate
 * (../index.ts) make them.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/activity';
import { appendAuditEvent, taskAudit } from '../../../common/audit.js';
import type { Db } from '../../../common/db.js';
import { hashJson } from '../../../common/hash.js';
import type { Logger } from '../../../common/logger.js';
import {
  approvalKey,
  levelRank,
  toolRequestOf,
  type AgentToolInfo,
  type SecurityLevel,
  type ToolBinding,
  type ToolPlan,
  type ToolRequest,
} from '../../../workflows/execution/tools.js';
import type { TaskRef } from '../../../workflows/task/definitions.js';
import type { SpecStep } from '../../../workflows/task/spec.js';
import { SILENT } from '../../logging.js';
import { listAllTools, type ToolClients } from './clients.js';
import { resolveEditConflicts } from './conflicts.js';
import {
  findCandidates,
  getServer,
  listServers,
  listTools,
  markUnhealthy,
  storeDiscovery,
  toolCapabilities,
  toolLevel,
  type DiscoveredTool,
  type ToolServer,
} from '../../../common/tool-registry.js';

const git = promisify(execFile);
/** An unhealthy server is tried again, when a step needs what nothing healthy offers, after this long. */
const RECHECK_MS = 10_000;

export interface DiscoveryResult {
  serverId: string;
  health: 'healthy' | 'unhealthy';
  error?: string;
  tools: string[];
}

export interface ToolLayerDeps {
  db: Db;
  clients: ToolClients;
  log?: Logger;
}

export function createToolLayer({ db, clients, log = SILENT }: ToolLayerDeps) {
  /** Connects, lists the tools and stores them; a server that cannot start or answer is marked unhealthy. */
  async function discover(server: ToolServer): Promise<DiscoveryResult> {
    try {
      const tools = await clients.probe(server, (client) => listAllTools(client));
      await storeDiscovery(db, server.id, tools);
      log.info({ server: server.id, tools: tools.length }, 'tool server discovered');
      return { serverId: server.id, health: 'healthy', tools: tools.map((t) => t.name) };
    } catch (err) {
      const error = (err as Error).message;
      await markUnhealthy(db, server.id, error);
      log.warn({ server: server.id, error }, 'tool server unhealthy');
      return { serverId: server.id, health: 'unhealthy', error, tools: [] };
    }
  }

  /** One discovery at a time per server in this process; concurrent callers share it. */
  const inFlight = new Map<string, Promise<DiscoveryResult>>();
  const discoverOnce = (server: ToolServer): Promise<DiscoveryResult> => {
    let running = inFlight.get(server.id);
    if (!running) {
      running = discover(server).finally(() => inFlight.delete(server.id));
      inFlight.set(server.id, running);
    }
    return running;
  };

  /**
   * Discovers the enabled servers a tenant sees that were never discovered (a new registry, a new server), and, when
   * `retryUnhealthy`, those marked unhealthy more than RECHECK_MS ago: a server that was down may be back.
   */
  async function discoverPending(tenantId: string, retryUnhealthy: boolean): Promise<boolean> {
    const due = (await listServers(db, tenantId)).filter(
      (s) =>
        s.enabled &&
        (s.health === 'unknown' ||
          (retryUnhealthy &&
            s.health === 'unhealthy' &&
            Date.now() - Date.parse(s.checkedAt ?? '1970-01-01') > RECHECK_MS)),
    );
    await Promise.all(due.map(discoverOnce));
    return due.length > 0;
  }

  /** Picks the tool for a request, or fails with a planning error that says what was asked and what exists. */
  async function bind(tenantId: string, request: ToolRequest, allowedLevel: SecurityLevel): Promise<ToolBinding> {
    await discoverPending(tenantId, false);
    let { candidates, considered } = await findCandidates(db, tenantId, request);
    if (!candidates.length && (await discoverPending(tenantId, true)))
      ({ candidates, considered } = await findCandidates(db, tenantId, request));
    if (!candidates.length) {
      const wanted = [
        `capabilities [${request.capabilities.join(', ')}]`,
        request.tool ? `tool ${request.tool}` : '',
        request.server ? `server ${request.server}` : '',
      ]
        .filter(Boolean)
        .join(', ');
      throw ApplicationFailure.nonRetryable(
        `no enabled, healthy tool provides ${wanted}; servers: ${considered.map((s) => `${s.id} (${s.enabled ? s.health : 'disabled'})`).join(', ') || 'none'}`,
        'NoToolMatch',
      );
    }
    // Prefer a tool the task may use without approval; otherwise the best one, behind a person's approval.
    const allowed = candidates.filter((c) => levelRank(c.level) <= levelRank(allowedLevel));
    const best = allowed[0] ?? candidates[0]!;
    const timeoutMs = Math.min(
      best.server.timeoutMs,
      request.timeoutSeconds ? request.timeoutSeconds * 1000 + 5_000 : Infinity,
    );
    const argsSha256 = hashJson(request.arguments);
    return {
      serverId: best.server.id,
      tool: best.tool.name,
      level: best.level,
      timeoutMs,
      maxOutputBytes: best.server.maxOutputBytes,
      needsApproval: levelRank(best.level) > levelRank(allowedLevel),
      argsSha256,
      approvalHash: hashJson({ call: approvalKey({ serverId: best.server.id, tool: best.tool.name, argsSha256 }) }),
      alternates: candidates
        .filter((c) => c !== best && c.server.id !== best.server.id)
        .map((c) => ({ serverId: c.server.id, tool: c.tool.name })),
    };
  }

  /** The server and tool a binding names, as the registry has them now (disabled or gone: not callable). */
  async function lookup(
    tenantId: string,
    serverId: string,
    toolName: string,
  ): Promise<{ server: ToolServer; tool: DiscoveredTool }> {
    const server = await getServer(db, tenantId, serverId);
    if (!server || !server.enabled)
      throw ApplicationFailure.nonRetryable(`tool server ${serverId} is not enabled`, 'ToolUnavailable');
    const tool = (await listTools(db, [serverId])).get(serverId)?.find((t) => t.name === toolName);
    if (!tool)
      throw ApplicationFailure.nonRetryable(`tool ${serverId}/${toolName} is not registered`, 'ToolUnavailable');
    return { server, tool };
  }

  /** The tools the agent loop may call: every enabled tool the tenant sees, with its level and capabilities. */
  async function catalog(tenantId: string, allowedLevel: SecurityLevel): Promise<AgentToolInfo[]> {
    await discoverPending(tenantId, false);
    const servers = (await listServers(db, tenantId)).filter((s) => s.enabled && s.health !== 'unhealthy');
    const tools = await listTools(
      db,
      servers.map((s) => s.id),
    );
    return servers.flatMap((server) =>
      (tools.get(server.id) ?? []).map((t) => {
        const level = toolLevel(server, t.name);
        return {
          server: server.id,
          tool: t.name,
          description: t.description.slice(0, 300),
          capabilities: toolCapabilities(server, t),
          level,
          needsApproval: levelRank(level) > levelRank(allowedLevel),
        };
      }),
    );
  }

  return {
    catalog,
    discover: discoverOnce,
    bind,
    lookup,

    /** Binds every step of a plan, resolves edit conflicts, and lists the privileged calls a person must approve. */
    async resolvePlan(
      task: TaskRef,
      input: { workspace: string; steps: SpecStep[]; allowedLevel: SecurityLevel; planHash: string },
    ): Promise<ToolPlan> {
      const { steps, conflicts } = await resolveEditConflicts(input.steps, (file) =>
        git('git', ['show', `HEAD:${file}`], { cwd: input.workspace, maxBuffer: 64 * 1024 * 1024 }).then(
          (r) => r.stdout,
          () => undefined,
        ),
      );
      const bindings: ToolBinding[] = [];
      for (const step of steps) bindings.push(await bind(task.tenantId, toolRequestOf(step), input.allowedLevel));
      for (const c of conflicts) {
        await appendAuditEvent(db, {
          ...taskAudit(task, 'worker:execution'),
          action: 'tool.conflict',
          subject: c.path ?? c.kind,
          idempotencyKey: `${task.executionKey}/plan-conflict/${input.planHash}/${c.steps.join('-')}`,
          payload: { ...c },
        });
      }
      const calls = bindings.flatMap((b, step) =>
        b.needsApproval ? [{ step, key: approvalKey(b), serverId: b.serverId, tool: b.tool }] : [],
      );
      return {
        steps,
        bindings,
        conflicts,
        ...(calls.length
          ? { approval: { hash: hashJson({ planHash: input.planHash, calls: calls.map((c) => c.key) }), calls } }
          : {}),
      };
    },
  };
}

export type ToolLayer = ReturnType<typeof createToolLayer>;
