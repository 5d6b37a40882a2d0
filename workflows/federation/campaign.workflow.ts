/**
 * federationCampaignWorkflow: rounds of federatedRoundWorkflow (children) until the target accuracy, the round limit,
 * or a privacy budget ends it; continue-as-new after every round, so the history stays one round long. Query `status`;
 * signals `pause`, `resume`, `stop` (a stop waits for the running round). Search attributes AgencyModel and AgencyRound
 * let the Web UI filter campaigns.
 */
import {
  ApplicationFailure,
  ChildWorkflowFailure,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  executeChild,
  setHandler,
  upsertSearchAttributes,
  type ActivityInterfaceFor,
} from '@temporalio/workflow';
import type { DecryptorActivities } from '../../activities/federation/decryptor.js';
import type { RoundActivities } from '../../activities/federation/round.js';
import { ModelKey, RoundKey } from '../../temporal/search-attributes.js';
import { proxyOn } from '../proxy.js';
import { roundWorkflowId, type CampaignState, type CampaignStatus, type RoundMetrics } from './definitions.js';
import { federatedRoundWorkflow } from './round.workflow.js';

export const statusQuery = defineQuery<CampaignStatus>('status');
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const stopSignal = defineSignal<[{ reason?: string }?]>('stop');

// Built inside the workflow (proxyOn reads workflowInfo()), never at import.
const round = (): ActivityInterfaceFor<RoundActivities> =>
  proxyOn<RoundActivities>('federation', {
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumAttempts: 5 },
  });
const decryptor = (): ActivityInterfaceFor<DecryptorActivities> =>
  proxyOn<DecryptorActivities>('decryptor', {
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumAttempts: 5 },
  });

/** Consecutive failed rounds (too few answered, all rejected) after which the campaign gives up. */
const MAX_FAILED_IN_A_ROW = 3;
/** Round metrics kept in the workflow's state for the status query (all of them are in PostgreSQL). */
const HISTORY_KEPT = 100;

function statusOf(s: CampaignState): CampaignStatus {
  const epsilon = s.history.at(-1)?.epsilon ?? {};
  return {
    campaignId: s.campaignId,
    status: s.status,
    round: s.round,
    participants: s.config.participants.length,
    accuracy: s.history.filter((h) => h.contributors > 0).map((h) => ({ round: h.round, accuracy: h.accuracy })),
    epsilon,
    ...(s.reason ? { reason: s.reason } : {}),
  };
}

function handleSignals(s: CampaignState): void {
  setHandler(statusQuery, () => statusOf(s));
  setHandler(pauseSignal, () => void (s.status === 'running' && (s.status = 'paused')));
  setHandler(resumeSignal, () => void (s.status === 'paused' && (s.status = 'running')));
  setHandler(stopSignal, (arg) => {
    s.status = 'stopping';
    s.reason = arg?.reason ?? 'stopped on request';
  });
}

export async function setUp(s: CampaignState): Promise<void> {
  await round().federationInitModel({ campaignId: s.campaignId, config: s.config });
  if (s.config.mode === 'encrypted' && !s.publicKey)
    s.publicKey = await decryptor().federationCreateKeys({ campaignId: s.campaignId });
}

async function finish(
  s: CampaignState,
  status: 'completed' | 'stopped' | 'failed',
  reason: string,
): Promise<CampaignStatus> {
  s.status = status;
  s.reason = reason;
  await round().federationFinishCampaign({
    campaignId: s.campaignId,
    config: s.config,
    status,
    reason,
    history: s.history,
  });
  return statusOf(s);
}

/** Runs round s.round; the failure kind when it failed. */
async function runRound(
  s: CampaignState,
): Promise<{ metrics?: RoundMetrics; failure?: { type: string; reason: string } }> {
  try {
    const metrics = await executeChild(federatedRoundWorkflow, {
      args: [{ campaignId: s.campaignId, round: s.round, config: s.config }],
      workflowId: roundWorkflowId(s.campaignId, s.round),
    });
    return { metrics };
  } catch (err) {
    const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
    const type = cause instanceof ApplicationFailure ? (cause.type ?? 'RoundFailed') : 'RoundFailed';
    return { failure: { type, reason: cause instanceof Error ? cause.message : String(cause) } };
  }
}

export async function federationCampaignWorkflow(s: CampaignState): Promise<CampaignStatus> {
  handleSignals(s);
  upsertSearchAttributes([
    { key: ModelKey, value: s.config.model_name },
    { key: RoundKey, value: s.round },
  ]);
  if (s.round === 1 && s.history.length === 0) await setUp(s);
  if (s.status === 'paused') await round().federationSetStatus({ campaignId: s.campaignId, status: 'paused' });
  await condition(() => s.status !== 'paused');
  if (s.status === 'stopping') return finish(s, 'stopped', s.reason ?? 'stopped on request');
  await round().federationSetStatus({ campaignId: s.campaignId, status: 'running' });
  const { metrics, failure } = await runRound(s);
  if (failure?.type === 'BudgetExceeded') return finish(s, 'completed', `privacy budget: ${failure.reason}`);
  s.history = [...s.history, metrics ?? failedRound(s.round, failure!.reason)].slice(-HISTORY_KEPT);
  const failedInARow = s.history.slice(-MAX_FAILED_IN_A_ROW).filter((h) => h.contributors === 0).length;
  if (failure && failedInARow >= MAX_FAILED_IN_A_ROW)
    return finish(s, 'failed', `${MAX_FAILED_IN_A_ROW} rounds in a row failed; last: ${failure.reason}`);
  if (metrics && s.config.target_accuracy !== undefined && metrics.accuracy >= s.config.target_accuracy)
    return finish(s, 'completed', `target accuracy ${s.config.target_accuracy} reached`);
  if (s.round >= s.config.rounds) return finish(s, 'completed', `round limit ${s.config.rounds} reached`);
  if ((s.status as CampaignState['status']) === 'stopping')
    return finish(s, 'stopped', s.reason ?? 'stopped on request');
  return continueAsNew<typeof federationCampaignWorkflow>({ ...s, round: s.round + 1 });
}

function failedRound(round: number, reason: string): RoundMetrics {
  return {
    round,
    selected: 0,
    answered: 0,
    contributors: 0,
    rejected: [],
    missing: [],
    accuracy: 0,
    loss: 0,
    testSamples: 0,
    epsilon: {},
    sampling: 'full',
    accountedQ: 1,
    failure: reason,
  };
}
