/**
 * systemCheck — proves every worker pool is polling and its native dependencies work, by running one small
 * activity on each pool in parallel.
 *
 * Activities: inferenceSelfCheck on agency-inference (ONNX Runtime in a worker thread)
 *             federationSelfCheck on agency-federation (CKKS encrypt/add/decrypt with node-seal)
 */
import type { FederationActivities } from '../../activities/federation/index.js';
import type { InferenceActivities } from '../../activities/inference/index.js';
import { proxyOn } from '../proxy.js';

export interface SystemCheckResult {
  inference: { ok: boolean; backends: string[] };
  federation: { ok: boolean; maxError: number; polyModulusDegree: number };
}

export async function systemCheckWorkflow(): Promise<SystemCheckResult> {
  // A self-check should answer fast or say the pool is missing: no long retries.
  const options = { scheduleToCloseTimeout: '2 minutes', retry: { maximumAttempts: 3 } } as const;
  const inference = proxyOn<InferenceActivities>('inference', options);
  const federation = proxyOn<FederationActivities>('federation', options);
  const [inf, fed] = await Promise.all([inference.inferenceSelfCheck(), federation.federationSelfCheck()]);
  return { inference: inf, federation: fed };
}
