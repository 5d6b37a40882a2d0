/**
 * A model's input/output signature — names, element types, shapes — as ONNX Runtime reports it after loading, and the
 * compatibility rule between two versions of one model. Stored with each registry version (common/models.ts) and
 * compared by the validation activity (activities/inference/validation.ts).
 *
 *   TensorSpec { name; type ('float32', 'int64', …); shape: (number | string)[] — a string is a symbolic dim }
 *   ModelSignature { inputs: TensorSpec[]; outputs: TensorSpec[] }
 *   signatureDifferences(active, candidate): string[]   empty = compatible; otherwise one sentence per difference
 */
import { z } from 'zod';

export const TensorSpecSchema = z
  .object({
    name: z.string().min(1),
    type: z.string().min(1),
    shape: z.array(z.union([z.number().int(), z.string()])),
  })
  .strict();
export type TensorSpec = z.infer<typeof TensorSpecSchema>;

export const ModelSignatureSchema = z
  .object({ inputs: z.array(TensorSpecSchema), outputs: z.array(TensorSpecSchema) })
  .strict();
export type ModelSignature = z.infer<typeof ModelSignatureSchema>;

/**
 * A candidate is compatible when callers of the active version can call it unchanged: the same input and output names
 * with the same element types and ranks, and the same fixed sizes. Symbolic dims (e.g. 'batch') match any symbolic
 * dim, since names of free dims are not part of the contract; a fixed size never matches a symbolic one. Extra
 * outputs in the candidate are allowed (callers ignore them); extra inputs are not (callers would not feed them).
 */
export function signatureDifferences(active: ModelSignature, candidate: ModelSignature): string[] {
  const diffs: string[] = [];
  const compare = (kind: 'input' | 'output', a: TensorSpec, c: TensorSpec | undefined): void => {
    if (!c) return void diffs.push(`${kind} '${a.name}' is missing`);
    if (a.type !== c.type) diffs.push(`${kind} '${a.name}' has element type ${c.type}, the active version ${a.type}`);
    if (a.shape.length !== c.shape.length)
      return void diffs.push(`${kind} '${a.name}' has rank ${c.shape.length}, the active version ${a.shape.length}`);
    a.shape.forEach((dim, i) => {
      const other = c.shape[i]!;
      const same = typeof dim === 'string' ? typeof other === 'string' : dim === other;
      if (!same) diffs.push(`${kind} '${a.name}' dim ${i} is ${fmt(c.shape)}, the active version ${fmt(a.shape)}`);
    });
  };
  for (const a of active.inputs)
    compare(
      'input',
      a,
      candidate.inputs.find((c) => c.name === a.name),
    );
  for (const c of candidate.inputs)
    if (!active.inputs.some((a) => a.name === c.name)) diffs.push(`input '${c.name}' is new (callers do not feed it)`);
  for (const a of active.outputs)
    compare(
      'output',
      a,
      candidate.outputs.find((c) => c.name === a.name),
    );
  return diffs;
}

function fmt(shape: (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}
