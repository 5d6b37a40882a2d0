/**
 * Gate commands registered outside the spec: what the tier policy's required gates run (workflows/task/policy.ts,
 * planGates). A repository's registration may carry them (`gates` in POST /api/v1/repositories); the operator sets a
 * tenant's default in TENANT_GATE_COMMANDS. The repository's command for a kind comes first, then the tenant's
 * default, then the default for every tenant ("*").
 *
 * A command writes its report into the output directory the platform names for each gate run: `{out}` in its argv.
 */
import { z } from 'zod';
import { Argv, GATE_KINDS, GateKindSchema, type GateKind } from '../workflows/task/spec.js';
import type { RegisteredGate } from '../workflows/task/policy.js';

export const GateCommandSchema = z
  .object({
    run: Argv,
    /** The report's file name inside the output directory (default by kind: junit.xml, lcov.info, mutation.json…). */
    report: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, 'a relative file name inside the output directory')
      .refine((p) => !p.split('/').includes('..'), 'a relative file name inside the output directory')
      .optional(),
    timeout_seconds: z.number().int().min(1).max(3600).optional(),
  })
  .strict();
export type GateCommand = z.infer<typeof GateCommandSchema>;

/** Commands by gate kind: {"tests": {"run": [...]}, "coverage": {...}}. */
export const GateCommandsSchema = z.partialRecord(GateKindSchema, GateCommandSchema);
export type GateCommands = Partial<Record<GateKind, GateCommand>>;

/** TENANT_GATE_COMMANDS: {"<tenant or *>": {"tests": {"run": [...]}, ...}} as JSON. */
export const GateCommandsByTenantSchema = z.record(
  z.string().regex(/^(\*|[a-z0-9][a-z0-9-]{0,62})$/, 'a tenant id or *'),
  GateCommandsSchema,
);
export type GateCommandsByTenant = Record<string, GateCommands>;

/** The registered commands for a task: the repository's, then the tenant's default, then "*", one per kind. */
export function registeredGates(
  byTenant: GateCommandsByTenant,
  tenantId: string,
  repository: GateCommands | undefined,
): RegisteredGate[] {
  const out: RegisteredGate[] = [];
  const layers: [GateCommands | undefined, RegisteredGate['source']][] = [
    [repository, 'repository'],
    [byTenant[tenantId], 'tenant'],
    [byTenant['*'], 'tenant'],
  ];
  for (const kind of GATE_KINDS) {
    for (const [commands, source] of layers) {
      const c = commands?.[kind];
      if (!c) continue;
      out.push({
        kind,
        run: [...c.run],
        ...(c.report ? { report: c.report } : {}),
        ...(c.timeout_seconds ? { timeout_seconds: c.timeout_seconds } : {}),
        source,
      });
      break;
    }
  }
  return out;
}
