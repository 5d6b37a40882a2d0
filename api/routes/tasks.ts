/**
 * Task routes: HTTP in and out of api/task-service.ts, which validates, authorises and starts / lists / describes /
 * queries / signals / updates the agentTask workflow, or reads its records from PostgreSQL (the MCP server at /mcp
 * calls the same functions). No business logic here: what a task does lives in workflows/task.
 */
import { Router } from 'express';
import { z } from 'zod';
import type { AppDeps } from '../app.js';
import { sendBlob } from '../blob-response.js';
import { validate } from '../errors.js';
import { principalOf, requireRole, TASK_ROLES } from '../principal.js';
import { sendServerTiming, timed } from '../server-timing.js';
import {
  cancelTask,
  clarifyTask,
  decideTask,
  getTask,
  getTaskAudit,
  getTaskResult,
  issueApprovalToken,
  listTaskArtifacts,
  listTasks,
  openTaskArtifact,
  signalTask,
  startTask,
  taskEventSource,
} from '../task-service.js';

export function taskRoutes(deps: AppDeps): Router {
  const router = Router();

  router.post('/api/v1/tasks', requireRole(TASK_ROLES.start), async (req, res) => {
    const accepted = await startTask(
      deps,
      principalOf(res),
      req.body,
      res.locals.correlationId as string,
      (phase, work) => timed(res, phase, work),
    );
    sendServerTiming(res);
    res
      .status(202)
      .location(`/api/v1/tasks/${encodeURIComponent(accepted.id)}`)
      .json(accepted);
  });

  router.get('/api/v1/tasks', requireRole(TASK_ROLES.list), async (req, res) => {
    res.json(await listTasks(deps, principalOf(res), req.query));
  });

  router.get('/api/v1/tasks/:id', requireRole(TASK_ROLES.get), async (req, res) => {
    res.json(await getTask(deps, principalOf(res), req.params.id));
  });

  router.get('/api/v1/tasks/:id/result', requireRole(TASK_ROLES.result), async (req, res) => {
    res.json(await getTaskResult(deps, principalOf(res), req.params.id));
  });

  router.get('/api/v1/tasks/:id/artifacts', requireRole(TASK_ROLES.artifacts), async (req, res) => {
    res.json(await listTaskArtifacts(deps, principalOf(res), req.params.id));
  });

  /** Streamed from the blob store, never whole in memory; a corrupt blob is a 500 or an aborted response. */
  router.get('/api/v1/tasks/:id/artifacts/:sha256', requireRole(TASK_ROLES.artifact), async (req, res) => {
    const artifact = await openTaskArtifact(deps, principalOf(res), req.params.id, req.params.sha256);
    await sendBlob(req, res, deps.log, artifact);
  });

  router.get('/api/v1/tasks/:id/audit', requireRole(TASK_ROLES.audit), async (req, res) => {
    res.json(await getTaskAudit(deps, principalOf(res), req.params.id));
  });

  /** Server-sent events from the task's audit trail; resumable with Last-Event-ID (the event's sequence number). */
  router.get('/api/v1/tasks/:id/events', requireRole(TASK_ROLES.events), async (req, res) => {
    const source = await taskEventSource(deps, principalOf(res), req.params.id);
    let cursor = validate(z.coerce.number().int().min(0), req.get('last-event-id') ?? req.query.after ?? 0, 'query');
    let open = true;
    req.on('close', () => (open = false));
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(': stream of task events; reconnect with Last-Event-ID to resume\n\n');
    let idle = 0;
    while (open) {
      const rows = await source.after(cursor);
      for (const row of rows) {
        res.write(
          `id: ${row.seq}\nevent: ${row.action}\ndata: ${JSON.stringify({ actor: row.actor, at: row.occurred_at.toISOString(), payload: row.payload })}\n\n`,
        );
        cursor = Number(row.seq);
        if (/^task\.(completed|failed|canceled)$/.test(row.action)) open = false;
      }
      if (!open) break;
      if (rows.length === 0 && ++idle % 30 === 0) res.write(': keep-alive\n\n');
      await new Promise((r) => setTimeout(r, rows.length ? 0 : 500));
    }
    res.end();
  });

  for (const message of ['pause', 'resume'] as const) {
    router.post(`/api/v1/tasks/:id/${message}`, requireRole(TASK_ROLES[message]), async (req, res) => {
      res.status(202).json(await signalTask(deps, principalOf(res), req.params.id, message, req.body));
    });
  }

  router.post('/api/v1/tasks/:id/cancel', requireRole(TASK_ROLES.cancel), async (req, res) => {
    res.status(202).json(await cancelTask(deps, principalOf(res), req.params.id));
  });

  router.post('/api/v1/tasks/:id/clarify', requireRole(TASK_ROLES.clarify), async (req, res) => {
    res.status(202).json(await clarifyTask(deps, principalOf(res), req.params.id, req.body));
  });

  router.post('/api/v1/tasks/:id/approval-token', requireRole(TASK_ROLES.decide), async (req, res) => {
    res.status(200).json(await issueApprovalToken(deps, principalOf(res), req.params.id, req.body));
  });

  for (const decision of ['approve', 'reject'] as const) {
    router.post(`/api/v1/tasks/:id/${decision}`, requireRole(TASK_ROLES.decide), async (req, res) => {
      res.status(200).json(await decideTask(deps, principalOf(res), req.params.id, decision, req.body));
    });
  }

  return router;
}
