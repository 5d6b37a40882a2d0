/**
 * federationScheduledRoundWorkflow: what a Temporal Schedule of a campaign starts (api/routes/federation.ts): set the
 * campaign up if needed (model, keys), then run its next round as a child. The schedule's overlap policy (skip, or
 * buffer one) keeps two rounds of one campaign from running at once.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import type { RoundActivities } from '../../activities/federation/round.js';
import { proxyOn } from '../proxy.js';
import { executeChild, upsertSearchAttributes, type ActivityInterfaceFor } from '@temporalio/workflow';
import { ModelKey, RoundKey } from '../../temporal/search-attributes.js';
import { setUp } from './campaign.workflow.js';
import { roundWorkflowId, type RoundMetrics } from './definitions.js';
import { federatedRoundWorkflow } from './round.workflow.js';

// Built inside the workflow (proxyOn reads workflowInfo()), never at import.
const round = (): ActivityInterfaceFor<RoundActivities> =>
  proxyOn<RoundActivities>('federation', {
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumAttempts: 5 },
  });

export async function federationScheduledRoundWorkflow(input: {
  campaignId: string;
}): Promise<RoundMetrics | { ended: string }> {
  const next = await round().federationNextRound(input);
  if ('ended' in next) return next;
  upsertSearchAttributes([
    { key: ModelKey, value: next.config.model_name },
    { key: RoundKey, value: next.round },
  ]);
  await setUp({
    campaignId: input.campaignId,
    config: next.config,
    round: next.round,
    status: 'running',
    history: [],
    ...(next.publicKey ? { publicKey: next.publicKey } : {}),
  });
  try {
    return await executeChild(federatedRoundWorkflow, {
      args: [{ campaignId: input.campaignId, round: next.round, config: next.config }],
      workflowId: roundWorkflowId(input.campaignId, next.round),
    });
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`round ${next.round} failed: ${(err as Error).message}`, 'RoundFailed');
  }
}
