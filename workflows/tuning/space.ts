/**
 * The search space of a tuning run: named dimensions of four kinds, and a point (one value per dimension).
 * Workflow-safe (zod only): the workflow input, the API and the optimiser (activities/inference/tuning/) share it.
 *
 * - `integer` / `real`: a range, optionally on a log scale (thread counts, waits in ms);
 * - `ordinal`: an ordered list of numbers (batch sizes 1, 2, 4, …): the optimiser sees their rank, not their value;
 * - `categorical`: unordered values (execution mode, optimisation level, on/off switches): one-hot to the optimiser.
 */
import { z } from 'zod';

const name = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z][A-Za-z0-9_.]*$/, 'a dimension name is a letter then letters, digits, _ or .');

const rangeDim = <K extends 'integer' | 'real'>(kind: K) =>
  z
    .object({
      kind: z.literal(kind),
      name,
      min: kind === 'integer' ? z.number().int() : z.number().finite(),
      max: kind === 'integer' ? z.number().int() : z.number().finite(),
      log: z.boolean().optional(),
    })
    .strict()
    .refine((d) => d.max > d.min, { message: 'max must be greater than min' })
    .refine((d) => !d.log || d.min > 0, { message: 'a log-scale dimension needs min > 0' });

export const IntegerDimensionSchema = rangeDim('integer');
export const RealDimensionSchema = rangeDim('real');
export const OrdinalDimensionSchema = z
  .object({ kind: z.literal('ordinal'), name, values: z.array(z.number().finite()).min(1).max(64) })
  .strict()
  .refine((d) => d.values.every((v, i) => i === 0 || v > d.values[i - 1]!), {
    message: 'ordinal values must be strictly increasing',
  });
export const CategoryValueSchema = z.union([z.string().max(64), z.number().finite(), z.boolean()]);
export const CategoricalDimensionSchema = z
  .object({ kind: z.literal('categorical'), name, values: z.array(CategoryValueSchema).min(1).max(64) })
  .strict()
  .refine((d) => new Set(d.values).size === d.values.length, { message: 'categorical values must be distinct' });

export const DimensionSchema = z.union([
  IntegerDimensionSchema,
  RealDimensionSchema,
  OrdinalDimensionSchema,
  CategoricalDimensionSchema,
]);
export type Dimension = z.infer<typeof DimensionSchema>;

export const SearchSpaceSchema = z
  .array(DimensionSchema)
  .min(1)
  .max(32)
  .refine((dims) => new Set(dims.map((d) => d.name)).size === dims.length, {
    message: 'dimension names must be distinct',
  });
export type SearchSpace = z.infer<typeof SearchSpaceSchema>;

export type ParamValue = z.infer<typeof CategoryValueSchema>;
/** One value per dimension, by name. */
export const PointSchema = z.record(z.string(), CategoryValueSchema);
export type Point = z.infer<typeof PointSchema>;

/** Whether `point` gives every dimension of `space` a value it allows. */
export function pointInSpace(space: SearchSpace, point: Point): boolean {
  return space.every((d) => {
    const v = point[d.name];
    switch (d.kind) {
      case 'integer':
        return typeof v === 'number' && Number.isInteger(v) && v >= d.min && v <= d.max;
      case 'real':
        return typeof v === 'number' && v >= d.min && v <= d.max;
      case 'ordinal':
      case 'categorical':
        return (d.values as readonly ParamValue[]).includes(v as ParamValue);
    }
  });
}
