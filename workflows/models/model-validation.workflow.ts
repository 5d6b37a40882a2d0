/**
 * modelValidationWorkflow — validates one registered model version (the API's POST …/versions/:version/validate, or
 * ?validate=true on upload): the version is loaded in ONNX Runtime on the inference pool, its signature compared with
 * the active version's, a golden input set run, its latency bounded; the registry records validated or rejected with
 * the report (activities/inference/validation.ts). Workflow id: modelValidationWorkflowId(tenant, name, version).
 *
 * Activities: validateModelVersion on agency-inference
 */
import type { ValidateInput, ValidationActivities, ValidationResult } from '../../activities/inference/validation.js';
import { proxyOn } from '../proxy.js';

export function modelValidationWorkflowId(tenantId: string, name: string, version: string): string {
  return `model-validate-${tenantId}-${name}-${version}`;
}

export async function modelValidationWorkflow(input: ValidateInput): Promise<ValidationResult> {
  const { validateModelVersion } = proxyOn<ValidationActivities>('inference', {
    // Loading a large model and its timed runs take seconds to minutes; a retry re-runs nothing already recorded.
    startToCloseTimeout: '10 minutes',
    retry: { maximumAttempts: 3, nonRetryableErrorTypes: ['ModelNotFound', 'ModelTransition'] },
  });
  return validateModelVersion(input);
}
