/**
 * The working spec (CAWS `.caws/working-spec.yaml`), the subset the pipeline executes today, plus our `steps` and
 * `gates` so that a spec runs without a language model. Workflow-safe: zod only.
 * Unknown keys pass through (lenient), as real specs carry extra keys.
 */
import { z } from 'zod';

/** A path relative to the workspace root: no absolute paths, no `..` segments. */
export const RelativePath = z
  .string()
  .min(1)
  .max(1024)
  .refine((p) => !p.startsWith('/') && !p.split(/[\\/]/).includes('..') && !p.includes('\0'), {
    message: 'must be a path inside the workspace (relative, without "..")',
  });

/** A program and its arguments, never a shell string. */
export const Argv = z.array(z.string().max(4096)).min(1).max(256);

export const SpecStepSchema = z.discriminatedUnion('kind', [
  z
    .object({ id: z.string().optional(), kind: z.literal('write_file'), path: RelativePath, content: z.string() })
    .strict(),
  z
    .object({
      id: z.string().optional(),
      kind: z.literal('replace'),
      path: RelativePath,
      find: z.string().min(1),
      replace: z.string(),
    })
    .strict(),
  z
    .object({
      id: z.string().optional(),
      kind: z.literal('command'),
      run: Argv,
      timeout_seconds: z.number().int().min(1).max(3600).optional(),
    })
    .strict(),
]);
export type SpecStep = z.infer<typeof SpecStepSchema>;

export const GateSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9_-]*$/, 'gate names are lowercase identifiers such as tests or lint'),
    run: Argv,
    timeout_seconds: z.number().int().min(1).max(3600).optional(),
  })
  .strict();
export type Gate = z.infer<typeof GateSchema>;

export const WorkingSpecSchema = z.looseObject({
  id: z.string().regex(/^[A-Z]+-\d+$/, 'ids look like FEAT-0042'),
  title: z.string().min(10, 'at least 10 characters').max(200),
  risk_tier: z.union([z.literal(1), z.literal(2), z.literal(3)], {
    error: 'risk_tier is 1, 2 or 3 (1 is the most critical)',
  }),
  mode: z.enum(['feature', 'refactor', 'fix', 'doc', 'chore']),
  change_budget: z.object({ max_files: z.number().int().min(1), max_loc: z.number().int().min(1) }).optional(),
  scope: z.object({
    in: z.array(z.string().min(1)).min(1, 'scope.in needs at least one path'),
    out: z.array(z.string().min(1)).default([]),
  }),
  acceptance: z
    .array(z.object({ id: z.string().regex(/^A\d+$/), given: z.string(), when: z.string(), then: z.string() }))
    .default([]),
  invariants: z.array(z.string()).default([]),
  steps: z.array(SpecStepSchema).max(500).default([]),
  gates: z.array(GateSchema).max(20).default([]),
});
export type WorkingSpec = z.infer<typeof WorkingSpecSchema>;
