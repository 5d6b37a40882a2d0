/**
 * Federated learning over HTTP: participants, campaigns, Temporal Schedules of rounds, privacy budgets. Validation,
 * authorisation and calls to Temporal and PostgreSQL only; rounds themselves are workflows/federation.
 *
 * Roles as for tasks: viewer reads, operator starts and drives campaigns and schedules, admin registers participants,
 * sets budgets and opts the tenant's participants in or out.
 *
 * Across tenants:
 * - A campaign belongs to the tenant that starts it. Its owner may name participants of any tenant; its own take part
 *   at once, another tenant's are only invited until an admin of that tenant opts them in
 *   (POST /campaigns/:id/participants/:participant/opt-in). Only the owner pauses, resumes, stops and schedules.
 * - A tenant with an invited or opted-in participant reads the campaign, its per-round metrics and the global model's
 *   reference, as the owner does, but sees only its own participants by name. Nobody reads an individual update: no
 *   route serves one (updates are blobs referenced only by the round's workflow, and encrypted in encrypted mode).
 * - Each tenant's privacy budget is its own (PUT /budgets); a round spends the budget of every tenant with a candidate.
 */
import { randomUUID } from 'node:crypto';
import { ScheduleNotFoundError, ScheduleOverlapPolicy, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { Router, type Response } from 'express';
import { z } from 'zod';
import { budgetView } from '../../activities/federation/budget.js';
import {
  BudgetInputSchema,
  campaignMembers,
  campaignsVisibleTo,
  decideMembership,
  FederationIdSchema,
  getCampaign,
  getParticipant,
  insertCampaign,
  insertParticipant,
  listParticipants,
  listRounds,
  ParticipantInputSchema,
  ParticipantStatusSchema,
  setBudget,
  setParticipantStatus,
  updateCampaign,
  type Campaign,
  type Participant,
} from '../../common/federation.js';
import { ModelKey } from '../../temporal/search-attributes.js';
import { queueFor } from '../../temporal/task-queues.js';
import {
  CampaignInputSchema,
  campaignWorkflowId,
  ZKP_REFUSAL,
  type CampaignConfig,
  type CampaignState,
} from '../../workflows/federation/definitions.js';
import type { AppDeps } from '../app.js';
import { conflict, HttpProblem, notFound, validate } from '../errors.js';
import { auditByCaller, principalOf, requireRole, type Principal } from '../principal.js';

const badRequest = (detail: string): HttpProblem => new HttpProblem(400, 'Bad Request', detail);

export const StartCampaignSchema = CampaignInputSchema.extend({
  /** false: record the campaign without its round loop; its rounds then come from schedules (POST /schedules). */
  run: z.boolean().default(true),
});

const duration = z.string().regex(/^\d+(s|m|h|d)$/, 'a duration such as 10s, 5m, 2h or 1d');
const ScheduleSpecSchema = z
  .strictObject({
    interval: duration.optional().meta({ description: 'run every interval (at least 1s)' }),
    cron: z.array(z.string().min(9).max(200)).min(1).max(10).optional(),
  })
  .refine((s) => Boolean(s.interval) !== Boolean(s.cron), 'give exactly one of interval and cron');
export const ScheduleInputSchema = z.strictObject({
  campaign_id: FederationIdSchema,
  name: FederationIdSchema.default('rounds'),
  spec: ScheduleSpecSchema,
  overlap: z.enum(['skip', 'buffer_one']).default('skip'),
  catchup_window: duration.default('1m'),
  paused: z.boolean().default(false),
  note: z.string().max(500).optional(),
});
export const ScheduleUpdateSchema = z.strictObject({
  spec: ScheduleSpecSchema.optional(),
  overlap: z.enum(['skip', 'buffer_one']).optional(),
  catchup_window: duration.optional(),
});
export const NoteSchema = z.strictObject({ note: z.string().max(500).optional() });
export const StopSchema = z.strictObject({ reason: z.string().max(500).optional() });
export const ParticipantPatchSchema = z.strictObject({ status: ParticipantStatusSchema });
const ScheduleIdSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,127}$/, 'a schedule id');

function ms(d: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(d)!;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's'];
}

const participantView = (p: Participant) => ({
  id: p.id,
  display_name: p.displayName,
  data_source: p.dataSource,
  status: p.status,
  queue: `agency-federation-${p.id}`,
  created_by: p.createdBy,
  created_at: p.createdAt,
});

/** Refusals that are the caller's to fix: 400 with the reason. */
function checkCampaign(body: z.output<typeof StartCampaignSchema>, found: (Participant | undefined)[]): void {
  if (body.require_zkp) throw new HttpProblem(400, 'Bad Request', ZKP_REFUSAL, { field: 'require_zkp' });
  if (body.mode === 'plaintext' && body.noise === 'distributed')
    throw badRequest(
      'noise: distributed needs mode: encrypted (in plaintext mode the aggregator checks every update’s norm, so the noise is added to the sum, by the aggregator)',
    );
  const unknown = body.participants.filter((_, i) => !found[i] || found[i].status !== 'active');
  if (unknown.length) throw badRequest(`unknown or inactive participant(s): ${unknown.join(', ')}`);
  if (new Set(body.participants).size !== body.participants.length) throw badRequest('participants: duplicates');
  if (body.min_participants > body.participants.length)
    throw badRequest(
      `min_participants ${body.min_participants} is more than the ${body.participants.length} participants`,
    );
  if (body.max_participants !== undefined && body.max_participants < body.min_participants)
    throw badRequest('max_participants is below min_participants');
}

export function federationRoutes({ db, temporal, config }: Pick<AppDeps, 'db' | 'temporal' | 'config'>): Router {
  const router = Router();
  const audit = (res: Response, action: string, subject: string, payload: Record<string, unknown>) =>
    auditByCaller(db, res, action, subject, payload);

  /** The campaign if the caller's tenant owns it or has a participant in it; `owner`: only if it owns it. */
  async function visibleCampaign(p: Principal, raw: string, { owner = false } = {}): Promise<Campaign> {
    const id = validate(FederationIdSchema, raw, 'params');
    const c = await getCampaign(db, id);
    if (c && c.tenantId === p.tenantId) return c;
    if (c && !owner && (await campaignMembers(db, id)).some((m) => m.tenantId === p.tenantId)) return c;
    if (c && owner && (await campaignMembers(db, id)).some((m) => m.tenantId === p.tenantId))
      throw new HttpProblem(403, 'Forbidden', 'only the campaign’s owner may do this');
    throw notFound(`no campaign ${id}`);
  }

  // ---- participants
  router.get('/api/v1/federation/participants', requireRole('viewer'), async (_req, res) => {
    res.json({ items: (await listParticipants(db, principalOf(res).tenantId)).map(participantView) });
  });
  router.post('/api/v1/federation/participants', requireRole('admin'), async (req, res) => {
    const body = validate(ParticipantInputSchema, req.body);
    const p = principalOf(res);
    const created = await insertParticipant(db, p.tenantId, p.subject, body);
    if (!created) throw conflict(`a participant with id ${body.id} already exists`);
    await audit(res, 'federation.participant_registered', created.id, { data_source: created.dataSource });
    res.status(201).location(`/api/v1/federation/participants/${created.id}`).json(participantView(created));
  });
  router.get('/api/v1/federation/participants/:id', requireRole('viewer'), async (req, res) => {
    const id = validate(FederationIdSchema, req.params.id, 'params');
    const found = await getParticipant(db, id);
    if (!found || found.tenantId !== principalOf(res).tenantId) throw notFound(`no participant ${id}`);
    res.json(participantView(found));
  });
  router.patch('/api/v1/federation/participants/:id', requireRole('admin'), async (req, res) => {
    const id = validate(FederationIdSchema, req.params.id, 'params');
    const { status } = validate(ParticipantPatchSchema, req.body);
    const updated = await setParticipantStatus(db, principalOf(res).tenantId, id, status);
    if (!updated) throw notFound(`no participant ${id}`);
    await audit(res, 'federation.participant_status', id, { status });
    res.json(participantView(updated));
  });

  // ---- budgets
  router.get('/api/v1/federation/budgets', requireRole('viewer'), async (_req, res) => {
    const b = await budgetView(db, principalOf(res).tenantId);
    res.json({ tenant: b.tenantId, epsilon: b.epsilon, delta: b.delta, spent_epsilon: b.spent, rounds: b.rounds });
  });
  router.put('/api/v1/federation/budgets', requireRole('admin'), async (req, res) => {
    const body = validate(BudgetInputSchema, req.body);
    const p = principalOf(res);
    await setBudget(db, p.tenantId, p.subject, body);
    await audit(res, 'federation.budget_set', p.tenantId, body);
    const b = await budgetView(db, p.tenantId);
    res.json({ tenant: b.tenantId, epsilon: b.epsilon, delta: b.delta, spent_epsilon: b.spent, rounds: b.rounds });
  });

  // ---- campaigns
  router.post('/api/v1/federation/campaigns', requireRole('operator'), async (req, res) => {
    const body = validate(StartCampaignSchema, req.body);
    const p = principalOf(res);
    const found = await Promise.all(body.participants.map((id) => getParticipant(db, id)));
    checkCampaign(body, found);
    const { run, ...rest } = body;
    const campaign: CampaignConfig = { ...rest, id: body.id ?? `fc-${randomUUID().slice(0, 12)}` };
    const created = await insertCampaign(
      db,
      { id: campaign.id, tenantId: p.tenantId, modelName: campaign.model_name, config: campaign, createdBy: p.subject },
      found as Participant[],
    );
    if (!created) throw conflict(`a campaign with id ${campaign.id} already exists`);
    if (run) await startCampaignWorkflow(temporal, config.TASK_QUEUE_PREFIX, p.tenantId, campaign);
    await audit(res, 'federation.campaign_started', campaign.id, {
      model: campaign.model_name,
      run,
      mode: campaign.mode,
    });
    res
      .status(201)
      .location(`/api/v1/federation/campaigns/${campaign.id}`)
      .json(await campaignView(campaign.id, p));
  });
  router.get('/api/v1/federation/campaigns', requireRole('viewer'), async (_req, res) => {
    const p = principalOf(res);
    const items = await campaignsVisibleTo(db, p.tenantId);
    res.json({
      items: items.map((c) => ({
        id: c.id,
        owner: c.tenantId,
        model_name: c.modelName,
        status: c.status,
        rounds_done: c.roundsDone,
      })),
    });
  });
  router.get('/api/v1/federation/campaigns/:id', requireRole('viewer'), async (req, res) => {
    const p = principalOf(res);
    const c = await visibleCampaign(p, String(req.params.id));
    res.json(await campaignView(c.id, p));
  });
  for (const action of ['pause', 'resume', 'stop'] as const) {
    router.post(`/api/v1/federation/campaigns/:id/${action}`, requireRole('operator'), async (req, res) => {
      const p = principalOf(res);
      const c = await visibleCampaign(p, String(req.params.id), { owner: true });
      const { reason } = validate(StopSchema, req.body);
      try {
        const handle = temporal.workflow.getHandle(campaignWorkflowId(c.id));
        if (action === 'stop') await handle.signal(action, reason ? { reason } : {});
        else await handle.signal(action);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        throw conflict(`campaign ${c.id} has no running round loop`);
      }
      if (action !== 'stop') await updateCampaign(db, c.id, { status: action === 'pause' ? 'paused' : 'running' });
      await audit(res, `federation.campaign_${action}`, c.id, reason ? { reason } : {});
      res.status(202).json(await campaignView(c.id, p));
    });
  }
  for (const decision of ['opt-in', 'withdraw'] as const) {
    router.post(
      `/api/v1/federation/campaigns/:id/participants/:participant/${decision}`,
      requireRole('admin'),
      async (req, res) => {
        const p = principalOf(res);
        const c = await visibleCampaign(p, String(req.params.id));
        const participant = validate(FederationIdSchema, req.params.participant, 'params');
        const status = decision === 'opt-in' ? 'opted_in' : 'withdrawn';
        const m = await decideMembership(db, c.id, participant, p.tenantId, p.subject, status);
        if (!m) throw notFound(`participant ${participant} of your tenant is not invited to campaign ${c.id}`);
        await audit(res, `federation.participant_${status}`, `${c.id}/${participant}`, { owner: c.tenantId });
        res.json({ campaign: c.id, participant, status: m.status });
      },
    );
  }

  /** Campaign, members (another tenant sees only its own), per-round metrics, and the live status when running. */
  async function campaignView(id: string, p: Principal) {
    const c = (await getCampaign(db, id))!;
    const owner = c.tenantId === p.tenantId;
    const members = (await campaignMembers(db, id)).filter((m) => owner || m.tenantId === p.tenantId);
    const ownIds = new Set(members.map((m) => m.participantId));
    const visible = (ids: string[]) => (owner ? ids : ids.filter((x) => ownIds.has(x)));
    const rounds = (await listRounds(db, id)).map((r) => {
      const m = (r.metrics ?? {}) as { rejected?: { participantId: string }[]; missing?: string[] };
      return {
        round: r.round,
        status: r.status,
        reason: r.reason,
        candidates: r.candidates.length,
        selected: visible(r.selected),
        selected_count: r.selected.length,
        sampling: r.sampling,
        q: r.q,
        accounted_q: r.accountedQ,
        contributors: r.contributors,
        model: r.model,
        metrics: r.metrics
          ? {
              ...r.metrics,
              rejected: (m.rejected ?? []).filter((x) => owner || ownIds.has(x.participantId)),
              missing: visible(m.missing ?? []),
            }
          : null,
      };
    });
    const { participants: _all, ...publicConfig } = c.config as CampaignConfig;
    return {
      id: c.id,
      owner: c.tenantId,
      model_name: c.modelName,
      status: c.status,
      reason: c.reason,
      config: owner ? c.config : publicConfig,
      participants: members.map((m) => ({ id: m.participantId, tenant: m.tenantId, status: m.status })),
      rounds_done: c.roundsDone,
      model: c.model,
      result: c.result,
      rounds,
      live: await liveStatus(temporal, c.id),
    };
  }

  // ---- schedules (Temporal Schedules; each run is federationScheduledRoundWorkflow on the campaign)
  const prefix = config.TASK_QUEUE_PREFIX;
  const fullId = (id: string) => `${prefix}${id}`;

  async function ownedSchedule(p: Principal, raw: string) {
    const id = validate(ScheduleIdSchema, raw, 'params');
    const handle = temporal.schedule.getHandle(fullId(id));
    try {
      const d = await handle.describe();
      if (d.memo?.tenantId === p.tenantId && d.memo?.kind === 'federation') return { id, handle, d };
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
    throw notFound(`no schedule ${id}`);
  }

  router.post('/api/v1/federation/schedules', requireRole('operator'), async (req, res) => {
    const body = validate(ScheduleInputSchema, req.body);
    const p = principalOf(res);
    const c = await visibleCampaign(p, body.campaign_id, { owner: true });
    if (body.spec.interval && ms(body.spec.interval) < 1000) throw badRequest('spec.interval: at least 1s');
    const id = `federation-${c.id}-${body.name}`;
    try {
      await temporal.schedule.create({
        scheduleId: fullId(id),
        spec: body.spec.interval
          ? { intervals: [{ every: ms(body.spec.interval) }] }
          : { cronExpressions: body.spec.cron! },
        action: {
          type: 'startWorkflow',
          workflowType: 'federationScheduledRoundWorkflow',
          workflowId: fullId(id), // the server appends the scheduled time
          taskQueue: queueFor('orchestration', prefix),
          args: [{ campaignId: c.id }],
          memo: { tenantId: p.tenantId },
          typedSearchAttributes: [{ key: ModelKey, value: c.modelName }],
        },
        policies: { overlap: overlapOf(body.overlap), catchupWindow: ms(body.catchup_window) },
        state: { paused: body.paused, ...(body.note ? { note: body.note } : {}) },
        memo: { tenantId: p.tenantId, kind: 'federation', campaignId: c.id },
      });
    } catch (err) {
      if ((err as Error).name === 'ScheduleAlreadyRunning') throw conflict(`schedule ${id} already exists`);
      throw err;
    }
    await audit(res, 'federation.schedule_created', id, { campaign: c.id, spec: body.spec, overlap: body.overlap });
    const { d } = await ownedSchedule(p, id);
    res.status(201).location(`/api/v1/federation/schedules/${id}`).json(scheduleView(id, d));
  });
  router.get('/api/v1/federation/schedules', requireRole('viewer'), async (_req, res) => {
    const p = principalOf(res);
    const items: { id: string; campaign: unknown; paused: boolean | undefined; note: string | undefined }[] = [];
    for await (const s of temporal.schedule.list()) {
      if (!s.scheduleId.startsWith(`${prefix}federation-`) || s.memo?.tenantId !== p.tenantId) continue;
      items.push({
        id: s.scheduleId.slice(prefix.length),
        campaign: s.memo?.campaignId,
        paused: s.state.paused,
        note: s.state.note,
      });
    }
    res.json({ items });
  });
  router.get('/api/v1/federation/schedules/:id', requireRole('viewer'), async (req, res) => {
    const { id, d } = await ownedSchedule(principalOf(res), String(req.params.id));
    res.json(scheduleView(id, d));
  });
  router.post('/api/v1/federation/schedules/:id/pause', requireRole('operator'), async (req, res) => {
    const { id, handle } = await ownedSchedule(principalOf(res), String(req.params.id));
    const { note } = validate(NoteSchema, req.body);
    await handle.pause(note ?? 'paused through the API');
    await audit(res, 'federation.schedule_paused', id, { note: note ?? null });
    res.json(scheduleView(id, await handle.describe()));
  });
  router.post('/api/v1/federation/schedules/:id/resume', requireRole('operator'), async (req, res) => {
    const { id, handle } = await ownedSchedule(principalOf(res), String(req.params.id));
    const { note } = validate(NoteSchema, req.body);
    await handle.unpause(note ?? 'resumed through the API');
    await audit(res, 'federation.schedule_resumed', id, { note: note ?? null });
    res.json(scheduleView(id, await handle.describe()));
  });
  router.post('/api/v1/federation/schedules/:id/trigger', requireRole('operator'), async (req, res) => {
    const { id, handle } = await ownedSchedule(principalOf(res), String(req.params.id));
    await handle.trigger();
    await audit(res, 'federation.schedule_triggered', id, {});
    res.status(202).json(scheduleView(id, await handle.describe()));
  });
  router.patch('/api/v1/federation/schedules/:id', requireRole('operator'), async (req, res) => {
    const { id, handle } = await ownedSchedule(principalOf(res), String(req.params.id));
    const body = validate(ScheduleUpdateSchema, req.body);
    if (body.spec?.interval && ms(body.spec.interval) < 1000) throw badRequest('spec.interval: at least 1s');
    await handle.update((prev) => ({
      ...prev,
      ...(body.spec
        ? {
            spec: body.spec.interval
              ? { intervals: [{ every: ms(body.spec.interval) }] }
              : { cronExpressions: body.spec.cron! },
          }
        : {}),
      policies: {
        ...prev.policies,
        ...(body.overlap ? { overlap: overlapOf(body.overlap) } : {}),
        ...(body.catchup_window ? { catchupWindow: ms(body.catchup_window) } : {}),
      },
    }));
    await audit(res, 'federation.schedule_updated', id, body);
    res.json(scheduleView(id, await handle.describe()));
  });
  router.delete('/api/v1/federation/schedules/:id', requireRole('operator'), async (req, res) => {
    const { id, handle } = await ownedSchedule(principalOf(res), String(req.params.id));
    await handle.delete();
    await audit(res, 'federation.schedule_deleted', id, {});
    res.status(204).end();
  });

  return router;
}

function overlapOf(o: 'skip' | 'buffer_one'): ScheduleOverlapPolicy {
  return o === 'skip' ? ScheduleOverlapPolicy.SKIP : ScheduleOverlapPolicy.BUFFER_ONE;
}

type ScheduleDescription = Awaited<ReturnType<ReturnType<Client['schedule']['getHandle']>['describe']>>;

function scheduleView(id: string, d: ScheduleDescription) {
  return {
    id,
    campaign: d.memo?.campaignId,
    spec: {
      intervals: d.spec.intervals?.map((i) => ({ every_ms: Number(i.every) })) ?? [],
      calendars: d.spec.calendars?.length ?? 0,
    },
    overlap: d.policies.overlap === ScheduleOverlapPolicy.BUFFER_ONE ? 'buffer_one' : 'skip',
    catchup_window_ms: Number(d.policies.catchupWindow),
    paused: d.state.paused,
    note: d.state.note ?? null,
    actions: d.info.numActionsTaken,
    recent: d.info.recentActions.map((a) => ({
      scheduled_at: a.scheduledAt,
      workflow_id: a.action.type === 'startWorkflow' ? a.action.workflow.workflowId : undefined,
    })),
    next: d.info.nextActionTimes.slice(0, 3),
  };
}

async function startCampaignWorkflow(temporal: Client, prefix: string, tenantId: string, c: CampaignConfig) {
  const state: CampaignState = { campaignId: c.id, config: c, round: 1, status: 'running', history: [] };
  await temporal.workflow.start('federationCampaignWorkflow', {
    taskQueue: queueFor('orchestration', prefix),
    workflowId: campaignWorkflowId(c.id),
    args: [state],
    memo: { tenantId },
    typedSearchAttributes: [{ key: ModelKey, value: c.model_name }],
  });
}

async function liveStatus(temporal: Client, campaignId: string): Promise<unknown> {
  try {
    return await temporal.workflow.getHandle(campaignWorkflowId(campaignId)).query('status');
  } catch {
    return null; // no loop (schedule-driven), or ended: the records above are the status
  }
}
