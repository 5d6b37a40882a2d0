/** Liveness and dependency health: each check is real and has a deadline; a dependency that is down answers 503. */
import { Router } from 'express';
import type { AppDeps } from '../app.js';

const CHECK_TIMEOUT_MS = 2_000;

type Check = { status: 'up' | 'down'; latencyMs: number; error?: string };

async function timed(fn: () => Promise<unknown>): Promise<Check> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return { status: 'up', latencyMs: Date.now() - started };
  } catch (err) {
    return { status: 'down', latencyMs: Date.now() - started, error: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

export function healthRoutes({ temporal, db, config }: AppDeps): Router {
  const checkTemporal = (): Promise<Check> =>
    timed(() =>
      temporal.connection.withDeadline(Date.now() + CHECK_TIMEOUT_MS, () =>
        temporal.workflowService.describeNamespace({ namespace: config.TEMPORAL_NAMESPACE }),
      ),
    );
  const checkDatabase = (): Promise<Check> => timed(() => db.query('SELECT 1'));

  const router = Router();
  router.get('/health', async (_req, res) => {
    const [temporalCheck, databaseCheck] = await Promise.all([checkTemporal(), checkDatabase()]);
    const up = temporalCheck.status === 'up' && databaseCheck.status === 'up';
    res.status(up ? 200 : 503).json({
      status: up ? 'ok' : 'degraded',
      uptimeSeconds: Math.round(process.uptime()),
      checks: { temporal: temporalCheck, database: databaseCheck },
    });
  });
  router.get('/health/temporal', async (_req, res) => {
    const check = await checkTemporal();
    res
      .status(check.status === 'up' ? 200 : 503)
      .json({ ...check, address: config.TEMPORAL_ADDRESS, namespace: config.TEMPORAL_NAMESPACE });
  });
  router.get('/health/database', async (_req, res) => {
    const check = await checkDatabase();
    res.status(check.status === 'up' ? 200 : 503).json(check);
  });
  return router;
}
