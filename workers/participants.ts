/**
 * Participant workers: one Worker per participant, each on the participant's own queue agency-federation-<id>, running
 * only that participant's local training (activities/federation/participant.ts) against the data source its own
 * configuration names. One process may serve one participant (a site, beside its data) or many (simulation: each a
 * seeded MNIST shard). Each also answers `readHostState` on its queue: the round defers a participant's training
 * while that participant's own host is busy or hot (workflows/scheduling/).
 */
import os from 'node:os';
import { Worker } from '@temporalio/worker';
import { createParticipantActivities } from '../activities/federation/participant.js';
import { parseParticipants } from '../activities/federation/sources.js';
import { createSchedulingActivities, type HostSource } from '../activities/scheduling/host-state.js';
import { createBlobStore, useBlobStore } from '../common/blob-store/index.js';
import { participantQueue } from '../workflows/federation/definitions.js';
import { dataConverterFromConfig } from '../temporal/codec.js';
import type { PoolContext } from './pools.js';

/** Local training is CPU-bound: one at a time per participant. */
const PARTICIPANT_CONCURRENCY = 1;

export async function createParticipantWorkers(
  ctx: PoolContext,
  spec: string = ctx.deps.config.FEDERATION_PARTICIPANTS,
  /** The host readings a participant's worker reports (tests inject them); default: this machine's. */
  hostSource?: (participantId: string) => HostSource | undefined,
): Promise<Worker[]> {
  const sources = parseParticipants(spec);
  if (sources.size === 0) throw new Error('FEDERATION_PARTICIPANTS names no participant (id=data-source,…)');
  useBlobStore(ctx.deps.db, await createBlobStore(ctx.deps.config, ctx.deps.db));
  return Promise.all(
    [...sources.entries()].map(([id, source]) =>
      Worker.create({
        connection: ctx.connection,
        namespace: ctx.namespace,
        taskQueue: `${ctx.prefix}${participantQueue(id)}`,
        maxConcurrentActivityTaskExecutions: PARTICIPANT_CONCURRENCY,
        shutdownGraceTime: ctx.deps.config.WORKER_SHUTDOWN_GRACE,
        identity: `${ctx.identity ?? `${process.pid}@${os.hostname()}`}/participant-${id}`,
        dataConverter: dataConverterFromConfig(ctx.deps.config),
        // Only this participant's data source: a task for another participant on this queue is refused.
        activities: {
          ...createParticipantActivities({ db: ctx.deps.db, sources: new Map([[id, source]]) }),
          ...createSchedulingActivities({ source: hostSource?.(id) }),
        },
      }),
    ),
  );
}
