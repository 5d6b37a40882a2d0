/**
 * `npm run dp:epsilon` (scripts/dp-epsilon.ts), run as a process: ε for a noise multiplier (Opacus' reference case),
 * the noise multiplier for a target ε (checked back through the accountant), and a clear exit 2 on bad input.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { computeEpsilon } from '../../activities/federation/accountant.js';
import { PROJECT_ROOT } from '../../common/config.js';

const run = promisify(execFile);

async function dpEpsilon(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'scripts/dp-epsilon.ts'), ...args], {
    cwd: PROJECT_ROOT,
    timeout: 60_000,
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  );
}

describe('dp:epsilon', () => {
  it('when given a noise multiplier, then it prints ε (Opacus: z=1.5, q=0.04, 2250 steps → 7.3291)', async () => {
    const text = await dpEpsilon('--noise', '1.5', '--sample-rate', '0.04', '--steps', '2250', '--delta', '1e-5');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ε = 7\.32911 at δ = 0\.00001 .*Balle et al\. 2020/);
  });

  it('when given a target ε, then it prints the noise multiplier that reaches it', async () => {
    const out = await dpEpsilon('--target-epsilon', '1', '--sample-rate', '0.1', '--steps', '100', '--json');
    expect(out.code).toBe(0);
    const { noiseMultiplier, epsilon } = JSON.parse(out.stdout) as { noiseMultiplier: number; epsilon: number };
    expect(epsilon).toBeLessThanOrEqual(1);
    const eps = computeEpsilon({ noiseMultiplier, sampleRate: 0.1, steps: 100, delta: 1e-5 }).epsilon;
    expect(eps).toBeLessThanOrEqual(1);
    expect(eps).toBeGreaterThan(0.999);
  });

  it('when an argument is missing or not a number, then it exits 2 with the usage', async () => {
    const [bad, neither, outOfRange] = await Promise.all([
      dpEpsilon('--noise', 'lots', '--sample-rate', '0.1', '--steps', '10'),
      dpEpsilon('--sample-rate', '0.1', '--steps', '10'),
      dpEpsilon('--noise', '1', '--sample-rate', '2', '--steps', '10'),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--noise must be a number[\s\S]*usage:/);
    expect(neither.code).toBe(2);
    expect(neither.stdout).toMatch(/usage:/);
    expect(outOfRange.code).toBe(2);
    expect(outOfRange.stderr).toMatch(/sampleRate must be in \[0, 1\]/);
  });
});
