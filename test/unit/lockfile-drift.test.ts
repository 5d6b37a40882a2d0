// The rule scripts/ensure-deps.mjs applies when `npm ci` calls the lockfile out of sync: optional-only drift (the
// registry gained or lost other platforms' binaries) installs and goes on; anything else stops, naming the package.
import { describe, expect, it } from 'vitest';
import {
  classifyLockChange,
  describeOptionalDrift,
  directMismatches,
  type Lockfile,
  type PackageJson,
} from '../../scripts/lockfile-drift.mjs';

const pkg = { dependencies: { '@swc/core': '^1.16.0', pg: '^8.0.0' }, devDependencies: { vitest: '^4.1.0' } };
const base: Lockfile = {
  packages: {
    '': { name: 'app', ...pkg },
    'node_modules/@swc/core': {
      version: '1.16.22',
      optionalDependencies: { '@swc/core-linux-x64-gnu': '1.16.22', '@swc/core-darwin-arm64': '1.16.22' },
    },
    'node_modules/@swc/core-linux-x64-gnu': { version: '1.16.22', optional: true, os: ['linux'], cpu: ['x64'] },
    'node_modules/pg': { version: '8.23.1' },
    'node_modules/vitest': { version: '4.1.12', dev: true },
  },
};
const withDarwin: Lockfile = {
  packages: {
    ...base.packages,
    'node_modules/@swc/core-darwin-arm64': { version: '1.16.22', optional: true, os: ['darwin'], cpu: ['arm64'] },
  },
};
const clone = (lock: Lockfile): Lockfile => JSON.parse(JSON.stringify(lock)) as Lockfile;

describe('classifyLockChange', () => {
  it('an identical lockfile is the same', () => {
    expect(classifyLockChange(base, clone(base))).toEqual({ kind: 'same', gained: [], lost: [], changed: [] });
  });

  it('the registry gaining optional packages is optional-only drift', () => {
    const change = classifyLockChange(base, withDarwin);
    expect(change).toEqual({
      kind: 'optional-only',
      gained: ['@swc/core-darwin-arm64@1.16.22'],
      lost: [],
      changed: [],
    });
    expect(describeOptionalDrift(change)).toMatch(
      /serves 1 optional package \(e\.g\. @swc\/core-darwin-arm64@1\.16\.22\)/,
    );
  });

  it('the registry losing optional packages is optional-only drift', () => {
    const change = classifyLockChange(withDarwin, base);
    expect(change).toEqual({
      kind: 'optional-only',
      gained: [],
      lost: ['@swc/core-darwin-arm64@1.16.22'],
      changed: [],
    });
    expect(describeOptionalDrift(change)).toMatch(/no longer serves 1 optional package/);
  });

  it('a nested optional package is named by its own name', () => {
    const nested = clone(base);
    nested.packages!['node_modules/a/node_modules/@unrs/resolver-binding-win32-x64-msvc'] = {
      version: '1.13.0',
      optional: true,
    };
    expect(classifyLockChange(base, nested).gained).toEqual(['@unrs/resolver-binding-win32-x64-msvc@1.13.0']);
  });

  it('a required package that appears is a mismatch, named', () => {
    const after = clone(base);
    after.packages!['node_modules/left-pad'] = { version: '1.3.0' };
    expect(classifyLockChange(base, after)).toMatchObject({ kind: 'mismatch', changed: ['left-pad@1.3.0'] });
  });

  it('a required package that disappears is a mismatch, named', () => {
    const after = clone(base);
    delete after.packages!['node_modules/pg'];
    expect(classifyLockChange(base, after)).toMatchObject({ kind: 'mismatch', changed: ['pg@8.23.1'] });
  });

  it('a changed version is a mismatch even for an optional package, and hides no gained ones', () => {
    const after = clone(withDarwin);
    after.packages!['node_modules/@swc/core-linux-x64-gnu']!.version = '1.17.0';
    const change = classifyLockChange(base, after);
    expect(change.kind).toBe('mismatch');
    expect(change.changed).toEqual(['@swc/core-linux-x64-gnu: 1.16.22 -> 1.17.0']);
    expect(change.gained).toEqual(['@swc/core-darwin-arm64@1.16.22']);
  });

  it('a changed range in the root entry is a mismatch', () => {
    const after = clone(withDarwin);
    after.packages![''] = { ...after.packages![''], dependencies: { '@swc/core': '^1.16.0', pg: '^9.0.0' } };
    expect(classifyLockChange(base, after)).toMatchObject({ kind: 'mismatch', changed: ["the root's dependencies"] });
  });
});

describe('directMismatches', () => {
  it('a lockfile written for package.json has none', () => {
    expect(directMismatches(pkg, base)).toEqual([]);
  });

  it('names a changed range', () => {
    expect(directMismatches({ ...pkg, dependencies: { ...pkg.dependencies, pg: '^9.0.0' } }, base)).toEqual([
      'pg: package.json wants ^9.0.0, package-lock.json has ^8.0.0',
    ]);
  });

  it('names a direct dependency missing from the lockfile, and one the lockfile has in excess', () => {
    expect(directMismatches({ ...pkg, devDependencies: { zod: '^4.0.0' } }, base)).toEqual([
      'zod: in package.json devDependencies but not in package-lock.json',
      'vitest: in package-lock.json devDependencies but not in package.json',
    ]);
  });

  it('names a direct dependency the lockfile declares but never resolved', () => {
    const lock = clone(base);
    delete lock.packages!['node_modules/vitest'];
    expect(directMismatches(pkg, lock)).toEqual(['vitest: no node_modules/vitest entry in package-lock.json']);
  });

  it("passes this repository's own package.json and lockfile", async () => {
    const { readFile } = await import('node:fs/promises');
    const read = async (f: string): Promise<unknown> => JSON.parse(await readFile(f, 'utf8'));
    const [own, lock] = [(await read('package.json')) as PackageJson, (await read('package-lock.json')) as Lockfile];
    expect(directMismatches(own, lock)).toEqual([]);
  });
});
