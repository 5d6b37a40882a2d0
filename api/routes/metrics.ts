/**
 * Prometheus: the request metrics middleware (agent_agency_requests_total, agent_agency_request_duration_seconds) and
 * GET /metrics, the API process's registry in the text exposition format (common/metrics.ts).
 *
 * Public, like /health: mounted before authentication (app.ts) so Prometheus scrapes it without a key. It exposes
 * counts by route template, method, status class, judge, decision and tier — no ids or payloads; the one tenant label
 * is agent_agency_blob_stored_bytes (bytes stored per tenant). Keep the API port off the public internet or block
 * /metrics at the ingress if even that is too much.
 */
import { Router, type Request, type RequestHandler, type Response } from 'express';
import {
  enableDefaultMetrics,
  METRICS_CONTENT_TYPE,
  renderMetrics,
  requestDuration,
  requestsTotal,
  statusClass,
} from '../../common/metrics.js';

/**
 * The route template that answered (`/api/v1/tasks/:id`), never the raw path: ids would make a series per task.
 * A request answered before routing by a middleware that names its group in res.locals.routeGroup (the Temporal
 * guard: `/api/v1/tasks/*`) gets that; any other request no route matched (404, 401, 429) is `unmatched`.
 */
export function routeTemplateOf(req: Request, res?: Response): string {
  const path = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof path === 'string') return `${req.baseUrl}${path}`;
  const group = res?.locals.routeGroup as unknown;
  return typeof group === 'string' ? group : 'unmatched';
}

/** Counts and times every request, by method, route template and status class, once its answer has gone out. */
export function requestMetrics(): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.once('close', () => {
      const labels = {
        method: req.method,
        route: routeTemplateOf(req, res),
        status_class: statusClass(res.statusCode),
      };
      requestsTotal.inc(labels);
      requestDuration.observe(labels, (performance.now() - started) / 1000);
    });
    next();
  };
}

export function metricsRoutes(): Router {
  enableDefaultMetrics();
  const router = Router();
  router.get('/metrics', async (_req, res) => {
    res.setHeader('content-type', METRICS_CONTENT_TYPE);
    res.send(await renderMetrics());
  });
  return router;
}
