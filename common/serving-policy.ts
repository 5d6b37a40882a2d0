/**
 * How a model version is served (registry `settings.serving`, activities/inference/serving/batcher.ts): batch size,
 * batching wait and concurrency. Workflow-safe (zod only): the registry and the tuning workflow both read it.
 */
import { z } from 'zod';

export const ServingPolicySchema = z
  .object({
    maxBatchSize: z.number().int().min(1).max(4096),
    maxWaitMs: z.number().min(0).max(10_000),
    concurrency: z.number().int().min(1).max(256),
  })
  .strict();
export type ServingPolicy = z.infer<typeof ServingPolicySchema>;
