/**
 * The two mechanical steps of DP-FedAvg (McMahan et al. 2018, "Learning differentially private recurrent language
 * models"): clip each participant's update to L2 norm C, then add Gaussian noise of standard deviation σ = z·C to the
 * sum (z = noise multiplier). The accountant (accountant.ts) turns z, the sampling rate and the number of rounds into
 * (ε, δ).
 *
 * Exported API (stable; F2 codes against it):
 * ```ts
 * l2Norm(v): number
 * allFinite(v): boolean
 * clipL2(v: Float32Array, clipNorm): { clipped: Float32Array; norm: number; scale: number }   // scale = min(1, C/‖v‖)
 * interface NoiseSource { gaussian(): number }                 // standard normal draws
 * cryptoNoise(): NoiseSource                                   // CSPRNG (node:crypto): production
 * seededNoise(seed): NoiseSource                               // reproducible: tests and benches only
 * noiseStd(noiseMultiplier, clipNorm): number                  // σ = z·C for the whole sum
 * noiseShareStd(noiseMultiplier, clipNorm, minContributors): number  // z·C/√min: per-participant share (distributed)
 * addGaussianNoise(sum: ArrayLike<number>, std, source): Float32Array   // new vector; sum untouched
 * ```
 *
 * Distributed noise: if each of at least `minContributors` participants adds a share of std z·C/√min, any sum of
 * ≥ min shares has variance ≥ (z·C)², so a drop-out never leaves the sum under-noised, at the price of more noise
 * than needed when more than `min` answer.
 */
import { randomBytes } from 'node:crypto';
import { createRng } from './data.js';

export function l2Norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

export function allFinite(v: ArrayLike<number>): boolean {
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) return false;
  return true;
}

/** Scales `v` down to L2 norm `clipNorm` when it is longer; never scales up. Refuses non-finite input. */
export function clipL2(v: ArrayLike<number>, clipNorm: number): { clipped: Float32Array; norm: number; scale: number } {
  if (!(clipNorm > 0)) throw new RangeError(`clipNorm must be > 0, got ${clipNorm}`);
  if (!allFinite(v)) throw new RangeError('update holds a NaN or infinite value');
  const norm = l2Norm(v);
  const scale = norm > clipNorm ? clipNorm / norm : 1;
  const clipped = Float32Array.from(v, (x) => x * scale);
  // Float32 rounding can leave the norm a hair above C; shave it so that "‖clipped‖ ≤ C" holds exactly as checked.
  const after = l2Norm(clipped);
  if (after > clipNorm) {
    const fix = (clipNorm / after) * (1 - 1e-7);
    for (let i = 0; i < clipped.length; i++) clipped[i]! *= fix;
  }
  return { clipped, norm, scale };
}

export interface NoiseSource {
  /** One draw from N(0, 1). */
  gaussian(): number;
}

/**
 * Standard normal draws from the operating system's CSPRNG (Box–Muller on 53-bit uniforms). A seeded PRNG would let
 * whoever learns the seed subtract the noise.
 */
export function cryptoNoise(): NoiseSource {
  let pool = Buffer.alloc(0);
  let at = 0;
  const uniform = (): number => {
    if (at + 8 > pool.length) {
      pool = randomBytes(8192);
      at = 0;
    }
    const hi = pool.readUInt32BE(at) >>> 5; // 27 bits
    const lo = pool.readUInt32BE(at + 4) >>> 6; // 26 bits
    at += 8;
    return (hi * 67108864 + lo + 0.5) / 9007199254740992; // 53 random bits, centred: in (0, 1), so log() is finite
  };
  let spare: number | undefined;
  return {
    gaussian() {
      if (spare !== undefined) {
        const v = spare;
        spare = undefined;
        return v;
      }
      const r = Math.sqrt(-2 * Math.log(uniform()));
      const theta = 2 * Math.PI * uniform();
      spare = r * Math.sin(theta);
      return r * Math.cos(theta);
    },
  };
}

/** Reproducible noise for tests and benchmarks only. */
export function seededNoise(seed: number): NoiseSource {
  const rng = createRng(seed);
  return { gaussian: () => rng.normal() };
}

export function noiseStd(noiseMultiplier: number, clipNorm: number): number {
  if (!(noiseMultiplier >= 0 && clipNorm > 0)) throw new RangeError(`bad z=${noiseMultiplier} or C=${clipNorm}`);
  return noiseMultiplier * clipNorm;
}

/** The share each participant adds so that any ≥ `minContributors` shares sum to noise of std ≥ z·C. */
export function noiseShareStd(noiseMultiplier: number, clipNorm: number, minContributors: number): number {
  if (!(Number.isInteger(minContributors) && minContributors >= 1))
    throw new RangeError(`minContributors must be a positive integer, got ${minContributors}`);
  return noiseStd(noiseMultiplier, clipNorm) / Math.sqrt(minContributors);
}

export function addGaussianNoise(sum: ArrayLike<number>, std: number, source: NoiseSource): Float32Array {
  if (!(std >= 0)) throw new RangeError(`std must be >= 0, got ${std}`);
  const out = Float32Array.from(sum);
  if (std === 0) return out;
  for (let i = 0; i < out.length; i++) out[i]! += std * source.gaussian();
  return out;
}
