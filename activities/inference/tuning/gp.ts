/**
 * A Gaussian-process surrogate: Matérn 5/2 kernel with one length scale per search dimension (ARD), a signal variance
 * and a noise variance, fitted by maximising the log marginal likelihood. Linear algebra is ml-matrix's (Cholesky
 * decomposition and its solve); only the kernel entries and the gradient traces are computed here.
 *
 * Targets are standardised (mean 0, variance 1) before fitting, so the hyper-parameter bounds below mean the same for
 * any objective. Hyper-parameters live in log space; the likelihood is maximised by projected Adam steps on its
 * analytic gradient, from the previous fit (warm start) and a few random starts, keeping the best.
 */
import { CholeskyDecomposition, Matrix } from 'ml-matrix';
import type { Encoding } from './encoding.js';
import type { Rng } from './rng.js';

const SQRT5 = Math.sqrt(5);
const LOG_2PI = Math.log(2 * Math.PI);
/** Added to the diagonal so that a near-singular K still decomposes; small against the noise floor. */
const JITTER = 1e-9;

/** Bounds of the log-parameters: length scales in unit-cube units, variances in standardised units. */
const BOUNDS = {
  logLength: [Math.log(0.02), Math.log(20)],
  logSignal: [Math.log(0.05), Math.log(20)],
  logNoise: [Math.log(1e-6), Math.log(0.5)],
} as const;

export interface GpHyper {
  /** One per search dimension. */
  logLengths: number[];
  logSignal: number;
  logNoise: number;
}

export interface FitOptions {
  /** Random starts besides the warm start. */
  restarts: number;
  /** Adam steps per start. */
  steps: number;
  /** The previous fit, to start from. */
  warm?: GpHyper;
}

export const DEFAULT_FIT: FitOptions = { restarts: 2, steps: 60 };

function clamp(v: number, [lo, hi]: readonly [number, number]): number {
  return Math.min(hi, Math.max(lo, v));
}

/** Per-dimension squared distances between rows a and b of encoded points: q[d] = Σ over d's columns of Δ²/weight. */
function dimDistances(enc: Encoding, a: readonly number[], b: readonly number[], dims: number): Float64Array {
  const q = new Float64Array(dims);
  for (let c = 0; c < enc.width; c++) {
    const diff = a[c]! - b[c]!;
    if (diff === 0) continue;
    const d = enc.columnDim[c]!;
    q[d] = q[d]! + (diff * diff) / enc.columnWeight[c]!;
  }
  return q;
}

export class GaussianProcess {
  private constructor(
    private readonly enc: Encoding,
    private readonly X: number[][],
    readonly hyper: GpHyper,
    private readonly yMean: number,
    private readonly yStd: number,
    private readonly alpha: Matrix,
    private readonly kInv: Matrix,
    /** The standardised log marginal likelihood at `hyper`. */
    readonly logMarginalLikelihood: number,
  ) {}

  /** Fits the hyper-parameters to (X, y) and conditions on them. X rows are encoded points. */
  static fit(enc: Encoding, X: number[][], y: number[], rng: Rng, opts: FitOptions = DEFAULT_FIT): GaussianProcess {
    const n = y.length;
    if (n === 0) throw new RangeError('a Gaussian process needs at least one observation');
    const yMean = y.reduce((s, v) => s + v, 0) / n;
    const variance = y.reduce((s, v) => s + (v - yMean) ** 2, 0) / n;
    const yStd = variance > 0 ? Math.sqrt(variance) : 1;
    const ys = y.map((v) => (v - yMean) / yStd);
    const dims = enc.space.length;
    // Pairwise per-dimension distances do not depend on the hyper-parameters: computed once per fit.
    const Q: Float64Array[][] = X.map((a, i) => X.slice(0, i + 1).map((b) => dimDistances(enc, a, b, dims)));

    const starts: GpHyper[] = [];
    starts.push(opts.warm && opts.warm.logLengths.length === dims ? opts.warm : defaultHyper(dims));
    for (let r = 0; r < opts.restarts; r++) starts.push(randomHyper(dims, rng));
    let best: { hyper: GpHyper; lml: number } | undefined;
    for (const start of starts) {
      const found = maximise(Q, ys, start, opts.steps);
      if (found && (!best || found.lml > best.lml)) best = found;
    }
    const hyper = best?.hyper ?? defaultHyper(dims);
    const state = likelihood(Q, ys, hyper, true);
    if (!state) throw new Error('the kernel matrix is not positive definite even with jitter');
    return new GaussianProcess(enc, X, hyper, yMean, yStd, state.alpha, state.kInv, state.lml);
  }

  /** Posterior mean and standard deviation of the latent function at encoded points, in the objective's units. */
  predict(points: number[][]): { mean: number[]; std: number[] } {
    const dims = this.enc.space.length;
    const signal = Math.exp(this.hyper.logSignal);
    const invL2 = this.hyper.logLengths.map((l) => Math.exp(-2 * l));
    const kStar = new Matrix(points.length, this.X.length);
    points.forEach((p, i) =>
      this.X.forEach((x, j) => {
        const q = dimDistances(this.enc, p, x, dims);
        kStar.set(i, j, matern(signal, invL2, q).k);
      }),
    );
    const meanM = kStar.mmul(this.alpha);
    const kk = kStar.mmul(this.kInv);
    const mean: number[] = [];
    const std: number[] = [];
    for (let i = 0; i < points.length; i++) {
      let quad = 0;
      for (let j = 0; j < this.X.length; j++) quad += kk.get(i, j) * kStar.get(i, j);
      mean.push(this.yMean + this.yStd * meanM.get(i, 0));
      std.push(this.yStd * Math.sqrt(Math.max(signal - quad, 1e-12)));
    }
    return { mean, std };
  }
}

function defaultHyper(dims: number): GpHyper {
  return { logLengths: Array.from({ length: dims }, () => Math.log(0.5)), logSignal: 0, logNoise: Math.log(1e-3) };
}

function randomHyper(dims: number, rng: Rng): GpHyper {
  const draw = ([lo, hi]: readonly [number, number]) => lo + (hi - lo) * rng.next();
  return {
    logLengths: Array.from({ length: dims }, () => draw([Math.log(0.05), Math.log(2)])),
    logSignal: draw([Math.log(0.3), Math.log(3)]),
    logNoise: draw([Math.log(1e-5), Math.log(0.05)]),
  };
}

/** Matérn 5/2 at per-dimension squared distances q: the value and, per dimension, ∂k/∂(log length). */
function matern(signal: number, invL2: readonly number[], q: Float64Array): { k: number; dLength: Float64Array } {
  let r2 = 0;
  for (let d = 0; d < q.length; d++) r2 += q[d]! * invL2[d]!;
  const r = Math.sqrt(r2);
  const e = Math.exp(-SQRT5 * r);
  const k = signal * (1 + SQRT5 * r + (5 / 3) * r2) * e;
  // dk/dr = -(5/3) s r (1 + √5 r) e^{-√5 r} and ∂r/∂log l_d = -q_d / (l_d² r): the r cancels.
  const g = (5 / 3) * signal * (1 + SQRT5 * r) * e;
  const dLength = new Float64Array(q.length);
  for (let d = 0; d < q.length; d++) dLength[d] = g * q[d]! * invL2[d]!;
  return { k, dLength };
}

interface LikelihoodState {
  lml: number;
  grad: number[];
  alpha: Matrix;
  kInv: Matrix;
}

/**
 * The log marginal likelihood of standardised targets ys under `h`, and (unless skipped) its gradient with respect to
 * [log lengths…, log signal, log noise]: ½ tr((ααᵀ − K⁻¹) ∂K/∂θ). Undefined when K does not decompose.
 */
function likelihood(Q: Float64Array[][], ys: number[], h: GpHyper, skipGrad: boolean): LikelihoodState | undefined {
  const n = ys.length;
  const dims = h.logLengths.length;
  const signal = Math.exp(h.logSignal);
  const noise = Math.exp(h.logNoise);
  const invL2 = h.logLengths.map((l) => Math.exp(-2 * l));
  const K = new Matrix(n, n);
  const dL: Float64Array[][] = [];
  for (let i = 0; i < n; i++) {
    dL.push([]);
    for (let j = 0; j <= i; j++) {
      const { k, dLength } = matern(signal, invL2, Q[i]![j]!);
      K.set(i, j, k);
      K.set(j, i, k);
      dL[i]!.push(dLength);
    }
    K.set(i, i, K.get(i, i) + noise + JITTER);
  }
  const chol = new CholeskyDecomposition(K);
  if (!chol.isPositiveDefinite()) return undefined;
  const yv = Matrix.columnVector(ys);
  const alpha = chol.solve(yv);
  const L = chol.lowerTriangularMatrix;
  let logDet = 0;
  for (let i = 0; i < n; i++) logDet += Math.log(L.get(i, i));
  let fit = 0;
  for (let i = 0; i < n; i++) fit += ys[i]! * alpha.get(i, 0);
  const lml = -0.5 * fit - logDet - 0.5 * n * LOG_2PI;
  const kInv = chol.solve(Matrix.eye(n));
  if (skipGrad) return { lml, grad: [], alpha, kInv };
  // W = ααᵀ − K⁻¹; each gradient entry is ½ Σ_ij W_ij ∂K_ij (symmetric: off-diagonal pairs counted twice).
  const grad = new Array<number>(dims + 2).fill(0);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const w = (alpha.get(i, 0) * alpha.get(j, 0) - kInv.get(i, j)) * (i === j ? 0.5 : 1);
      const d = dL[i]![j]!;
      for (let t = 0; t < dims; t++) grad[t]! += w * d[t]!;
      grad[dims]! += w * (K.get(i, j) - (i === j ? noise + JITTER : 0));
      if (i === j) grad[dims + 1]! += w * noise;
    }
  }
  return { lml, grad, alpha, kInv };
}

/** Projected Adam ascent of the log marginal likelihood from `start`; the best point visited. */
function maximise(
  Q: Float64Array[][],
  ys: number[],
  start: GpHyper,
  steps: number,
): { hyper: GpHyper; lml: number } | undefined {
  const dims = start.logLengths.length;
  const bounds = [...start.logLengths.map(() => BOUNDS.logLength), BOUNDS.logSignal, BOUNDS.logNoise];
  let theta = [...start.logLengths, start.logSignal, start.logNoise].map((v, i) => clamp(v, bounds[i]!));
  const toHyper = (t: number[]): GpHyper => ({
    logLengths: t.slice(0, dims),
    logSignal: t[dims]!,
    logNoise: t[dims + 1]!,
  });
  const m = new Array<number>(theta.length).fill(0);
  const v = new Array<number>(theta.length).fill(0);
  const [b1, b2, rate] = [0.9, 0.999, 0.1];
  let best: { hyper: GpHyper; lml: number } | undefined;
  for (let s = 1; s <= steps; s++) {
    const state = likelihood(Q, ys, toHyper(theta), false);
    if (!state) break;
    if (!best || state.lml > best.lml) best = { hyper: toHyper(theta), lml: state.lml };
    theta = theta.map((t, i) => {
      const g = state.grad[i]!;
      m[i] = b1 * m[i]! + (1 - b1) * g;
      v[i] = b2 * v[i]! + (1 - b2) * g * g;
      const step = (rate * (m[i] / (1 - b1 ** s))) / (Math.sqrt(v[i] / (1 - b2 ** s)) + 1e-8);
      return clamp(t + step, bounds[i]!);
    });
  }
  return best;
}
