/**
 * Activities of the inference pool (queue agency-inference). ONNX sessions run in a worker thread (ort.ts,
 * ort-thread.mjs).
 * Today: a self-check that ONNX Runtime loads in that thread. Serving, canary routing and tuning trials arrive here.
 */
import type { OrtThread } from './ort.js';

export { OrtThread } from './ort.js';

export function createInferenceActivities(ort: OrtThread) {
  return {
    async inferenceSelfCheck(): Promise<{ ok: boolean; backends: string[] }> {
      const { backends } = await ort.call<{ backends: string[] }>('describe');
      return { ok: backends.includes('cpu'), backends };
    },
  };
}

export type InferenceActivities = ReturnType<typeof createInferenceActivities>;
