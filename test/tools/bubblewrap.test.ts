/**
 * Finding bubblewrap: BWRAP_PATH, the user cache, and the message when nothing can be found or fetched.
 * The last test uses the real lookup (PATH, cache, or apt-get download), which this machine supports.
 */
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bubblewrapCacheDir, ensureBubblewrap } from '../../mcp/workspace-server/bubblewrap.js';

async function fakeBwrap(file: string, version: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `#!/bin/sh\necho "bubblewrap ${version}"\n`);
  await chmod(file, 0o755);
}

describe('finding bubblewrap', () => {
  it('when BWRAP_PATH names a working bwrap it is used; when it names nothing usable, the variable is named', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bwrap-'));
    await fakeBwrap(path.join(dir, 'bwrap'), '1.2.3');
    expect(await ensureBubblewrap({ env: { BWRAP_PATH: path.join(dir, 'bwrap'), PATH: '' } })).toEqual({
      found: true,
      path: path.join(dir, 'bwrap'),
      version: '1.2.3',
      source: 'env',
    });
    const missing = await ensureBubblewrap({ env: { BWRAP_PATH: path.join(dir, 'missing'), PATH: '' } });
    expect(missing).toEqual({ found: false, reason: expect.stringContaining('BWRAP_PATH is set to') as string });
  });

  it('when a copy is cached outside the clone, then it is reused without fetching', async () => {
    const cache = await mkdtemp(path.join(os.tmpdir(), 'cache-'));
    const env = { XDG_CACHE_HOME: cache, PATH: '' };
    const cached = path.join(bubblewrapCacheDir(env), '0.8.0-2+deb12u1', 'usr', 'bin', 'bwrap');
    await fakeBwrap(cached, '0.8.0');
    expect(bubblewrapCacheDir(env)).toBe(path.join(cache, 'agency', 'bubblewrap'));
    expect(await ensureBubblewrap({ env, download: false })).toMatchObject({
      found: true,
      path: cached,
      source: 'cache',
    });
  });

  it('when there is no bwrap and no apt-get, then the reason says exactly what to install', async () => {
    const cache = await mkdtemp(path.join(os.tmpdir(), 'cache-'));
    const result = await ensureBubblewrap({ env: { XDG_CACHE_HOME: cache, PATH: '' } });
    expect(result.found).toBe(false);
    if (!result.found) {
      expect(result.reason).toContain('no apt-get/dpkg-deb');
      expect(result.reason).toContain('Debian/Ubuntu package `bubblewrap`');
      expect(result.reason).toContain('BWRAP_PATH');
    }
  });

  it('on this machine, a real bwrap is found or fetched, outside the repository', async () => {
    const result = await ensureBubblewrap();
    if (!result.found) throw new Error(result.reason);
    expect(result.version).toMatch(/^\d+\.\d+/);
    expect(path.relative(process.cwd(), result.path).startsWith('..')).toBe(true);
  });
});
