import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../common/config.js';
import { freePort } from '../helpers/ports.js';
import { eventually, json, startApi, testConfig, type RunningApi } from '../helpers/stack.js';
import { startCuttableProxy } from '../helpers/proxy.js';

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
