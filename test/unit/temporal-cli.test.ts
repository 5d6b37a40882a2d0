import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliCacheDir, ensureTemporalCli, TemporalCliUnavailable } from '../../temporal/cli.js';

describe('finding the Temporal CLI', () => {
  it('when TEMPORAL_CLI names an executable, then it is used; when it names nothing usable, the variable is named', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cli-'));
    const fake = path.join(dir, 'temporal');
    await writeFile(fake, '#!/bin/sh\n');
    await chmod(fake, 0o755);
    expect(await ensureTemporalCli({ env: { TEMPORAL_CLI: fake, PATH: '' } })).toBe(fake);
    await expect(ensureTemporalCli({ env: { TEMPORAL_CLI: path.join(dir, 'missing'), PATH: '' } })).rejects.toThrow(
      /TEMPORAL_CLI is set to/,
    );
  });

  it('when a build is cached outside the clone, then it is reused without building', async () => {
    const cache = await mkdtemp(path.join(os.tmpdir(), 'cache-'));
    const env = { XDG_CACHE_HOME: cache, PATH: '' };
    await mkdir(cliCacheDir(env), { recursive: true });
    const cached = path.join(cliCacheDir(env), 'temporal');
    await writeFile(cached, '#!/bin/sh\n');
    await chmod(cached, 0o755);
    expect(cliCacheDir(env)).toBe(path.join(cache, 'agency', 'temporal', 'v1.5.1'));
    expect(await ensureTemporalCli({ env, goLocations: [] })).toBe(cached);
  });

  it('when there is neither a CLI nor Go, then the error says exactly what to install', async () => {
    const cache = await mkdtemp(path.join(os.tmpdir(), 'cache-'));
    const failure = ensureTemporalCli({ env: { XDG_CACHE_HOME: cache, PATH: '' }, goLocations: [] });
    await expect(failure).rejects.toBeInstanceOf(TemporalCliUnavailable);
    await expect(failure).rejects.toThrow(/Install one of:[\s\S]*Temporal CLI[\s\S]*Go 1\.23 or newer[\s\S]*@v1\.5\.1/);
  });
});
