/**
 * validateModelVersion, an activity of the inference pool: may this registered version serve?
 *
 *   1. The ONNX file streams from the blob store to a temporary file (never whole in memory, never through Temporal)
 *      and ONNX Runtime loads it from there, in the worker thread (ort.ts), with the version's session settings.
 *      A file that fails to load is not validated.
 *   2. Its signature (as ORT reports it) is compared with the active version's (common/onnx/signature.ts): any
 *      difference rejects it, named ("input 'input' dim 1 is [batch, 5], the active version [batch, 4]").
 *   3. A golden input set runs: the caller's rows, or `rows` seeded rows in [0, 1) per float32 input. Outputs must be
 *      finite (NaN/Infinity → not validated) and, when the caller gives expected outputs, within `tolerance`.
 *      The report records a digest of all outputs and the first rows.
 *   4. Latency: `runs` single-row runs after a warm-up, timed inside the thread; p95 above `latencyBoundMs` → not
 *      validated.
 * The outcome goes to the registry (recordValidation: registered|validated → validated with the signature, or →
 * rejected, the report as evidence) and is returned. Idempotent: a version already validated or rejected returns its
 * stored report unless `force` (a re-validation of a validated version against a newer active one).
 *
 *   validateModelVersion(input: ValidateInput): Promise<ValidationResult>
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/activity';
import { blobStoreOf } from '../../common/blob-store/index.js';
import type { Db } from '../../common/db.js';
import { activeVersion, getModelVersion, recordValidation, type ModelVersion } from '../../common/models.js';
import { signatureDifferences, type ModelSignature, type TensorSpec } from '../../common/onnx/signature.js';
import { floatTensor, rows as toRows, type OrtThread, type TensorData } from './ort.js';

export interface ValidateInput {
  tenantId: string;
  name: string;
  version: string;
  /** Golden rows per input name (each row flattened, without the batch dim); default: seeded rows. */
  golden?: { inputs: Record<string, number[][]>; expected?: Record<string, number[][]>; tolerance?: number };
  /** Seeded golden rows when `golden` is not given (default 16). */
  rows?: number;
  /** Timed single-row runs (default 20) and the p95 bound (default 100 ms). */
  runs?: number;
  latencyBoundMs?: number;
  /** Validate again a version already validated (e.g. against a newer active version). */
  force?: boolean;
  /** Who asks, for the evidence (a workflow id; default worker:inference). */
  actor?: string;
}

/** A type alias, not an interface: it must fit ValidationReport's index signature to be stored as the report. */
export type ValidationOutcome = {
  passed: boolean;
  reasons: string[];
  signature: ModelSignature | null;
  against: string | null;
  differences: string[];
  golden?: { rows: number; outputsSha256: string; sample: Record<string, number[][]>; maxAbsDiff?: number };
  latency?: { runs: number; p50Ms: number; p95Ms: number; boundMs: number; loadMs: number };
};
export type ValidationResult = ValidationOutcome & { status: ModelVersion['status'] };

/** Fixed dims stay; symbolic ones are the batch (the first) or 1. */
function rowWidth(spec: TensorSpec): number {
  return spec.shape.slice(1).reduce<number>((w, d) => w * (typeof d === 'number' ? d : 1), 1);
}

function seededRows(count: number, width: number, seed: number): number[][] {
  let s = seed >>> 0 || 1;
  const next = () => (s = (Math.imul(s, 48271) >>> 0) % 2147483647) / 2147483647;
  return Array.from({ length: count }, () => Array.from({ length: width }, next));
}

function feedsOf(signature: ModelSignature, inputs: Record<string, number[][]>, from: number, count: number) {
  const feeds: Record<string, TensorData> = {};
  for (const spec of signature.inputs) {
    const width = rowWidth(spec);
    const rows = inputs[spec.name]!.slice(from, from + count);
    const dims = [rows.length, ...spec.shape.slice(1).map((d) => (typeof d === 'number' ? d : 1))];
    feeds[spec.name] = floatTensor(Float32Array.from(rows.flat()), width === 0 ? [rows.length] : dims);
  }
  return feeds;
}

const quantile = (sorted: number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;

/** Streams the blob to a temporary file that ORT loads by path; removed by the caller. */
async function artifactFile(db: Db, v: ModelVersion): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'agency-validate-'));
  const file = path.join(dir, `${v.artifact.sha256}.onnx`);
  await pipeline(await blobStoreOf(db).get(v.tenantId, v.artifact.sha256), createWriteStream(file));
  return { dir, file };
}

export function createValidationActivities({ db, ort }: { db: Db; ort: OrtThread }) {
  async function evaluate(v: ModelVersion, input: ValidateInput): Promise<ValidationOutcome> {
    const reasons: string[] = [];
    const active = await activeVersion(db, v.tenantId, v.name);
    const against = active && active.version !== v.version ? active : undefined;
    const base = { against: against?.version ?? null, differences: [] as string[], signature: null };
    const key = `validate:${v.tenantId}/${v.name}@${v.version}:${randomUUID()}`;
    const { dir, file } = await artifactFile(db, v);
    try {
      let loaded;
      try {
        loaded = await ort.load({ key, path: file, ...(v.settings.session ? { settings: v.settings.session } : {}) });
      } catch (err) {
        return { ...base, passed: false, reasons: [`ONNX Runtime cannot load it: ${(err as Error).message}`] };
      }
      const signature = loaded.signature;
      const differences = against?.signature ? signatureDifferences(against.signature, signature) : [];
      if (differences.length > 0) {
        reasons.push(`incompatible with the active version ${against!.version}: ${differences.join('; ')}`);
        return { ...base, signature, differences, passed: false, reasons };
      }
      const untyped = signature.inputs.filter((s) => s.type !== 'float32');
      if (untyped.length > 0 && !input.golden) {
        reasons.push(
          `golden inputs are generated for float32 inputs only; give golden rows for ${untyped.map((s) => s.name).join(', ')}`,
        );
        return { ...base, signature, differences, passed: false, reasons };
      }
      const inputs =
        input.golden?.inputs ??
        Object.fromEntries(signature.inputs.map((s, i) => [s.name, seededRows(input.rows ?? 16, rowWidth(s), 7 + i)]));
      const missing = signature.inputs.filter((s) => !inputs[s.name]);
      if (missing.length > 0) {
        reasons.push(`the golden set has no rows for input ${missing.map((s) => s.name).join(', ')}`);
        return { ...base, signature, differences, passed: false, reasons };
      }
      const count = Math.min(...signature.inputs.map((s) => inputs[s.name]!.length));

      // The golden batch: all rows at once.
      let outputs: Record<string, TensorData>;
      try {
        outputs = (await ort.run({ key, feeds: feedsOf(signature, inputs, 0, count) })).outputs;
      } catch (err) {
        reasons.push(`the golden batch failed to run: ${(err as Error).message}`);
        return { ...base, signature, differences, passed: false, reasons };
      }
      const digest = createHash('sha256');
      const sample: Record<string, number[][]> = {};
      let maxAbsDiff: number | undefined;
      for (const [name, t] of Object.entries(outputs)) {
        const values = Array.from(t.data, Number);
        const bad = values.filter((x) => !Number.isFinite(x)).length;
        if (bad > 0) reasons.push(`output '${name}' has ${bad} NaN or infinite values of ${values.length}`);
        digest.update(name).update(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
        const asRows = toRows(t);
        sample[name] = asRows.slice(0, 2);
        const expected = input.golden?.expected?.[name];
        if (expected) {
          const diff = Math.max(
            ...expected.flatMap((row, r) => row.map((x, c) => Math.abs(x - (asRows[r]?.[c] ?? NaN)))),
          );
          maxAbsDiff = Math.max(maxAbsDiff ?? 0, Number.isNaN(diff) ? Infinity : diff);
        }
      }
      const tolerance = input.golden?.tolerance ?? 1e-4;
      if (maxAbsDiff !== undefined && !(maxAbsDiff <= tolerance))
        reasons.push(`the outputs differ from the golden outputs by up to ${maxAbsDiff} (tolerance ${tolerance})`);
      const golden = {
        rows: count,
        outputsSha256: digest.digest('hex'),
        sample,
        ...(maxAbsDiff !== undefined ? { maxAbsDiff } : {}),
      };

      // Latency: one warm-up, then timed single-row runs (cycling through the golden rows).
      const runs = input.runs ?? 20;
      const boundMs = input.latencyBoundMs ?? 100;
      const times: number[] = [];
      try {
        await ort.run({ key, feeds: feedsOf(signature, inputs, 0, 1) });
        for (let i = 0; i < runs; i++)
          times.push((await ort.run({ key, feeds: feedsOf(signature, inputs, i % count, 1) })).runMs);
      } catch (err) {
        reasons.push(`a single-row run failed: ${(err as Error).message}`);
      }
      times.sort((a, b) => a - b);
      const latency = {
        runs: times.length,
        p50Ms: quantile(times, 0.5),
        p95Ms: quantile(times, 0.95),
        boundMs,
        loadMs: loaded.loadMs,
      };
      if (latency.p95Ms > boundMs)
        reasons.push(`p95 latency ${latency.p95Ms.toFixed(2)} ms exceeds the bound of ${boundMs} ms`);
      return { ...base, signature, differences, golden, latency, passed: reasons.length === 0, reasons };
    } finally {
      await ort.release({ key }).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  }

  return {
    async validateModelVersion(input: ValidateInput): Promise<ValidationResult> {
      const v = await getModelVersion(db, input.tenantId, input.name, input.version);
      if (!v)
        throw ApplicationFailure.nonRetryable(`no version ${input.version} of model ${input.name}`, 'ModelNotFound');
      const done = v.status === 'rejected' || (v.status === 'validated' && !input.force);
      if (done && v.validation) return { ...(v.validation as ValidationOutcome), status: v.status };
      if (v.status !== 'registered' && v.status !== 'validated') {
        throw ApplicationFailure.nonRetryable(
          `${v.name} ${v.version} is ${v.status}; only registered or validated versions are validated`,
          'ModelTransition',
        );
      }
      const result = await evaluate(v, input);
      const recorded = await recordValidation(db, v.tenantId, v.name, v.version, {
        report: result,
        ...(result.signature ? { signature: result.signature } : {}),
        actor: input.actor ?? 'worker:inference',
      });
      return { ...result, status: recorded.status };
    },
  };
}

export type ValidationActivities = ReturnType<typeof createValidationActivities>;
