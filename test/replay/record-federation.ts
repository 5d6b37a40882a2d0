/**
 * Records histories of a real federation campaign into test/replay/histories/, for the replay test.
 *   npm run test:record-federation-histories -- <tag>
 * Scenario: an encrypted campaign of two rounds over three simulated participants (one of which never answers, so
 * each round leaves it out at its deadline), paused and resumed by signal during round 1. Written: every run of the
 * campaign (continue-as-new between rounds) and each round's history. A file that exists is never overwritten.
 * Starts its own headless Temporal dev server and a scratch database, and runs every worker in-process.
 */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { queueFor } from '../../temporal/task-queues.js';
import { createParticipantWorkers } from '../../workers/participants.js';
import { createPoolWorkers } from '../../workers/pools.js';
import { federationCampaignWorkflow } from '../../workflows/index.js';
import { pauseSignal, resumeSignal } from '../../workflows/federation/campaign.workflow.js';
import { campaignWorkflowId, roundWorkflowId } from '../../workflows/federation/definitions.js';
import { giveBudget, recordCampaign, registerParticipants, simSource, smallCampaign } from '../helpers/federation.js';
import { withRecordingStack, writeHistory } from './record-stack.js';

const tag = process.argv[2] ?? 'v1';
const present = [0, 1].map((i) => ({ id: `rec-p${i}`, source: simSource(i, 3) }));
const absent = { id: 'rec-absent', source: simSource(2, 3) };

await withRecordingStack(
  {
    stateDirPrefix: 'agency-record-fed-',
    database: 'agency_record_fed',
    env: (stateDir) => ({ FEDERATION_KEY_DIR: path.join(stateDir, 'keys') }),
  },
  async (ctx) => {
    await registerParticipants(ctx.deps.db, 'default', [...present, absent]);
    await giveBudget(ctx.deps.db, 'default');
    return [
      ...(await createPoolWorkers(ctx, ['orchestration', 'federation', 'decryptor'])),
      ...(await createParticipantWorkers(ctx, present.map((p) => `${p.id}=${p.source}`).join(','))),
    ];
  },
  async ({ config, db, client }) => {
    const c = smallCampaign({
      id: `rec-${tag}`,
      participants: [...present, absent].map((p) => p.id),
      mode: 'encrypted',
      min_participants: 2,
      rounds: 2,
      round_deadline: '5s',
    });
    await recordCampaign(db, 'default', c);
    const handle = await client.workflow.start(federationCampaignWorkflow, {
      taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
      workflowId: campaignWorkflowId(c.id),
      args: [{ campaignId: c.id, config: c, round: 1, status: 'running', history: [] }],
      memo: { tenantId: 'default' },
    });
    await handle.signal(pauseSignal);
    await sleep(1000);
    await handle.signal(resumeSignal);
    const status = await handle.result();
    let run = 0;
    for await (const wf of client.workflow.list({ query: `WorkflowId = '${handle.workflowId}'` })) {
      const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
      await writeHistory(`federation-record-${tag}-campaign-run${++run}`, history);
    }
    for (const r of [1, 2]) {
      const history = await client.workflow.getHandle(roundWorkflowId(c.id, r)).fetchHistory();
      await writeHistory(`federation-record-${tag}-round-${r}`, history);
    }
    process.stdout.write(`campaign: ${status.status} (${status.reason}); ${run} runs, 2 rounds\n`);
  },
);
