/**
 * /api/v1/federation over the real stack: participants, budgets, campaigns across two tenants (owner, invited
 * participant that opts in), refusals with 4xx (require_zkp, bad combinations), a Temporal Schedule that fires rounds by
 * its own interval spec (no trigger), and the schedule's pause (with a note), resume, update, trigger and delete.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../common/config.js';
import { createDb, type Db } from '../../common/db.js';
import { getCampaign, listRounds } from '../../common/federation.js';
import { bootstrapAdminKey } from '../../scripts/bootstrap.js';
import { eventually, json, useStack, type RunningApi } from '../helpers/stack.js';
import { simSource, startParticipants, suffix, type RunningParticipants } from '../helpers/federation.js';

const tenantA = `fa-${suffix()}`;
const tenantB = `fb-${suffix()}`;
const a = [0, 1].map((i) => ({ id: `a${i}-${suffix()}`, source: simSource(i, 3) }));
const b = { id: `b0-${suffix()}`, source: simSource(2, 3) };

describe('the federation API', () => {
  let config: Config;
  let api: RunningApi;
  let participants: RunningParticipants;
  let db: Db;
  let keyB: string;
  const asB = (p: string, init: RequestInit = {}) =>
    fetch(`${api.url}${p}`, { ...init, headers: { 'x-api-key': keyB, 'content-type': 'application/json' } });
  const post = (p: string, body: unknown, as: 'a' | 'b' = 'a') =>
    as === 'a'
      ? api.fetch(p, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
      : asB(p, { method: 'POST', body: JSON.stringify(body) });

  useStack((stack) => ({ config, api } = stack), {
    env: { BOOTSTRAP_TENANT: tenantA },
    pools: ['orchestration', 'federation'],
  });
  beforeAll(async () => {
    db = createDb(config.DATABASE_URL);
    keyB = await bootstrapAdminKey(db, tenantB, `b-admin-${suffix()}`);
    participants = await startParticipants(config, db, [...a, b]);
  });
  afterAll(async () => {
    await participants?.stop();
    await db?.end();
  });

  it('registers participants and budgets per tenant, and answers bad input with 4xx', async () => {
    for (const p of a)
      expect(
        (await post('/api/v1/federation/participants', { id: p.id, display_name: p.id, data_source: p.source })).status,
      ).toBe(201);
    expect(
      (await post('/api/v1/federation/participants', { id: b.id, display_name: 'B site', data_source: b.source }, 'b'))
        .status,
    ).toBe(201);
    const dup = await post('/api/v1/federation/participants', { id: a[0]!.id, display_name: 'x', data_source: 'x' });
    expect(dup.status).toBe(409);
    expect(
      (await post('/api/v1/federation/participants', { id: 'Bad Id', display_name: 'x', data_source: 'x' })).status,
    ).toBe(400);
    const list = await json<{ items: { id: string }[] }>(await api.fetch('/api/v1/federation/participants'));
    expect(list.items.map((p) => p.id).sort()).toEqual(a.map((p) => p.id).sort());
    expect((await asB(`/api/v1/federation/participants/${a[0]!.id}`)).status).toBe(404);

    const put = (body: unknown, as: 'a' | 'b') =>
      (as === 'a' ? (p: string, i?: RequestInit) => api.fetch(p, i) : asB)('/api/v1/federation/budgets', {
        method: 'PUT',
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json', ...(as === 'b' ? { 'x-api-key': keyB } : {}) },
      });
    expect((await put({ epsilon: 1000, delta: 1e-5 }, 'a')).status).toBe(200);
    expect((await put({ epsilon: 1000, delta: 1e-5 }, 'b')).status).toBe(200);
    expect((await put({ epsilon: 1, delta: 2 }, 'a')).status).toBe(400);
    const budget = await json(await api.fetch('/api/v1/federation/budgets'));
    expect(budget).toMatchObject({ tenant: tenantA, epsilon: 1000, delta: 1e-5, spent_epsilon: 0, rounds: 0 });
  });

  it('refuses require_zkp, distributed noise in plaintext mode and unknown participants with 400', async () => {
    const base = { model_name: 'digits', participants: a.map((p) => p.id), run: false };
    const zkp = await post('/api/v1/federation/campaigns', { ...base, require_zkp: true });
    expect(zkp.status).toBe(400);
    expect((await json<{ detail: string }>(zkp)).detail).toMatch(/zero-knowledge proofs .* not provided/);
    const mixed = await post('/api/v1/federation/campaigns', { ...base, mode: 'plaintext', noise: 'distributed' });
    expect(mixed.status).toBe(400);
    const unknown = await post('/api/v1/federation/campaigns', { ...base, participants: ['nobody-here'] });
    expect(unknown.status).toBe(400);
    expect((await json<{ detail: string }>(unknown)).detail).toMatch(/nobody-here/);
  });

  it('when a schedule of an interval of seconds runs, then it fires the campaign’s rounds by its own spec, and can be paused, resumed, updated, triggered and deleted', async () => {
    const id = `sched-${suffix()}`;
    const created = await post('/api/v1/federation/campaigns', {
      id,
      model_name: 'digits',
      participants: [...a.map((p) => p.id), b.id],
      mode: 'plaintext',
      min_participants: 2,
      noise_multiplier: 0.5,
      rounds: 2,
      round_deadline: '20s',
      local: { epochs: 1, batch_size: 32, lr: 0.5 },
      evaluation: { seed: 3, limit: 300 },
      run: false,
    });
    expect(created.status).toBe(201);
    const view = await json<{ participants: { id: string; status: string }[] }>(created);
    expect(view.participants.find((p) => p.id === b.id)?.status).toBe('invited');
    // Tenant B sees the campaign, only its own participant, and may not drive it; it opts its participant in.
    const seenByB = await json<{ participants: { id: string }[]; owner: string }>(
      await asB(`/api/v1/federation/campaigns/${id}`),
    );
    expect(seenByB.owner).toBe(tenantA);
    expect(seenByB.participants.map((p) => p.id)).toEqual([b.id]);
    expect((await post(`/api/v1/federation/campaigns/${id}/pause`, {}, 'b')).status).toBe(403);
    expect((await post(`/api/v1/federation/campaigns/${id}/participants/${a[0]!.id}/opt-in`, {}, 'b')).status).toBe(
      404,
    );
    const opted = await post(`/api/v1/federation/campaigns/${id}/participants/${b.id}/opt-in`, {}, 'b');
    expect(await json(opted)).toMatchObject({ status: 'opted_in' });

    const sched = await post('/api/v1/federation/schedules', {
      campaign_id: id,
      spec: { interval: '3s' },
      overlap: 'skip',
      catchup_window: '10s',
    });
    expect(sched.status).toBe(201);
    const sid = (await json<{ id: string }>(sched)).id;
    expect((await post('/api/v1/federation/schedules', { campaign_id: id, spec: { interval: '3s' } })).status).toBe(
      409,
    );
    expect((await post('/api/v1/federation/schedules', { campaign_id: id, name: 'x', spec: {} })).status).toBe(400);
    expect((await asB(`/api/v1/federation/schedules/${sid}`)).status).toBe(404);

    // Two rounds, each started by the schedule's own interval (nothing triggers it).
    await eventually(async () => (await getCampaign(db, id))!.roundsDone >= 2, {
      timeoutMs: 80_000,
      what: 'two scheduled rounds',
    });
    const rounds = await listRounds(db, id);
    expect(rounds.map((r) => r.status).slice(0, 2)).toEqual(['completed', 'completed']);
    expect(rounds[0]!.selected).toContain(b.id);
    const described = await json<{
      actions: number;
      recent: { workflow_id: string }[];
      spec: { intervals: { every_ms: number }[] };
    }>(await api.fetch(`/api/v1/federation/schedules/${sid}`));
    expect(described.actions).toBeGreaterThanOrEqual(2);
    expect(described.spec.intervals).toEqual([{ every_ms: 3000 }]);
    const campaign = await json<{ rounds: { metrics: { accuracy: number } | null }[] }>(
      await api.fetch(`/api/v1/federation/campaigns/${id}`),
    );
    expect(campaign.rounds[0]!.metrics!.accuracy).toEqual(expect.any(Number));
    const budgetB = await json<{ spent_epsilon: number; rounds: number }>(await asB('/api/v1/federation/budgets'));
    expect(budgetB.rounds).toBeGreaterThanOrEqual(2);
    expect(budgetB.spent_epsilon).toBeGreaterThan(0);

    const paused = await json<{ paused: boolean; note: string }>(
      await post(`/api/v1/federation/schedules/${sid}/pause`, { note: 'maintenance at site B' }),
    );
    expect(paused).toMatchObject({ paused: true, note: 'maintenance at site B' });
    const resumed = await json<{ paused: boolean }>(await post(`/api/v1/federation/schedules/${sid}/resume`, {}));
    expect(resumed.paused).toBe(false);
    const updated = await api.fetch(`/api/v1/federation/schedules/${sid}`, {
      method: 'PATCH',
      body: JSON.stringify({ overlap: 'buffer_one', spec: { interval: '1h' } }),
      headers: { 'content-type': 'application/json' },
    });
    expect(await json(updated)).toMatchObject({
      overlap: 'buffer_one',
      spec: { intervals: [{ every_ms: 3_600_000 }] },
    });
    expect((await post(`/api/v1/federation/schedules/${sid}/trigger`, {})).status).toBe(202);
    const listed = await json<{ items: { id: string }[] }>(await api.fetch('/api/v1/federation/schedules'));
    expect(listed.items.map((s) => s.id)).toContain(sid);
    expect((await api.fetch(`/api/v1/federation/schedules/${sid}`, { method: 'DELETE' })).status).toBe(204);
    expect((await api.fetch(`/api/v1/federation/schedules/${sid}`)).status).toBe(404);
  }, 120_000);

  it('when a running campaign is paused and then stopped, then its loop waits and then ends as stopped', async () => {
    const id = `loop-${suffix()}`;
    const created = await post('/api/v1/federation/campaigns', {
      id,
      model_name: 'digits',
      participants: a.map((p) => p.id),
      mode: 'plaintext',
      min_participants: 2,
      rounds: 20,
      round_deadline: '20s',
      evaluation: { seed: 3, limit: 300 },
    });
    expect(created.status).toBe(201);
    expect((await post(`/api/v1/federation/campaigns/${id}/pause`, {})).status).toBe(202);
    const live = await eventually(
      async () => {
        const v = await json<{ live: { status: string; round: number } | null }>(
          await api.fetch(`/api/v1/federation/campaigns/${id}`),
        );
        return v.live?.status === 'paused' ? v.live : undefined;
      },
      { timeoutMs: 60_000, what: 'the campaign to pause' },
    );
    // The query says paused at once; a round already running finishes first, and the loop records that it waits.
    await eventually(async () => (await getCampaign(db, id))?.status === 'paused', {
      timeoutMs: 60_000,
      what: 'the loop to wait',
    });
    const roundsWhenPaused = (await listRounds(db, id)).length;
    expect(roundsWhenPaused).toBeLessThanOrEqual(live.round);
    expect((await post(`/api/v1/federation/campaigns/${id}/stop`, { reason: 'enough' })).status).toBe(202);
    await eventually(async () => (await getCampaign(db, id))?.status === 'stopped', {
      timeoutMs: 30_000,
      what: 'stopped',
    });
    expect((await getCampaign(db, id))?.reason).toBe('enough');
    expect((await listRounds(db, id)).length).toBe(roundsWhenPaused);
  }, 90_000);
});
