// A dev server that comes up after clients have been knocking for a while is seen as soon as it answers. grpc-js
// shares one subchannel per address across connections, and its back-off grows while nothing listens; a probe that
// reused it saw a started server as down for a minute and more (the fresh-machine start-up failure).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isTemporalUp, startDevServer, type DevServer } from '../../temporal/dev-server.js';
import { freePort } from '../helpers/ports.js';

let server: DevServer | undefined;
let stateDir: string | undefined;
afterAll(async () => {
  await server?.stop();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

describe('dev server start-up after a long wait', () => {
  it('answers within seconds of its first log line even after 30 s of refused probes', async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const knockUntil = Date.now() + 30_000;
    while (Date.now() < knockUntil) {
      expect(await isTemporalUp(address, 500)).toBe(false);
      await new Promise((r) => setTimeout(r, 250));
    }
    stateDir = await mkdtemp(path.join(os.tmpdir(), 'agency-startup-'));
    server = await startDevServer({ port, ui: false, stateDir, answerTimeoutMs: 5_000 });
    expect(server.started).toBe(true);
    expect(await isTemporalUp(address)).toBe(true);
  }, 120_000);
});
