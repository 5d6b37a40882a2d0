/**
 * ONNX Runtime session settings a model version carries (registry `settings.session`), applied when a worker thread
 * loads it (activities/inference/ort-thread.mjs) and chosen by the tuning workflow. A subset of onnxruntime-node's
 * SessionOptions, plus free-form session config entries such as 'session.intra_op.allow_spinning': '0'.
 *
 *   SessionSettings { intraOpNumThreads?; interOpNumThreads?; executionMode?: 'sequential' | 'parallel';
 *     graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all'; enableCpuMemArena?; enableMemPattern?;
 *     configEntries?: Record<string, string> }
 */
import { z } from 'zod';

export const SessionSettingsSchema = z
  .object({
    intraOpNumThreads: z.number().int().min(0).max(256).optional(),
    interOpNumThreads: z.number().int().min(0).max(256).optional(),
    executionMode: z.enum(['sequential', 'parallel']).optional(),
    graphOptimizationLevel: z.enum(['disabled', 'basic', 'extended', 'all']).optional(),
    enableCpuMemArena: z.boolean().optional(),
    enableMemPattern: z.boolean().optional(),
    /** Keys as ONNX Runtime spells them (onnxruntime_session_options_config_keys.h), values strings. */
    configEntries: z.record(z.string().regex(/^[a-z0-9_]+(\.[a-z0-9_]+)+$/), z.string()).optional(),
  })
  .strict();
export type SessionSettings = z.infer<typeof SessionSettingsSchema>;
