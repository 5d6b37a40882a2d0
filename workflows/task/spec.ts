/**
 * The working spec (CAWS `.caws/working-spec.yaml`) with every CAWS field, plus our `steps` and `gates` so that a spec
 * runs without a language model. Workflow-safe: zod only, no clock (callers pass `now` as an ISO string).
 *
 * Two ways in:
 * - `WorkingSpecSchema`, the object schema for JSON validation (the API's request contract): field rules only, unknown
 *   keys dropped. `StrictWorkingSpecSchema` is the same with unknown keys rejected at every level.
 * - `parseWorkingSpec(raw, { strict, now })`, for spec documents: field rules, unknown keys reported (warnings when
 *   lenient, the default; errors when strict), and the tier rules that span fields (tiers 1 and 2 need contracts; tier
 *   1 needs observability, rollback and security entries; experiment mode only at tier 3 with a future expiry).
 *   Every message reads `path: message`, the path in dotted form (`acceptance.0.id: ids look like A1`).
 *
 * Steps and gates are executable, so they reject unknown keys in both modes: a dropped field (a typo in `timeout_seconds`,
 * say) would change what runs.
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
  // Any registered MCP tool, chosen by capability (and optionally by name or server); its arguments are checked
  // against the tool's input schema before the call.
  z
    .object({
      id: z.string().optional(),
      kind: z.literal('tool'),
      capabilities: z
        .array(z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/))
        .min(1)
        .max(16),
      tool: z.string().min(1).max(128).optional(),
      server: z.string().min(1).max(64).optional(),
      arguments: z.record(z.string(), z.unknown()).default({}),
    })
    .strict(),
]);
export type SpecStep = z.infer<typeof SpecStepSchema>;

/** What a gate measures; coverage and mutation gates are held to the tier's thresholds. */
export const GATE_KINDS = ['tests', 'lint', 'types', 'coverage', 'mutation', 'contracts', 'custom'] as const;
export const GateKindSchema = z.enum(GATE_KINDS);
export type GateKind = z.infer<typeof GateKindSchema>;

export const GateSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9_-]*$/, 'gate names are lowercase identifiers such as tests or lint'),
    run: Argv,
    timeout_seconds: z.number().int().min(1).max(3600).optional(),
    /** What the gate measures; without it a gate named like a kind (tests, lint, …) is that kind, else custom. */
    kind: GateKindSchema.optional(),
    /** The coverage or mutation report the gate's command writes, relative to the workspace. */
    report: RelativePath.optional(),
    /** Acceptance criteria (A1, A2, …) this gate's passing demonstrates; the quality judge checks every one is covered. */
    covers: z
      .array(z.string().regex(/^A\d+$/, 'acceptance ids look like A1'))
      .max(100)
      .optional(),
  })
  .strict();
export type Gate = z.infer<typeof GateSchema>;

export type RiskTier = 1 | 2 | 3;
export const RiskTierSchema = z.union([z.literal(1), z.literal(2), z.literal(3)], {
  error: (issue) => (issue.input === undefined ? 'required' : 'risk_tier is 1, 2 or 3 (1 is the most critical)'),
});

export const SPEC_MODES = ['feature', 'refactor', 'fix', 'doc', 'chore'] as const;
export const CONTRACT_TYPES = ['openapi', 'graphql', 'proto', 'pact', 'sql', 'json-schema', 'typescript'] as const;

/** Waiver ids: WV- and at least four digits (WV-0001). */
export const WaiverIdSchema = z.string().regex(/^WV-\d{4,}$/, 'waiver ids look like WV-0001');

/** An ISO 8601 date-time with an offset, or a calendar date (read as midnight UTC). */
export const IsoDateOrDateTime = z.union([z.iso.datetime({ offset: true }), z.iso.date()], {
  error: 'an ISO 8601 date or date-time such as 2030-01-31 or 2030-01-31T12:00:00Z',
});

/** Milliseconds since the epoch for an ISO 8601 date or date-time; NaN for anything else (no locale-dependent forms). */
export function isoToMs(value: string): number {
  return IsoDateOrDateTime.safeParse(value).success ? Date.parse(value) : Number.NaN;
}

const nonEmpty = z.string().min(1, 'must not be empty');

/**
 * Builds the spec schema with one policy for unknown keys in the CAWS objects. Both policies produce the same output
 * type (neither keeps unknown keys), so both variants share the stripping object's static type.
 */
function buildWorkingSpecSchema(unknownKeys: 'strip' | 'strict') {
  const obj = <S extends z.ZodRawShape>(shape: S): z.ZodObject<S, z.core.$strip> =>
    unknownKeys === 'strict' ? z.strictObject(shape) : z.object(shape);

  return obj({
    id: z.string().regex(/^[A-Z]+-\d+$/, 'ids look like FEAT-0042'),
    title: z.string().min(10, 'at least 10 characters').max(200, 'at most 200 characters'),
    risk_tier: RiskTierSchema,
    mode: z.enum(SPEC_MODES),
    change_budget: obj({
      max_files: z.number().int().min(1),
      max_loc: z.number().int().min(1),
    }).optional(),
    blast_radius: obj({
      modules: z.array(nonEmpty).default(() => []),
      data_migration: z.boolean().default(false),
    }).optional(),
    operational_rollback_slo: z
      .string()
      .regex(/^\d+(ms|s|m|h|d)$/, 'a duration such as 5m, 30s, 2h or 1d')
      .optional(),
    scope: obj({
      in: z.array(z.string().min(1)).min(1, 'needs at least one path'),
      out: z.array(z.string().min(1)).default(() => []),
    }),
    invariants: z.array(z.string()).default(() => []),
    acceptance: z
      .array(
        obj({
          id: z.string().regex(/^A\d+$/, 'ids look like A1'),
          given: nonEmpty,
          when: nonEmpty,
          then: nonEmpty,
        }),
      )
      .default(() => []),
    non_functional: obj({
      a11y: z.array(nonEmpty).default(() => []),
      /** Budgets such as `api_p95_ms: 250`; names are free-form. */
      perf: z.record(z.string(), z.union([z.number(), z.string()])).default(() => ({})),
      security: z.array(nonEmpty).default(() => []),
    }).optional(),
    contracts: z.array(obj({ type: z.enum(CONTRACT_TYPES), path: RelativePath })).optional(),
    waiver_ids: z.array(WaiverIdSchema).optional(),
    observability: obj({
      logs: z.array(nonEmpty).default(() => []),
      metrics: z.array(nonEmpty).default(() => []),
      traces: z.array(nonEmpty).default(() => []),
    }).optional(),
    migrations: z.array(nonEmpty).optional(),
    rollback: z.array(nonEmpty).optional(),
    experiment_mode: z.boolean().optional(),
    human_override: obj({
      approved_by: nonEmpty,
      reason: nonEmpty,
      waived_requirements: z.array(nonEmpty).default(() => []),
      expiry_date: IsoDateOrDateTime.optional(),
    }).optional(),
    ai_assessment: obj({
      /** CAWS specs use a 1–10 scale; fractions (0–1) are accepted as written. */
      confidence_level: z.number().min(0).max(10),
      uncertainty_areas: z.array(nonEmpty).default(() => []),
      recommended_pairing: z.boolean().default(false),
    }).optional(),
    /** The highest tool security level the task may use without a person's approval (never above `standard`). */
    tool_level: z.enum(['read-only', 'standard']).optional(),
    steps: z
      .array(SpecStepSchema)
      .max(500)
      .default(() => []),
    gates: z
      .array(GateSchema)
      .max(20)
      .default(() => []),
  });
}

/**
 * The spec as a JSON contract: field rules, unknown keys dropped. Tier rules need `parseWorkingSpec`. The CAWS fields
 * added after the first release are optional in the output (no top-level defaults), so existing `WorkingSpec` literals
 * stay valid.
 */
export const WorkingSpecSchema = buildWorkingSpecSchema('strip');
/** The same contract with unknown keys rejected at every level. */
export const StrictWorkingSpecSchema = buildWorkingSpecSchema('strict');
export type WorkingSpec = z.infer<typeof WorkingSpecSchema>;

export type ParseWorkingSpecResult =
  { ok: true; spec: WorkingSpec; warnings: string[] } | { ok: false; errors: string[]; warnings: string[] };

/** Top-level optional fields that real specs write as `null` to mean "none". */
const NULLABLE_OPTIONAL_KEYS = [
  'change_budget',
  'blast_radius',
  'operational_rollback_slo',
  'waiver_ids',
  'observability',
  'human_override',
  'ai_assessment',
  'experiment_mode',
] as const;

const EXECUTABLE_KEYS = new Set(['steps', 'gates']);

/** `scope.in.0`; keys that are not plain identifiers are quoted (`scope["my key"]`) so the path stays exact. */
function dotted(path: readonly PropertyKey[]): string {
  if (!path.length) return '(spec)';
  return path
    .map((segment, i) => {
      if (typeof segment === 'string' && !/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment))
        return `[${JSON.stringify(segment)}]`;
      return `${i ? '.' : ''}${String(segment)}`;
    })
    .join('');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** "Required" for absent fields; zod's own messages otherwise. */
const errorMap: z.core.$ZodErrorMap = (issue) =>
  issue.input === undefined && ['invalid_type', 'invalid_value', 'invalid_union'].includes(issue.code ?? '')
    ? 'required'
    : undefined;

/**
 * Validates a spec document. Lenient by default (unknown keys become warnings and are dropped); strict on request
 * (unknown keys are errors). Never throws for any input; `now` (ISO date-time) dates the experiment-mode expiry check.
 */
export function parseWorkingSpec(raw: unknown, opts: { strict?: boolean; now: string }): ParseWorkingSpecResult {
  const errors: string[] = [];
  const warnings: string[] = [];
  if (Number.isNaN(isoToMs(opts.now))) errors.push(`(now): ${JSON.stringify(opts.now)} is not an ISO date-time`);

  if (!isRecord(raw)) {
    const got = raw === null ? 'null' : Array.isArray(raw) ? 'a list' : typeof raw;
    return { ok: false, errors: [...errors, `(spec): a working spec is a mapping of fields, got ${got}`], warnings };
  }
  const input: Record<string, unknown> = { ...raw };
  for (const key of NULLABLE_OPTIONAL_KEYS) if (input[key] === null) delete input[key];

  // One pass with unknown keys rejected gives every issue at once; unknown keys are then sorted into warnings or errors.
  const checked = StrictWorkingSpecSchema.safeParse(input, { error: errorMap });
  if (!checked.success) {
    for (const issue of checked.error.issues) {
      if (issue.code !== 'unrecognized_keys') {
        errors.push(`${dotted(issue.path)}: ${issue.message}`);
        continue;
      }
      const executable = typeof issue.path[0] === 'string' && EXECUTABLE_KEYS.has(issue.path[0]);
      for (const key of issue.keys) {
        const where = dotted([...issue.path, key]);
        if (executable) errors.push(`${where}: unknown key (steps and gates accept no unknown keys)`);
        else if (opts.strict) errors.push(`${where}: unknown key`);
        else warnings.push(`${where}: unknown key (ignored)`);
      }
    }
  }
  if (errors.length) return { ok: false, errors, warnings };

  // Only unknown keys (if anything) failed above, and the stripping schema ignores those.
  const parsed = WorkingSpecSchema.safeParse(input, { error: errorMap });
  if (!parsed.success) {
    return { ok: false, errors: parsed.error.issues.map((i) => `${dotted(i.path)}: ${i.message}`), warnings };
  }
  const spec = parsed.data;
  errors.push(...crossFieldErrors(spec, opts.now));
  warnings.push(...crossFieldWarnings(spec));
  return errors.length ? { ok: false, errors, warnings } : { ok: true, spec, warnings };
}

/**
 * The rules that span fields: tier requirements, experiment mode, duplicate ids. Exported for callers that validated
 * with `WorkingSpecSchema` alone (the API) and need the same answer as `parseWorkingSpec`.
 */
export function crossFieldErrors(spec: WorkingSpec, now: string): string[] {
  const errors: string[] = [];
  const nowMs = isoToMs(now);
  if (Number.isNaN(nowMs)) errors.push(`(now): ${JSON.stringify(now)} is not an ISO date-time`);
  const tier = spec.risk_tier;
  if (tier <= 2 && !spec.contracts?.length) {
    errors.push(`contracts: risk tier ${tier} needs at least one contract`);
  }
  if (tier === 1) {
    const o = spec.observability;
    if (!o || o.logs.length + o.metrics.length + o.traces.length === 0) {
      errors.push('observability: risk tier 1 needs observability (logs, metrics or traces)');
    }
    if (!spec.rollback?.length) errors.push('rollback: risk tier 1 needs at least one rollback step');
    if (!spec.non_functional?.security.length) {
      errors.push('non_functional.security: risk tier 1 needs at least one security entry');
    }
  }
  if (spec.experiment_mode) {
    if (tier !== 3) errors.push(`experiment_mode: only allowed at risk tier 3 (this spec is tier ${tier})`);
    const expiry = spec.human_override?.expiry_date;
    if (expiry === undefined) {
      errors.push('human_override.expiry_date: experiment mode needs a human override with an expiry date');
    } else if (!Number.isNaN(nowMs) && !(isoToMs(expiry) > nowMs)) {
      errors.push(`human_override.expiry_date: experiment mode needs a future expiry; ${expiry} has passed`);
    }
  }
  const firstAcceptance = new Map<string, number>();
  spec.acceptance.forEach((a, i) => {
    const first = firstAcceptance.get(a.id);
    if (first === undefined) firstAcceptance.set(a.id, i);
    else errors.push(`acceptance.${i}.id: duplicate id ${a.id} (also acceptance.${first}.id)`);
  });
  const firstGate = new Map<string, number>();
  spec.gates.forEach((g, i) => {
    const first = firstGate.get(g.name);
    if (first === undefined) firstGate.set(g.name, i);
    else errors.push(`gates.${i}.name: duplicate gate name ${g.name} (also gates.${first}.name)`);
  });
  return errors;
}

function crossFieldWarnings(spec: WorkingSpec): string[] {
  const warnings: string[] = [];
  spec.gates.forEach((g, i) => {
    const kind = g.kind ?? g.name;
    if ((kind === 'coverage' || kind === 'mutation') && g.report === undefined) {
      warnings.push(`gates.${i}.report: a ${kind} gate without a report path has no measurement and will fail`);
    }
  });
  return warnings;
}
