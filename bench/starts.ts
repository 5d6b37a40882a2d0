/**
 * How fast the Temporal dev server takes a burst of workflow starts on its own: N StartWorkflowExecution calls at once
 * (a workflow type no worker polls), on an idle dev server of its own, after one warm-up burst. The floor under
 * POST /api/v1/tasks's p95 in the load bench, which starts one workflow per request.
 *
 *   npm run bench:starts -- [--burst 34] [--rounds 3]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { startDevServer } from '../temporal/dev-server.js';
import { freePort } from '../test/helpers/ports.js';
import { summarize } from './stats.js';

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
  const once = async (n: number, round: string): Promise<number[]> =>
    Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const t = performance.now();
        await client.workflow.start('benchStartOnly', {
          taskQueue: 'bench-nobody-polls',
          workflowId: `bench-start-${round}-${i}`,
        });
        return performance.now() - t;
      }),
    );
  await once(burst, 'warm-up');
  const single = summarize(await once(1, 'single').then(async (a) => [...a, ...(await once(1, 'single-2'))]));
  const all: number[] = [];
  for (let r = 0; r < rounds; r++) all.push(...(await once(burst, `round-${r}`)));
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
