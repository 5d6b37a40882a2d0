/**
 * §3 of issue 13 in a real browser: with payload encryption on, the Temporal Web UI (the CLI's dev server, started
 * with the UI and `--ui-codec-endpoint` exactly as `npm run dev` starts it) shows a task's input decrypted, through
 * the API's codec endpoint and the dev session's credential, with no header made by hand. A request without a
 * credential still gets 401.
 *
 * Debian's chromium (installed by the test helper when missing) driven by playwright-core. This test starts its own
 * dev server with the UI on (the suite's is headless) and the API on a free port; the task workflow is started with
 * the codec and no worker polls its queue: the input in its first event is what the page must decrypt.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devCodecEndpoint } from '../../api/routes/codec.js';
import type { Config } from '../../common/config.js';
import { freePort } from '../../common/processes.js';
import { startDevServer, type DevServer } from '../../temporal/dev-server.js';
import { taskWorkflowId } from '../../workflows/task/definitions.js';
import { ensureChromium } from '../helpers/chromium.js';
import { startApi, temporalClient, testConfig, type RunningApi } from '../helpers/stack.js';

describe('the Web UI decrypts payloads through the codec endpoint, in Chromium', () => {
  let stateDir: string;
  let server: DevServer | undefined;
  let api: RunningApi | undefined;
  let client: Client | undefined;
  let browser: Browser | undefined;
  let config: Config;
  let uiUrl: string;
  const token = randomBytes(32).toString('base64url');

  beforeAll(async () => {
    const executablePath = await ensureChromium((line) => console.log(line));
    stateDir = await mkdtemp(path.join(os.tmpdir(), 'agency-browser-'));
    const [port, uiPort] = [await freePort(), await freePort()];
    uiUrl = `http://localhost:${uiPort}`;
    config = testConfig({
      TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
      TEMPORAL_UI_URL: uiUrl,
      PAYLOAD_KEYS: `dev:${randomBytes(32).toString('base64')}`,
      PAYLOAD_KEY_ID: 'dev',
      CODEC_DEV_TOKEN: token,
    });
    // The API first (its port goes into the UI's codec endpoint), then the dev server with its UI, as scripts/dev.ts.
    api = await startApi(config);
    [server, browser] = await Promise.all([
      startDevServer({
        port,
        uiPort,
        ui: true,
        codecEndpoint: devCodecEndpoint(api.url, token),
        namespace: config.TEMPORAL_NAMESPACE,
        stateDir,
      }),
      // Root (CI) cannot use Chromium's own sandbox.
      chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] }),
    ]);
    client = await temporalClient(config);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await client?.connection.close();
    await api?.stop();
    await server?.stop();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('when a task page is opened with encryption on, then its input is shown decrypted; without a credential the codec answers 401', async () => {
    const started = Date.now();
    const id = randomUUID();
    const marker = `browser-secret-${randomUUID().slice(0, 8)}`;
    await client!.workflow.start('agentTaskWorkflow', {
      workflowId: taskWorkflowId(id),
      taskQueue: `${config.TASK_QUEUE_PREFIX}nobody-polls`,
      args: [{ id, title: `Fix average ${marker}`, tenantId: config.BOOTSTRAP_TENANT }],
    });
    // The server holds ciphertext only.
    const history = await client!.workflow.getHandle(taskWorkflowId(id)).fetchHistory();
    const raw = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    expect(Buffer.from(raw?.metadata?.encoding ?? []).toString()).toBe('binary/encrypted');
    expect(Buffer.from(raw?.data ?? []).includes(marker)).toBe(false);

    const page = await browser!.newPage();
    const codecAnswers: number[] = [];
    page.on('response', (res) => {
      if (res.url().includes('/api/v1/codec/')) codecAnswers.push(res.status());
    });
    await page.goto(`${uiUrl}/namespaces/${config.TEMPORAL_NAMESPACE}/workflows/${taskWorkflowId(id)}`);
    await expect
      .poll(async () => (await page.content()).includes(marker), { timeout: 30_000, interval: 500 })
      .toBe(true);
    expect(await page.getByText('Codec Server could not connect').count()).toBe(0);
    expect(codecAnswers.length).toBeGreaterThan(0);
    expect(codecAnswers.every((s) => s === 200)).toBe(true);

    // Without a credential: 401, from the UI's own origin (the browser can read it: CORS on the UI origin) and from
    // a process; a wrong dev token likewise.
    const body = JSON.stringify({ payloads: [] });
    const fromPage = await page.evaluate(
      async ([url, payload]) => {
        const statusOf = async (u: string): Promise<number> =>
          (await fetch(u, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload })).status;
        return [
          await statusOf(`${url}/api/v1/codec/decode`),
          await statusOf(`${url}/api/v1/codec/dev/${'x'.repeat(43)}/decode`),
        ];
      },
      [api!.url, body] as const,
    );
    expect(fromPage).toEqual([401, 401]);
    const bare = await fetch(`${api!.url}/api/v1/codec/decode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: uiUrl },
      body,
    });
    expect(bare.status).toBe(401);
    // The dev token from anywhere but the UI's origin is refused too.
    const otherOrigin = await fetch(`${devCodecEndpoint(api!.url, token)}/decode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'http://evil.example' },
      body,
    });
    expect(otherOrigin.status).toBe(401);
    await page.close();
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});
