import { describe, expect, it } from 'vitest';
import { GateCommandsByTenantSchema, registeredGates } from '../../common/gate-commands.js';
import { RepositoryInputSchema } from '../../common/repositories.js';
import { testConfig } from '../helpers/stack.js';

describe('registered gate commands', () => {
  const byTenant = GateCommandsByTenantSchema.parse({
    '*': { tests: { run: ['npm', 'test'] }, mutation: { run: ['npx', 'stryker', 'run'], report: 'mutation.json' } },
    acme: { tests: { run: ['make', 'test'] } },
  });

  it("when the repository, the tenant and every tenant register a kind, then the repository's comes first, then the tenant's", () => {
    const repository = { coverage: { run: ['npm', 'run', 'coverage'], report: 'lcov.info' } };
    expect(registeredGates(byTenant, 'acme', repository)).toEqual([
      { kind: 'tests', run: ['make', 'test'], source: 'tenant' },
      { kind: 'coverage', run: ['npm', 'run', 'coverage'], report: 'lcov.info', source: 'repository' },
      { kind: 'mutation', run: ['npx', 'stryker', 'run'], report: 'mutation.json', source: 'tenant' },
    ]);
    expect(registeredGates(byTenant, 'other', undefined).map((g) => g.run[0])).toEqual(['npm', 'npx']);
    expect(registeredGates({}, 'acme', undefined)).toEqual([]);
  });

  it('when a command is a shell string, names an unknown kind or a report outside the output directory, then it is refused', () => {
    expect(GateCommandsByTenantSchema.safeParse({ '*': { tests: { run: 'npm test' } } }).success).toBe(false);
    expect(GateCommandsByTenantSchema.safeParse({ '*': { smoke: { run: ['true'] } } }).success).toBe(false);
    expect(GateCommandsByTenantSchema.safeParse({ '*': { tests: { run: ['x'], report: '../r.xml' } } }).success).toBe(
      false,
    );
  });

  it('when the configuration or a repository registration carries gate commands, then they are checked and kept', () => {
    expect(() => testConfig({ TENANT_GATE_COMMANDS: '{"*": {"tests": {"run": "npm test"}}}' })).toThrow(
      /TENANT_GATE_COMMANDS/,
    );
    expect(
      testConfig({ TENANT_GATE_COMMANDS: '{"acme": {"lint": {"run": ["npx", "eslint"]}}}' }).TENANT_GATE_COMMANDS,
    ).toEqual({
      acme: { lint: { run: ['npx', 'eslint'] } },
    });
    const repo = RepositoryInputSchema.parse({
      id: 'shop',
      url: 'https://git.example.com/shop.git',
      gates: { tests: { run: ['npm', 'test'], report: 'junit.xml' } },
    });
    expect(repo.gates).toEqual({ tests: { run: ['npm', 'test'], report: 'junit.xml' } });
    expect(RepositoryInputSchema.parse({ id: 'shop', url: 'https://git.example.com/shop.git' }).gates).toEqual({});
  });
});
