/**
 * How fast the Temporal dev server takes a burst of workflow starts on its own: N StartWorkflowExecution calls at once
 * (a workflow type no worker polls), on an idle dev server of its own, after one warm-up burst. The floor under
 * POST /api/v1/tasks's p95 in the load bench, which starts one workflow per request; `npm run bench` measures the same
 * floor on its own server in the same run (startBurst).
 *
 *   npm run bench:starts -- [--burst 34] [--rounds 3]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { startDevServer } from '../temporal/dev-server.js';
import { freePort } from '../test/helpers/ports.js';
import { summarize } from './stats.js';

/**
 * `n` StartWorkflowExecution calls at once, of a workflow type on a queue no worker polls; each call's latency in ms.
 * The workflows are terminated afterwards (they would otherwise wait on that queue for ever).
 */
export async function startBurst(client: Client, n: number, idPrefix: string): Promise<number[]> {
  const ids = Array.from({ length: n }, (_, i) => `${idPrefix}-${i}`);
  const ms = await Promise.all(
    ids.map(async (workflowId) => {
      const t = performance.now();
      await client.workflow.start('benchStartOnly', { taskQueue: 'bench-nobody-polls', workflowId });
      return performance.now() - t;
    }),
  );
  await Promise.all(ids.map((id) => client.workflow.getHandle(id).terminate('bench: start measured')));
  return ms;
}

/** One start at a time, `n` times: the server's latency for a start with nothing else in flight. */
export async function singleStarts(client: Client, n: number, idPrefix: string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(...(await startBurst(client, 1, `${idPrefix}-${i}`)));
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { burst: { type: 'string', default: '34' }, rounds: { type: 'string', default: '3' } },
  });
  const burst = Number(values.burst);
  const rounds = Number(values.rounds);
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'agency-bench-starts-'));
  const server = await startDevServer({ port: await freePort(), ui: false, stateDir });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, namespace: server.namespace });
  try {
    await startBurst(client, burst, 'bench-start-warm-up');
    const single = summarize(await singleStarts(client, 2, 'bench-start-single'));
    const all: number[] = [];
    for (let r = 0; r < rounds; r++) all.push(...(await startBurst(client, burst, `bench-start-round-${r}`)));
    const s = summarize(all);
    process.stdout.write(
      `Temporal dev server (SQLite), idle: one start ${Math.round(single.p50)} ms; ${burst} at once, ${rounds} rounds: ` +
        `p50 ${Math.round(s.p50)} ms, p95 ${Math.round(s.p95)} ms, max ${Math.round(s.max)} ms\n`,
    );
  } finally {
    await connection.close();
    await server.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
