/**
 * createApp(deps): the Express application without listen(), so tests run it in-process against real dependencies.
 * The API validates, authorises and talks to Temporal and PostgreSQL; nothing else.
 */
import { randomUUID } from 'node:crypto';
import express, { type Express, type RequestHandler } from 'express';
import type { Client } from '@temporalio/client';
import { storedBytes } from '../common/blob-store/catalog.js';
import type { Config } from '../common/config.js';
import type { Db } from '../common/db.js';
import type { Logger } from '../common/logger.js';
import { reportBlobBytesFrom } from '../common/metrics.js';
import { temporalRoutes } from './dependencies.js';
import { mcpRoutes } from './mcp.js';
import { errorHandler, notFoundRoute } from './errors.js';
import { inputGuard } from './input.js';
import { requestLog } from './request-log.js';
import { rateLimit } from 'express-rate-limit';
import helmet from 'helmet';
import { createAuthenticator, principalOf } from './principal.js';
import { auditRoutes } from './routes/audit.js';
import { keyRoutes } from './routes/keys.js';
import { codecCors, codecRoutes } from './routes/codec.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes, requestMetrics } from './routes/metrics.js';
import { openApiRoutes } from './routes/openapi.js';
import { councilRoutes } from './routes/council.js';
import { taskRoutes } from './routes/tasks.js';
import { toolRoutes } from './routes/tools.js';
import { repositoryRoutes } from './routes/repositories.js';
import { modelRoutes } from './routes/models.js';
import { predictionRoutes } from './routes/predictions.js';
import { federationRoutes } from './routes/federation.js';
import { tuningRoutes } from './routes/tuning.js';
import { waiverRoutes } from './routes/waivers.js';
import { serverTiming } from './server-timing.js';

export interface AppDeps {
  temporal: Client;
  db: Db;
  config: Config;
  log: Logger;
}

const CORRELATION_HEADER = 'x-correlation-id';

/** Takes the caller's correlation id (if well-formed) or makes one, and echoes it back. */
const correlationId: RequestHandler = (req, res, next) => {
  const given = req.get(CORRELATION_HEADER);
  const id = given && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : randomUUID();
  res.locals.correlationId = id;
  res.setHeader(CORRELATION_HEADER, id);
  next();
};

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.use(serverTiming);
  app.use(correlationId);
  // After correlationId: every request's log line carries its id, and every request is counted (401 and 429 too).
  app.use(requestLog(deps.log));
  app.use(requestMetrics());
  app.use(helmet());
  app.use(express.json({ limit: deps.config.API_BODY_LIMIT, strict: true }));
  // Malformed percent-encoding, U+0000 and lone surrogates in the path, query or body: 400 for every route (input.ts).
  app.use(inputGuard);
  // Public: health checks (probes) only. Everything below needs an API key or a JWT.
  app.use(healthRoutes(deps));
  // Also public, before authentication: Prometheus scrapes /metrics, and the OpenAPI document describes the API.
  // The API reports the blob store's bytes per tenant and backend, read from the catalog on each scrape.
  reportBlobBytesFrom(() => storedBytes(deps.db));
  app.use(metricsRoutes());
  app.use(openApiRoutes());
  // The Web UI's codec: CORS preflight before authentication (browsers send it without credentials).
  app.use(codecCors(deps));
  app.use(createAuthenticator(deps));
  app.use(
    rateLimit({
      windowMs: 60_000,
      limit: deps.config.RATE_LIMIT_PER_MINUTE,
      keyGenerator: (_req, res) => principalOf(res).rateKey,
      standardHeaders: 'draft-7',
      legacyHeaders: false,
      handler: (req, res, _next, options) => {
        res
          .status(429)
          .setHeader('Retry-After', String(Math.ceil(options.windowMs / 1000)))
          .type('application/problem+json')
          .json({
            type: 'https://agent-agency.dev/problems/too-many-requests',
            title: 'Too Many Requests',
            status: 429,
            detail: `more than ${deps.config.RATE_LIMIT_PER_MINUTE} requests a minute for this key`,
            instance: req.originalUrl,
          });
      },
    }),
  );
  app.use(keyRoutes(deps));
  // Routes that need Temporal answer 503 + Retry-After while it is unreachable (api/dependencies.ts).
  app.use(temporalRoutes(deps, taskRoutes(deps), councilRoutes(deps), toolRoutes(deps)));
  app.use(waiverRoutes(deps));
  app.use(repositoryRoutes(deps));
  // The model registry: versions, their ONNX files (streamed into the blob store), status.
  app.use(modelRoutes(deps));
  // Predictions forwarded to the inference pool, feedback, and model rollouts (workflows).
  app.use(predictionRoutes(deps));
  app.use(federationRoutes(deps));
  // Runtime tuning runs (workflows): trials on the inference pool; apply records a version and rolls it out.
  app.use(tuningRoutes(deps));
  app.use(auditRoutes(deps));
  app.use(codecRoutes(deps));
  // MCP (Streamable HTTP, stateless) over the same task service as the REST routes; each tool checks its role.
  app.use(mcpRoutes(deps));
  app.use(notFoundRoute);
  app.use(errorHandler(deps.log));
  return app;
}
