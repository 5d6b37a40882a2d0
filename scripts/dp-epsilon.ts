/**
 * The privacy accountant as a command (activities/federation/accountant.ts): RDP of the Poisson-subsampled Gaussian
 * (Mironov, Talwar & Zhang 2019), converted to (ε, δ) with Balle et al. 2020.
 *
 *   npm run dp:epsilon -- --noise 1.1 --sample-rate 0.1 --steps 100 --delta 1e-5        → ε
 *   npm run dp:epsilon -- --target-epsilon 1 --sample-rate 0.1 --steps 100 --delta 1e-5 → noise multiplier
 *   add --json for one JSON line instead of text.
 */
import { parseArgs } from 'node:util';
import { computeEpsilon, noiseMultiplierForEpsilon } from '../activities/federation/accountant.js';

const USAGE =
  'usage: npm run dp:epsilon -- (--noise Z | --target-epsilon E) --sample-rate Q --steps T [--delta 1e-5] [--json]';

function number(name: string, raw: string | undefined): number {
  const value = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isFinite(value)) {
    process.stderr.write(`--${name} must be a number, got ${raw ?? 'nothing'}\n${USAGE}\n`);
    process.exit(2);
  }
  return value;
}

const { values } = parseArgs({
  options: {
    noise: { type: 'string' },
    'target-epsilon': { type: 'string' },
    'sample-rate': { type: 'string' },
    steps: { type: 'string' },
    delta: { type: 'string', default: '1e-5' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help || (values.noise === undefined) === (values['target-epsilon'] === undefined)) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(values.help ? 0 : 2);
}

const sampleRate = number('sample-rate', values['sample-rate']);
const steps = number('steps', values.steps);
const delta = number('delta', values.delta);

try {
  if (values.noise !== undefined) {
    const noiseMultiplier = number('noise', values.noise);
    const { epsilon, order } = computeEpsilon({ noiseMultiplier, sampleRate, steps, delta });
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ epsilon, delta, noiseMultiplier, sampleRate, steps, order, conversion: 'balle2020' })}\n`
        : `ε = ${epsilon.toPrecision(6)} at δ = ${delta} (noise multiplier ${noiseMultiplier}, sampling rate ${sampleRate}, ` +
            `${steps} steps; best RDP order ${order}; RDP of the Poisson-subsampled Gaussian, Balle et al. 2020 conversion)\n`,
    );
  } else {
    const targetEpsilon = number('target-epsilon', values['target-epsilon']);
    const noiseMultiplier = noiseMultiplierForEpsilon({ targetEpsilon, sampleRate, steps, delta });
    const reached = computeEpsilon({ noiseMultiplier, sampleRate, steps, delta }).epsilon;
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ noiseMultiplier, epsilon: reached, targetEpsilon, delta, sampleRate, steps })}\n`
        : `noise multiplier = ${noiseMultiplier.toPrecision(6)} for ε ≤ ${targetEpsilon} at δ = ${delta} ` +
            `(sampling rate ${sampleRate}, ${steps} steps; it gives ε = ${reached.toPrecision(6)})\n`,
    );
  }
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
  process.exit(2);
}
