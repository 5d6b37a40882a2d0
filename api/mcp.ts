/**
 * The platform as an MCP server: POST /mcp speaks the Model Context Protocol over Streamable HTTP
 * (@modelcontextprotocol/sdk), so agents and IDEs can start tasks, follow them, decide approvals and read artifacts.
 *
 * Stateless, so it scales like the rest of the API: every POST gets a fresh McpServer and transport bound to the
 * caller (no session id, JSON responses, no server-sent stream); GET and DELETE answer 405 problem+json. It is mounted
 * after authentication and rate limiting (api/app.ts): no credentials is a 401 before any MCP. Each tool and resource
 * calls api/task-service.ts — the functions the REST task routes call — so roles (start = operator, reads = viewer,
 * approve/reject = approver; admin implies all), validation and tenant isolation are exactly the REST ones. A refused
 * call is a tool error result (isError) naming why, e.g. "forbidden: needs role approver" — never data.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ErrorCode, McpError, type CallToolResult, type ReadResourceResult } from '@modelcontextprotocol/sdk/types.js';
import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { PROJECT_ROOT } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import { TaskIdSchema, TaskRequestSchema } from '../workflows/task/definitions.js';
import type { AppDeps } from './app.js';
import { isTemporalUnavailable } from './dependencies.js';
import { HttpProblem } from './errors.js';
import { hasRole, principalOf, TASK_ROLES, type Principal } from './principal.js';
import { DecisionBodySchema, PageQuerySchema, SHA256, TaskListQuerySchema } from './schemas.js';
import {
  artifactHref,
  decideTask,
  getTask,
  getTaskArtifact,
  listPendingApprovals,
  listTaskArtifacts,
  listTasks,
  startTask,
} from './task-service.js';

export const MCP_PATH = '/mcp';
/** Artifact bytes an MCP answer carries at most: text beyond it is cut (and says so); larger binaries are refused. */
export const MCP_ARTIFACT_LIMIT = 256 * 1024;
const TASK_URI = 'agency://tasks/{id}';
const ARTIFACT_URI = 'agency://tasks/{id}/artifacts/{sha256}';
const taskUri = (id: string): string => `agency://tasks/${id}`;
const artifactUri = (id: string, sha256: string): string => `${taskUri(id)}/artifacts/${sha256}`;

const { version } = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };

/** One JSON-RPC message (or a batch), as the OpenAPI document describes the body of POST /mcp. */
export const McpMessageSchema = z
  .union([
    z.looseObject({
      jsonrpc: z.literal('2.0'),
      id: z.union([z.string(), z.number()]).optional(),
      method: z.string().optional(),
      params: z.unknown().optional(),
    }),
    z.array(z.looseObject({ jsonrpc: z.literal('2.0') })),
  ])
  .meta({ description: 'A JSON-RPC 2.0 message of the Model Context Protocol (Streamable HTTP, stateless)' });

const GetTaskInput = z.object({ id: TaskIdSchema.describe('the task id') }).strict();
const DecisionInput = z
  .object({
    id: TaskIdSchema.describe('the task id'),
    hash: DecisionBodySchema.shape.hash.describe(
      'the sha256 of the plan or diff the task waits on (pendingApproval.hash from list_pending_approvals or get_task)',
    ),
    reason: DecisionBodySchema.shape.reason.describe('why, for the audit trail'),
  })
  .strict();
const ArtifactInput = z
  .object({
    task_id: TaskIdSchema.describe('the task the artifact belongs to'),
    sha256: SHA256.describe('the artifact’s sha256 (from get_task: result.artifacts, result.diffRef)'),
  })
  .strict();

const INSTRUCTIONS = [
  'Agent Agency runs software-change tasks as durable workflows: a working spec is planned, reviewed by a council of',
  'judges, executed in an isolated copy of a git repository and checked by quality gates.',
  'start_task starts one (mode "strict" waits for a person to approve the plan); get_task follows it;',
  'list_pending_approvals shows what waits for a decision, with the hash to pass to approve_task or reject_task;',
  'get_artifact reads a diff, log or verdict by its sha256. Task records are resources at agency://tasks/{id}.',
].join(' ');

/** What a refused or failed call says: the problem's title and detail, lower-case, e.g. "not found: no task x". */
function describeProblem(err: unknown, log: Logger): { text: string; problem?: HttpProblem } {
  if (err instanceof HttpProblem) {
    if (err.status === 403)
      return {
        text: `forbidden: needs role ${typeof err.extra.role === 'string' ? err.extra.role : 'unknown'}`,
        problem: err,
      };
    return { text: `${err.title.toLowerCase()}: ${err.detail ?? err.title}`, problem: err };
  }
  if (isTemporalUnavailable(err))
    return { text: 'service unavailable: Temporal is unreachable; retry in a few seconds' };
  log.error({ err }, 'unhandled error in an MCP call');
  return { text: 'internal server error: an unexpected error occurred; it has been logged' };
}

function ok(value: object): CallToolResult {
  return {
    content: [{ type: 'text', text: JSON.stringify(value, null, 2) }],
    structuredContent: value as Record<string, unknown>,
  };
}

/** Runs a tool; a problem becomes a tool error result with the problem's fields as structured content. */
async function tool(log: Logger, run: () => Promise<CallToolResult>): Promise<CallToolResult> {
  try {
    return await run();
  } catch (err) {
    const { text, problem } = describeProblem(err, log);
    return {
      isError: true,
      content: [{ type: 'text', text }],
      ...(problem
        ? {
            structuredContent: {
              status: problem.status,
              title: problem.title,
              ...(problem.detail ? { detail: problem.detail } : {}),
              ...problem.extra,
            },
          }
        : {}),
    };
  }
}

/** Runs a resource read; a problem becomes a JSON-RPC error (resource not found is -32002, as MCP specifies). */
async function resource(log: Logger, run: () => Promise<ReadResourceResult>): Promise<ReadResourceResult> {
  try {
    return await run();
  } catch (err) {
    const { text, problem } = describeProblem(err, log);
    const code =
      problem?.status === 404
        ? -32002
        : problem?.status === 400
          ? ErrorCode.InvalidParams
          : problem
            ? ErrorCode.InvalidRequest
            : ErrorCode.InternalError;
    throw new McpError(code, text);
  }
}

const TEXT_TYPE = /^text\/|^application\/(?:json|x-ndjson|yaml|x-yaml|xml|javascript)\b|\+(?:json|xml)\b/i;

/** An artifact as MCP content: UTF-8 text (cut at the limit), a small binary as base64, or undefined (too big). */
function artifactContent(artifact: {
  mediaType: string;
  sizeBytes: number;
  content: Buffer;
}): { kind: 'text'; text: string; truncated: boolean } | { kind: 'blob'; blob: string } | undefined {
  if (TEXT_TYPE.test(artifact.mediaType)) {
    const head = artifact.content.subarray(0, MCP_ARTIFACT_LIMIT);
    try {
      const text = new TextDecoder('utf-8', { fatal: artifact.content.length <= MCP_ARTIFACT_LIMIT }).decode(head);
      return { kind: 'text', text, truncated: artifact.content.length > MCP_ARTIFACT_LIMIT };
    } catch {
      // Not UTF-8 after all: treat as binary.
    }
  }
  if (artifact.content.length > MCP_ARTIFACT_LIMIT) return undefined;
  return { kind: 'blob', blob: artifact.content.toString('base64') };
}

const tooBig = (id: string, a: { sha256: string; mediaType: string; sizeBytes: number }): HttpProblem =>
  new HttpProblem(
    413,
    'Content Too Large',
    `artifact ${a.sha256} is ${a.sizeBytes} bytes of ${a.mediaType}, more than the ${MCP_ARTIFACT_LIMIT} bytes an MCP answer carries; fetch it over HTTP at ${artifactHref(id, a.sha256)}`,
  );

/** An MCP server bound to one authenticated caller, for one request. */
export function createMcpServer(deps: AppDeps, principal: Principal, correlationId: string): McpServer {
  const { log } = deps;
  const server = new McpServer({ name: 'agent-agency', version }, { instructions: INSTRUCTIONS });
  const role = (operation: keyof typeof TASK_ROLES): string => `Needs the ${TASK_ROLES[operation]} role.`;

  server.registerTool(
    'start_task',
    {
      title: 'Start a task',
      description:
        'Starts a software-change task on a git repository (same input as POST /api/v1/tasks). title and repository ' +
        '(the id of a registered repository; ref picks a branch or tag) are required (a local workspace path only ' +
        'where the operator allows it); spec is a working spec (object or ' +
        'YAML/JSON text); mode "strict" waits for a person to approve the plan, "dry-run" changes nothing. Answers ' +
        `the task id and workflow id; follow it with get_task. ${role('start')}`,
      inputSchema: TaskRequestSchema,
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    },
    (args) => tool(log, async () => ok(await startTask(deps, principal, args, correlationId))),
  );

  server.registerTool(
    'list_tasks',
    {
      title: 'List tasks',
      description:
        'Lists your tenant’s tasks, newest first, optionally by status or risk tier; pass nextCursor back as cursor ' +
        `for the next page. ${role('list')}`,
      inputSchema: TaskListQuerySchema,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args) => tool(log, async () => ok(await listTasks(deps, principal, args))),
  );

  server.registerTool(
    'get_task',
    {
      title: 'Get a task',
      description:
        'Status, current step, progress (including pendingApproval while it waits for a decision) and, once ended, ' +
        `the result (gates, council verdicts, diffRef, artifacts) of one task. ${role('get')}`,
      inputSchema: GetTaskInput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args) => tool(log, async () => ok(await getTask(deps, principal, args.id))),
  );

  server.registerTool(
    'list_pending_approvals',
    {
      title: 'List tasks awaiting approval',
      description:
        'Your tenant’s tasks that wait for a person to approve or reject their plan or diff, each with what waits ' +
        `(kind), the hash to decide on, the reasons and the deadline. ${role('pendingApprovals')}`,
      inputSchema: PageQuerySchema,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args) => tool(log, async () => ok(await listPendingApprovals(deps, principal, args))),
  );

  for (const decision of ['approve', 'reject'] as const) {
    server.registerTool(
      `${decision}_task`,
      {
        title: `${decision === 'approve' ? 'Approve' : 'Reject'} a task`,
        description:
          `${decision === 'approve' ? 'Approves' : 'Rejects'} the plan or diff a task waits on. hash must be the one ` +
          'the task waits on (a stale hash is refused); you are recorded as the approver in the audit trail. ' +
          role('decide'),
        inputSchema: DecisionInput,
        annotations: {
          readOnlyHint: false,
          destructiveHint: decision === 'reject',
          idempotentHint: false,
          openWorldHint: false,
        },
      },
      ({ id, hash, reason }) =>
        tool(log, async () => ok(await decideTask(deps, principal, id, decision, { hash, reason }))),
    );
  }

  server.registerTool(
    'list_artifacts',
    {
      title: 'List a task’s artifacts',
      description: `The artifacts of a task (spec, diffs, gate logs, verdicts, provenance) with their sha256. ${role('artifacts')}`,
      inputSchema: GetTaskInput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args) => tool(log, async () => ok(await listTaskArtifacts(deps, principal, args.id))),
  );

  server.registerTool(
    'get_artifact',
    {
      title: 'Read an artifact',
      description:
        `One artifact of a task by its sha256: text (diffs, logs, JSON) as text, cut after ${MCP_ARTIFACT_LIMIT} ` +
        `bytes; a binary up to that size as base64; a larger binary is refused. ${role('artifact')}`,
      inputSchema: ArtifactInput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args) =>
      tool(log, async () => {
        const artifact = await getTaskArtifact(deps, principal, args.task_id, args.sha256, {
          maxBytes: MCP_ARTIFACT_LIMIT + 1,
        });
        const body = artifactContent(artifact);
        if (!body) throw tooBig(args.task_id, artifact);
        const meta = {
          sha256: artifact.sha256,
          mediaType: artifact.mediaType,
          sizeBytes: artifact.sizeBytes,
          encoding: body.kind === 'text' ? 'utf-8' : 'base64',
          truncated: body.kind === 'text' && body.truncated,
          href: artifactHref(args.task_id, artifact.sha256),
        };
        const content: CallToolResult['content'] =
          body.kind === 'text'
            ? [{ type: 'text', text: body.text }]
            : [
                {
                  type: 'resource',
                  resource: {
                    uri: artifactUri(args.task_id, artifact.sha256),
                    mimeType: artifact.mediaType,
                    blob: body.blob,
                  },
                },
              ];
        if (meta.truncated)
          content.push({
            type: 'text',
            text: `[cut after ${MCP_ARTIFACT_LIMIT} of ${artifact.sizeBytes} bytes; the whole artifact is at ${meta.href}]`,
          });
        return { content, structuredContent: meta };
      }),
  );

  server.registerResource(
    'task',
    new ResourceTemplate(TASK_URI, {
      // Your tenant's most recent tasks (none without the viewer role: listing is no place for an error).
      list: async () => {
        if (!hasRole(principal, TASK_ROLES.list)) return { resources: [] };
        const page = await listTasks(deps, principal, { limit: 20 });
        return {
          resources: page.items.map((t) => ({
            uri: taskUri(t.id),
            name: `task ${t.id}`,
            description: `${typeof t.status === 'string' ? t.status : 'unknown'}${t.startedAt ? `, started ${t.startedAt}` : ''}`,
            mimeType: 'application/json',
          })),
        };
      },
    }),
    {
      title: 'Task record',
      description: 'A task’s status, progress and result as JSON (what get_task answers).',
      mimeType: 'application/json',
    },
    (uri, variables) =>
      resource(log, async () => ({
        contents: [
          {
            uri: uri.href,
            mimeType: 'application/json',
            text: JSON.stringify(await getTask(deps, principal, variables.id), null, 2),
          },
        ],
      })),
  );

  server.registerResource(
    'artifact',
    new ResourceTemplate(ARTIFACT_URI, { list: undefined }),
    { title: 'Task artifact', description: 'One artifact of a task, by its sha256 (as get_artifact reads it).' },
    (uri, variables) =>
      resource(log, async () => {
        const id = String(variables.id);
        const artifact = await getTaskArtifact(deps, principal, id, variables.sha256, {
          maxBytes: MCP_ARTIFACT_LIMIT + 1,
        });
        const body = artifactContent(artifact);
        if (!body || (body.kind === 'text' && body.truncated)) throw tooBig(id, artifact);
        return {
          contents: [
            body.kind === 'text'
              ? { uri: uri.href, mimeType: artifact.mediaType, text: body.text }
              : { uri: uri.href, mimeType: artifact.mediaType, blob: body.blob },
          ],
        };
      }),
  );

  return server;
}

/** POST /mcp (one stateless exchange per request); GET and DELETE answer 405. */
export function mcpRoutes(deps: AppDeps): Router {
  const router = Router();

  router.post(MCP_PATH, async (req, res) => {
    const server = createMcpServer(deps, principalOf(res), res.locals.correlationId as string);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });

  const notAllowed: RequestHandler = (req) => {
    throw new HttpProblem(
      405,
      'Method Not Allowed',
      `${req.method} ${MCP_PATH}: this MCP endpoint is stateless (no sessions, no server-sent stream); POST JSON-RPC messages`,
      {},
      { Allow: 'POST' },
    );
  };
  router.get(MCP_PATH, notAllowed);
  router.delete(MCP_PATH, notAllowed);
  return router;
}
