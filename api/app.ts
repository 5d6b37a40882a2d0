/**
 * createApp(deps): the Express application without listen(), so tests run it in-process against real dependencies.
 * The API validates, authorises and talks to Temporal and PostgreSQL; nothing else.
 */
import { randomUUID } from 'node:crypto';
import express, { type Express, type RequestHandler } from 'express';
import type { Client } from '@temporalio/client';
import type { Config } from '../common/config.js';
import type { Db } from '../common/db.js';
import type { Logger } from '../common/logger.js';
import { errorHandler, notFoundRoute } from './errors.js';
import { resolvePrincipal } from './principal.js';
import { healthRoutes } from './routes/health.js';
import { councilRoutes } from './routes/council.js';
import { taskRoutes } from './routes/tasks.js';
import { waiverRoutes } from './routes/waivers.js';

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
  app.use(correlationId);
  app.use(express.json({ limit: deps.config.API_BODY_LIMIT, strict: true }));
  app.use(healthRoutes(deps));
  app.use(resolvePrincipal);
  app.use(taskRoutes(deps));
  app.use(councilRoutes(deps));
  app.use(waiverRoutes(deps));
  app.use(notFoundRoute);
  app.use(errorHandler(deps.log));
  return app;
}
