/**
 * One MCP tool call as the execution pool makes it: arguments checked against the tool's input schema (Ajv) before
 * the call, the registry's timeout, heartbeats while it runs, the result capped at the server's output limit, and an
 * audit event (tool, argument digest, outcome, duration). A tool error the server reports (`isError`) is a result the
 * agent sees, not a failure of the activity.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { appendAuditEvent, taskAudit } from '../../../common/audit.js';
import type { Db } from '../../../common/db.js';
import { hashJson } from '../../../common/hash.js';
import { toolCallSeconds, toolCallsTotal } from '../../../common/metrics.js';
import type { TaskRef } from '../../../workflows/task/definitions.js';
import type { ToolClients } from './clients.js';
import type { DiscoveredTool, ToolServer } from '../../../common/tool-registry.js';

export type ToolOutcome = 'ok' | 'tool_error' | 'invalid_arguments' | 'timeout' | 'unavailable' | 'refused';

export interface ToolCallResult {
  server: string;
  tool: string;
  outcome: ToolOutcome;
  /** The text the tool returned (joined text parts), or the reason it was not called. */
  text: string;
  structured?: Record<string, unknown>;
  truncated: boolean;
  durationMs: number;
  argsSha256: string;
}

const draft07 = new Ajv({ allErrors: true, strict: false });
const draft2020 = new Ajv2020({ allErrors: true, strict: false });
const validators = new Map<string, ValidateFunction>();

/** Checks arguments against a tool's JSON Schema; returns the problems, or [] when they conform. */
export function schemaProblems(tool: DiscoveredTool, serverId: string, args: unknown): string[] {
  const key = `${serverId}/${tool.name}/${hashJson(tool.inputSchema)}`;
  let validate = validators.get(key);
  if (!validate) {
    const { $schema, ...schema } = tool.inputSchema as { $schema?: string };
    const ajv = typeof $schema === 'string' && $schema.includes('2020-12') ? draft2020 : draft07;
    try {
      validate = ajv.compile(schema);
    } catch (err) {
      return [`the tool's input schema does not compile: ${(err as Error).message}`];
    }
    validators.set(key, validate);
  }
  if (validate(args)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '(arguments)'} ${e.message ?? 'is invalid'}`);
}

function capText(text: string, max: number): { text: string; truncated: boolean } {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes <= max) return { text, truncated: false };
  const cut = Buffer.from(text, 'utf8').subarray(0, max).toString('utf8');
  return { text: `${cut}\n[… ${bytes - max} more bytes cut at the server's ${max}-byte limit]`, truncated: true };
}

export interface CallOptions {
  db: Db;
  clients: ToolClients;
  task: TaskRef;
  workspace: string | undefined;
  server: ToolServer;
  tool: DiscoveredTool;
  args: Record<string, unknown>;
  /** Per-call limit below the server's timeout (a command step's own timeout). */
  timeoutMs?: number;
  signal?: AbortSignal;
  heartbeat?: () => void;
  /** Step index or gate name, for the audit event. */
  subject?: string;
}

/** Calls a tool and records the call; never throws for a tool's own failure. */
export async function callTool(o: CallOptions): Promise<ToolCallResult> {
  const started = Date.now();
  const argsSha256 = hashJson(o.args);
  const base = { server: o.server.id, tool: o.tool.name, argsSha256 };
  let result: ToolCallResult;
  const problems = schemaProblems(o.tool, o.server.id, o.args);
  if (problems.length) {
    result = {
      ...base,
      outcome: 'invalid_arguments',
      text: `arguments do not match the input schema of ${o.server.id}/${o.tool.name}: ${problems.join('; ')}`,
      truncated: false,
      durationMs: 0,
    };
  } else {
    const timeout = Math.min(o.timeoutMs ?? o.server.timeoutMs, o.server.timeoutMs);
    const tick = o.heartbeat ? setInterval(o.heartbeat, 1_000) : undefined;
    try {
      const reply = await o.clients.use(o.server, o.workspace, (client) =>
        client.callTool({ name: o.tool.name, arguments: o.args }, undefined, {
          timeout,
          signal: o.signal,
          onprogress: o.heartbeat ? () => o.heartbeat!() : undefined,
        }),
      );
      const parts = Array.isArray(reply.content) ? (reply.content as { type: string; text?: string }[]) : [];
      const joined = parts.map((p) => (p.type === 'text' ? (p.text ?? '') : `[${p.type} content]`)).join('\n');
      const capped = capText(joined, o.server.maxOutputBytes);
      const structured = reply.structuredContent as Record<string, unknown> | undefined;
      const structuredFits = structured && Buffer.byteLength(JSON.stringify(structured)) <= o.server.maxOutputBytes;
      result = {
        ...base,
        outcome: reply.isError ? 'tool_error' : 'ok',
        text: capped.text,
        ...(structuredFits ? { structured } : {}),
        truncated: capped.truncated || (structured !== undefined && !structuredFits),
        durationMs: Date.now() - started,
      };
    } catch (err) {
      const timedOut = err instanceof McpError && err.code === (ErrorCode.RequestTimeout as number);
      if (o.signal?.aborted) throw err;
      result = {
        ...base,
        outcome: timedOut ? 'timeout' : 'unavailable',
        text: timedOut
          ? `${o.server.id}/${o.tool.name} did not answer within ${timeout} ms (the registry's limit)`
          : `${o.server.id}/${o.tool.name} failed: ${(err as Error).message}`,
        truncated: false,
        durationMs: Date.now() - started,
      };
    } finally {
      if (tick) clearInterval(tick);
    }
  }
  toolCallsTotal.inc({ server: result.server, tool: result.tool, outcome: result.outcome });
  if (result.outcome !== 'invalid_arguments')
    toolCallSeconds.observe({ server: result.server, tool: result.tool }, result.durationMs / 1000);
  await appendAuditEvent(o.db, {
    ...taskAudit(o.task, 'worker:execution'),
    action: 'tool.called',
    subject: o.subject ?? `${o.server.id}/${o.tool.name}`,
    payload: {
      server: result.server,
      tool: result.tool,
      args_sha256: argsSha256,
      outcome: result.outcome,
      duration_ms: result.durationMs,
      truncated: result.truncated,
    },
  });
  return result;
}
