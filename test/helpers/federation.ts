/**
 * Federation test helpers: simulated participants (seeded MNIST shards, small) served in this process on their own
 * queues, tenants with budgets, and campaigns recorded as the API records them.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { afterAll, beforeAll } from 'vitest';
import { OrtThread } from '../../activities/inference/index.js';
import type { HostSource } from '../../activities/scheduling/host-state.js';
import { createBlobStore, useBlobStore } from '../../common/blob-store/index.js';
import type { Config, Pool } from '../../common/config.js';
import { createDb, type Db } from '../../common/db.js';
import { getParticipant, insertCampaign, insertParticipant, setBudget } from '../../common/federation.js';
import { queueFor } from '../../temporal/task-queues.js';
import {
  campaignWorkflowId,
  CampaignInputSchema,
  type CampaignConfig,
  type CampaignInput,
  type CampaignState,
} from '../../workflows/federation/definitions.js';
import { createParticipantWorkers } from '../../workers/participants.js';
import { startWorkers, temporalClient, testLog, type RunningWorkers } from './stack.js';

export const suffix = (): string => randomUUID().slice(0, 8);

/** A simulated participant's data source: shard `index` of `of` (IID unless said), 600 training digits in all. */
export function simSource(index: number, of: number, extra = ''): string {
  return `mnist:?participants=${of}&index=${index}&partition=iid&seed=3&limit=600${extra}`;
}

export async function ensureTenant(db: Db, id: string): Promise<void> {
  await db.query(`INSERT INTO tenants (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING`, [id]);
}

export async function registerParticipants(
  db: Db,
  tenantId: string,
  participants: { id: string; source: string }[],
): Promise<void> {
  await ensureTenant(db, tenantId);
  for (const p of participants)
    await insertParticipant(db, tenantId, 'user:test', { id: p.id, display_name: p.id, data_source: p.source });
}

export async function giveBudget(db: Db, tenantId: string, epsilon = 100_000, delta = 1e-5): Promise<void> {
  await setBudget(db, tenantId, 'user:test', { epsilon, delta });
}

/** A small, fast campaign configuration (softmax, three local epochs, a held-out split of 400 digits). */
export function smallCampaign(input: Partial<CampaignInput> & { participants: string[] }): CampaignConfig {
  const parsed = CampaignInputSchema.parse({
    model_name: 'digits',
    min_participants: 2,
    // Weak privacy, so that three simulated participants of 200 digits learn something in one round (accuracy about
    // 0.7 on the held-out split); the budget tests set their own noise.
    noise_multiplier: 0.05,
    clip_norm: 5,
    rounds: 1,
    round_deadline: '20s',
    // Short deferral timers: a busy test machine delays a participant's training by 2 s at most.
    host_deferral: { max_delay: '4s', check_interval: '500ms', expected_training: '3s' },
    local: { epochs: 3, batch_size: 32, lr: 0.5 },
    evaluation: { seed: 3, limit: 400 },
    ...input,
  });
  return { ...parsed, id: input.id ?? `c-${suffix()}` };
}

/** The start options of a campaign's workflow at round 1 (as the API starts it: api/routes/federation.ts). */
export function campaignStart(
  config: Config,
  c: CampaignConfig,
): { taskQueue: string; workflowId: string; args: [CampaignState] } {
  return {
    taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
    workflowId: campaignWorkflowId(c.id),
    args: [{ campaignId: c.id, config: c, round: 1, status: 'running', history: [] }],
  };
}

export async function recordCampaign(db: Db, tenantId: string, config: CampaignConfig): Promise<void> {
  const participants = await Promise.all(config.participants.map((id) => getParticipant(db, id)));
  await insertCampaign(
    db,
    { id: config.id, tenantId, modelName: config.model_name, config, createdBy: 'user:test' },
    participants.filter((p) => p !== undefined),
  );
}

export interface RunningParticipants {
  stop(): Promise<void>;
}

/** Serves the given participants in this process, each on its own queue. */
export async function startParticipants(
  config: Config,
  db: Db,
  participants: { id: string; source: string }[],
  hostSource?: (participantId: string) => HostSource | undefined,
): Promise<RunningParticipants> {
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const ort = new OrtThread();
  const workers: Worker[] = await createParticipantWorkers(
    {
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      prefix: config.TASK_QUEUE_PREFIX,
      deps: { db, config, ort, log: testLog },
    },
    participants.map((p) => `${p.id}=${p.source}`).join(','),
    hostSource,
  );
  const running = Promise.all(workers.map((w) => w.run()));
  return {
    async stop() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await running;
      await ort.close();
      await connection.close();
    },
  };
}

export interface FederationStack {
  db: Db;
  client: Client;
  /** Stops the participants, then the workers, then closes the client and the database handle. */
  stop(): Promise<void>;
}

/**
 * What a federation stack test starts before its cases: a database handle (with the configured blob store when
 * `blobStore`), the participants registered to `tenantId` (given a budget unless `budget: false`), workers on `pools`,
 * the participants served in this process (reading their host state from `hostSource`), and a client.
 * When a step fails, what was started already is stopped before the error propagates.
 */
export async function startFederationStack(
  config: Config,
  tenantId: string,
  participants: { id: string; source: string }[],
  pools: readonly Pool[],
  {
    budget = true,
    blobStore = false,
    hostSource,
  }: {
    budget?: boolean;
    blobStore?: boolean;
    hostSource?: (participantId: string) => HostSource | undefined;
  } = {},
): Promise<FederationStack> {
  const db = createDb(config.DATABASE_URL);
  let workers: RunningWorkers | undefined;
  let served: RunningParticipants | undefined;
  let client: Client | undefined;
  const stop = async (): Promise<void> => {
    await served?.stop();
    await workers?.stop();
    await client?.connection.close();
    await db.end();
  };
  try {
    if (blobStore) useBlobStore(db, await createBlobStore(config, db));
    await registerParticipants(db, tenantId, participants);
    if (budget) await giveBudget(db, tenantId);
    workers = await startWorkers(config, pools);
    served = await startParticipants(config, db, participants, hostSource);
    client = await temporalClient(config);
    return { db, client, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * startFederationStack (same arguments) for the enclosing suite: started in beforeAll and handed to `started`, stopped
 * in afterAll. Hooks the suite registers after this call run after the start and before the stop.
 */
export function useFederationStack(
  started: (stack: FederationStack) => void,
  ...args: Parameters<typeof startFederationStack>
): void {
  let stack: FederationStack | undefined;
  beforeAll(async () => {
    stack = await startFederationStack(...args);
    started(stack);
  });
  afterAll(async () => {
    await stack?.stop();
  });
}
