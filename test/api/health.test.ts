import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../common/config.js';
import { freePort } from '../helpers/ports.js';
import { eventually, json, startApi, testConfig, type RunningApi } from '../helpers/stack.js';

/** A TCP proxy in front of PostgreSQL that the test can cut and restore, as a network failure would. */
async function startCuttableProxy(target: { host: string; port: number }) {
  const port = await freePort();
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  const open = (): Promise<void> =>
    new Promise((resolve) => {
      server = net.createServer((client) => {
        const upstream = net.connect(target.port, target.host);
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => s.destroy());
        }
        client.pipe(upstream).pipe(client);
      });
      server.listen(port, '127.0.0.1', () => resolve());
    });
  const cut = (): Promise<void> =>
    new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      if (server) server.close(() => resolve());
      else resolve();
    });
  await open();
  return { port, open, cut };
}

describe('health endpoints', () => {
  let api: RunningApi;
  let proxy: Awaited<ReturnType<typeof startCuttableProxy>>;
  let config: Config;

  beforeAll(async () => {
    const real = new URL(testConfig().DATABASE_URL);
    proxy = await startCuttableProxy({ host: real.hostname, port: Number(real.port || 5432) });
    real.hostname = '127.0.0.1';
    real.port = String(proxy.port);
    config = testConfig({ DATABASE_URL: real.toString() });
    api = await startApi(config);
  });
  afterAll(async () => {
    await api?.stop().catch(() => undefined);
    await proxy?.cut();
  });

  it('when Temporal and PostgreSQL answer, then every health check is 200', async () => {
    const health = await api.fetch(`/health`);
    expect(health.status).toBe(200);
    expect(await json(health)).toMatchObject({
      status: 'ok',
      checks: { temporal: { status: 'up' }, database: { status: 'up' } },
    });
    expect((await api.fetch(`/health/temporal`)).status).toBe(200);
    expect((await api.fetch(`/health/database`)).status).toBe(200);
  });

  it('when PostgreSQL becomes unreachable, then /health/database answers 503, and 200 again once it is back', async () => {
    await proxy.cut();
    const down = await api.fetch(`/health/database`);
    expect(down.status).toBe(503);
    expect(await json(down)).toMatchObject({ status: 'down' });
    const overall = await api.fetch(`/health`);
    expect(overall.status).toBe(503);
    expect(await json(overall)).toMatchObject({
      status: 'degraded',
      checks: { database: { status: 'down' }, temporal: { status: 'up' } },
    });

    await proxy.open();
    await eventually(async () => (await api.fetch(`/health/database`)).status === 200, {
      what: 'database health to recover',
    });
  });

  it('when Temporal is unreachable, then /health/temporal answers 503 and the API keeps serving', async () => {
    const closed = await freePort();
    const offline = await startApi(testConfig({ TEMPORAL_ADDRESS: `127.0.0.1:${closed}` }));
    try {
      const res = await offline.fetch(`/health/temporal`);
      expect(res.status).toBe(503);
      expect(await json(res)).toMatchObject({ status: 'down', address: `127.0.0.1:${closed}` });
      expect((await offline.fetch(`/health/database`)).status).toBe(200);
    } finally {
      await offline.stop().catch(() => undefined);
    }
  });
});
