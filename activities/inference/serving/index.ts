/**
 * The serving data plane of the inference pool, for the process that runs it (workers/main.ts) and its activities:
 *
 *   startServing({ db, config, log }) → { host, server?, close() }   the host, and its HTTP port when SERVING_PORT
 *   createServingActivities({ db, config, host? })                   rollout activities + predictModel
 *
 * `predictModel` is how an activity (a judge, a risk assessment) calls a served model: the same router as the HTTP
 * path, in this process. Without a host given, the first call starts one for the process (and keeps it).
 */
import type { Server } from 'node:http';
import type { Config } from '../../../common/config.js';
import type { Db } from '../../../common/db.js';
import type { Logger } from '../../../common/logger.js';
import { ServingHost, type PredictOptions, type Prediction } from './host.js';
import { createServingServer } from './http.js';
import { registryArtifacts, registryPort } from './registry.js';
import { createRolloutActivities } from './rollout.js';

export { ServingHost } from './host.js';

export interface ServingDeps {
  db: Db;
  config: Pick<Config, 'DATABASE_URL' | 'SERVING_RELOAD_INTERVAL' | 'SERVING_HOST' | 'SERVING_PORT' | 'SERVING_TOKEN'>;
  log?: Logger;
}

export function newServingHost({ db, config, log }: ServingDeps): ServingHost {
  return new ServingHost({
    db,
    databaseUrl: config.DATABASE_URL,
    artifacts: registryArtifacts(db),
    reloadMs: config.SERVING_RELOAD_INTERVAL,
    log,
  });
}

export interface RunningServing {
  host: ServingHost;
  server?: Server;
  url?: string;
  close(): Promise<void>;
}

/** Starts this process's host and, with a SERVING_PORT, its HTTP endpoint (port 0 here means off). */
export async function startServing(deps: ServingDeps, port = deps.config.SERVING_PORT): Promise<RunningServing> {
  const host = newServingHost(deps);
  await host.start();
  let server: Server | undefined;
  let url: string | undefined;
  if (port > 0) {
    server = createServingServer(host, { token: deps.config.SERVING_TOKEN });
    server.keepAliveTimeout = 65_000;
    const listening = await new Promise<boolean>((resolve) => {
      server!.once('error', (err) => {
        // A taken port costs the HTTP path, not the worker: activities still call the host (predictModel).
        deps.log?.error({ err, port }, 'serving port did not open');
        resolve(false);
      });
      server!.listen(port, deps.config.SERVING_HOST, () => resolve(true));
    });
    if (listening) url = `http://${deps.config.SERVING_HOST}:${(server.address() as { port: number }).port}`;
    else server = undefined;
  }
  return {
    host,
    server,
    url,
    async close() {
      // Stop taking requests, let the open ones finish (the host drains each version before releasing it).
      if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
      server?.closeAllConnections();
      await host.close();
    },
  };
}

export function createServingActivities(deps: ServingDeps & { host?: ServingHost }) {
  let host: Promise<ServingHost> | undefined = deps.host ? Promise.resolve(deps.host) : undefined;
  const hostOf = (): Promise<ServingHost> => {
    host ??= (async () => {
      const h = newServingHost(deps);
      await h.start();
      return h;
    })();
    return host;
  };
  return {
    ...createRolloutActivities({
      db: deps.db,
      registry: registryPort(deps.db),
      replicaLiveMs: 3 * deps.config.SERVING_RELOAD_INTERVAL,
    }),
    /** A prediction through this process's router (the same path as POST /api/v1/models/:name/predict). */
    async predictModel(input: {
      tenantId: string;
      model: string;
      inputs: number[][];
      options?: PredictOptions;
    }): Promise<Prediction> {
      return (await hostOf()).predict(input.tenantId, input.model, input.inputs, input.options);
    },
  };
}

export type ServingActivities = ReturnType<typeof createServingActivities>;
