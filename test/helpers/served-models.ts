/**
 * Models for the serving and rollout tests: built with the project's ONNX builder (common/onnx/builder.ts), stored
 * in the blob store, registered in the registry and marked validated, as the validation activity would.
 * `labelOf` is the good model's answer (the tests' ground truth for labelled traffic).
 */
import { blobStoreOf } from '../../common/blob-store/index.js';
import type { Db } from '../../common/db.js';
import { registerModelVersion, setVersionStatus, type ServingPolicy } from '../../common/models.js';
import {
  buildCanaryOnnx,
  buildMlpOnnx,
  forwardMlp,
  randomMlp,
  type CanaryDefect,
  type MlpGraph,
} from '../../common/onnx/builder.js';

export const WIDTH = 8;
export const CLASSES = 4;
export const GOOD: MlpGraph = randomMlp([WIDTH, 16, CLASSES], 17, { output: 'softmax' });

export type Flavour = 'good' | CanaryDefect;

export function modelBytes(flavour: Flavour): Uint8Array {
  return flavour === 'good' ? buildMlpOnnx(GOOD) : buildCanaryOnnx(GOOD, flavour);
}

/** Registers `version` of `name` (tenant `default`) and marks it validated. */
export async function registerServed(
  db: Db,
  name: string,
  version: string,
  flavour: Flavour = 'good',
  serving: ServingPolicy = { maxBatchSize: 16, maxWaitMs: 1, concurrency: 2 },
): Promise<void> {
  const artifact = await blobStoreOf(db).put('default', modelBytes(flavour), { mediaType: 'application/onnx' });
  await registerModelVersion(db, {
    tenantId: 'default',
    name,
    version,
    artifact,
    provenance: { by: { kind: 'person', principal: 'user:test' }, data: { flavour: JSON.stringify(flavour) } },
    // One ONNX Runtime thread per session: two cores shared by the baseline's and the canary's sessions.
    settings: { serving, session: { intraOpNumThreads: 1, interOpNumThreads: 1 } },
    createdBy: 'user:test',
  });
  await setVersionStatus(db, 'default', name, version, {
    to: 'validated',
    evidence: { test: true },
    actor: 'user:test',
  });
}

/** A deterministic input row for request i. */
export function inputRow(i: number): number[] {
  return Array.from({ length: WIDTH }, (_, j) => Math.sin(i * 7.3 + j * 1.7) * 2);
}

/** The good model's class for an input row. */
export function labelOf(row: number[]): number {
  const out = forwardMlp(GOOD, Float32Array.from(row), 1);
  let best = 0;
  for (let k = 1; k < out.length; k++) if (out[k]! > out[best]!) best = k;
  return best;
}
