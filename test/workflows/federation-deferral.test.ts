/**
 * Load-aware deferral of local training in a federated round (issue 14) on the real stack: each participant's worker
 * answers readHostState with an injected reading; the busy participant's training waits with durable timers and still
 * trains within the round's deadline, every decision recorded in the round's result; non-deferrable training never
 * reads or waits; a participant that starts too late for the deadline is named, not silently missing.
 */
import { describe, expect, it } from 'vitest';
import type { Client } from '@temporalio/client';
import type { Db } from '../../common/db.js';
import { getRound } from '../../common/federation.js';
import { federationCampaignWorkflow } from '../../workflows/index.js';
import type { CampaignConfig, RoundMetrics } from '../../workflows/federation/definitions.js';
import { roundWorkflowId } from '../../workflows/federation/definitions.js';
import type { HostReading } from '../../workflows/scheduling/decision.js';
import { testConfig } from '../helpers/stack.js';
import {
  campaignStart,
  recordCampaign,
  simSource,
  smallCampaign,
  suffix,
  useFederationStack,
} from '../helpers/federation.js';

const config = testConfig();
const tenant = `fed-defer-${suffix()}`;
const ids = [0, 1, 2].map((i) => `d${i}-${suffix()}`);
const busy = ids[2]!;
const reads = new Map<string, number>();

/** A calm host (load 0.1 on 2 cores) for everyone but `busy` (load 8: over 1.5 per core). */
const readingOf = (id: string): HostReading => ({
  host: `host-${id}`,
  at: new Date().toISOString(),
  cores: 2,
  load1: id === busy ? 8 : 0.1,
  cpuTempC: null,
  memAvailableFraction: 0.5,
  memPressurePct: null,
});

let db: Db;

describe('host deferral in a federated round', () => {
  let client: Client;
  useFederationStack(
    (stack) => ({ db, client } = stack),
    config,
    tenant,
    ids.map((id, i) => ({ id, source: simSource(i, 3) })),
    ['orchestration', 'federation'],
    {
      blobStore: true,
      hostSource: (id) => ({
        read: () => {
          reads.set(id, (reads.get(id) ?? 0) + 1);
          return Promise.resolve(readingOf(id));
        },
      }),
    },
  );

  async function runRound(c: CampaignConfig): Promise<RoundMetrics> {
    await recordCampaign(db, tenant, c);
    await client.workflow.execute(federationCampaignWorkflow, campaignStart(config, c));
    const round = await getRound(db, c.id, 1);
    expect(round?.status).toBe('completed');
    return round?.metrics as unknown as RoundMetrics;
  }

  it('when a participant’s host reads high, then its training waits with durable timers and still joins the round, each decision recorded', async () => {
    reads.clear();
    // Normal priority waits at most half of max_delay: 2 s in 500 ms steps, then trains (well before 20 s − 3 s − 5 s).
    const c = smallCampaign({ participants: ids, mode: 'plaintext', min_participants: 3 });
    const metrics = await runRound(c);
    expect(metrics.contributors).toBe(3);
    expect(metrics.missing).toEqual([]);
    const s = metrics.scheduling!;
    expect(s).toMatchObject({ checked: 3, deferred: 1, late: [] });
    expect(s.decisions.map((d) => d.participantId)).toEqual([busy]);
    const d = s.decisions[0]!;
    expect(d).toMatchObject({ reason: 'max-delay', late: false });
    expect(d.waitedMs).toBeGreaterThanOrEqual(2000);
    expect(d.decisions.length).toBeGreaterThanOrEqual(2);
    expect(d.decisions.slice(0, -1).every((e) => e.action === 'defer' && e.reason === 'over-threshold')).toBe(true);
    for (const e of d.decisions) expect(e.reading).toMatchObject({ host: `host-${busy}`, load1: 8 });
    expect(d.decisions[0]!.over[0]).toMatch(/load per core 4\.50/);
    // The calm participants were read once each and went ahead at once.
    expect(reads.get(ids[0]!)).toBe(1);
    expect(reads.get(ids[1]!)).toBe(1);
    // The waits are timers in the round's history, and the busy participant trained after them.
    const history = await client.workflow.getHandle(roundWorkflowId(c.id, 1)).fetchHistory();
    const timers = history.events?.filter((e) => e.timerStartedEventAttributes) ?? [];
    // One timer per wait, and the round's own deadline timer.
    expect(timers.length).toBe(d.decisions.length - 1 + 1);
  });

  it('when training is not deferrable, then no host is read and nobody waits', async () => {
    reads.clear();
    const c = smallCampaign({
      participants: ids,
      mode: 'plaintext',
      min_participants: 3,
      host_deferral: { deferrable: false, max_delay: '4s', check_interval: '500ms', expected_training: '3s' },
    });
    const metrics = await runRound(c);
    expect(metrics.contributors).toBe(3);
    expect(metrics.scheduling).toMatchObject({ checked: 3, deferred: 0, late: [], decisions: [] });
    expect(reads.size).toBe(0);
    const history = await client.workflow.getHandle(roundWorkflowId(c.id, 1)).fetchHistory();
    // Only the round's own deadline timer.
    expect(history.events?.filter((e) => e.timerStartedEventAttributes)).toHaveLength(1);
    const scheduled = history.events?.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name);
    expect(scheduled).not.toContain('readHostState');
  });

  it('when the deadline leaves less than the expected training, then the participants train at once and are named as late', async () => {
    // 6 s − 3 s expected − 5 s margin: already past the latest start, so nobody waits and everybody is at risk.
    const c = smallCampaign({ participants: ids, mode: 'plaintext', min_participants: 3, round_deadline: '6s' });
    const metrics = await runRound(c);
    expect(metrics.contributors).toBe(3);
    const s = metrics.scheduling!;
    expect(s.late.sort()).toEqual([...ids].sort());
    expect(s.deferred).toBe(0);
    expect(s.decisions.find((d) => d.participantId === busy)).toMatchObject({ reason: 'deadline', late: true });
  });
});
