/**
 * The federated models, trained in-process on typed arrays: softmax regression (784→10, 7,850 parameters) and an MLP
 * 784→128 (ReLU)→10 (101,770 parameters), minibatch SGD on the cross-entropy for E epochs; FedAvg; export to ONNX
 * through the one shared builder (common/onnx/builder.ts).
 *
 * Exported API (stable; F2 codes against it):
 * ```ts
 * type ModelKind = 'softmax' | 'mlp'
 * paramCount(kind): number                                    // 7,850 | 101,770
 * initParams(kind, seed): Float32Array                        // flat parameter vector (layout below)
 * trainLocal(kind, params, samples: Dataset, { epochs, batchSize, lr, seed }): Float32Array  // new vector; input untouched
 * evaluate(kind, params, samples: Dataset): { accuracy, loss, n }
 * predict(kind, params, x: Float32Array, n): Float32Array     // class probabilities, row-major [n][10]
 * fedAvg(updates: { params: Float32Array; weight: number }[]): Float32Array   // Σ wᵢ·pᵢ / Σ wᵢ (weight = sample count)
 * subtract(a, b): Float32Array / addScaled(a, b, s): Float32Array   // deltas: local − global; global + s·delta
 * toLayers(kind, params): DenseLayer[]                        // M1's DenseLayer
 * toOnnx(kind, params): Uint8Array                            // ONNX model, input 'input' [batch,784] → 'output' [batch,10] softmax
 * ```
 * Layout of the flat vector, layer after layer: W row-major [inDim][outDim], then b [outDim] (the builder's layout).
 *
 * Why hand-written loops rather than ml-matrix products: the input is sparse (about 19% of MNIST pixels are non-zero),
 * so the first layer touches only the non-zero rows of W, and Float32Array rows feed ONNX without copies. The unit
 * tests check these loops against ml-matrix products and against finite-difference gradients.
 */
import { buildMlpOnnx, type DenseLayer } from '../../common/onnx/builder.js';
import { createRng, IMAGE_SIZE, NUM_CLASSES, type Dataset } from './data.js';

export type ModelKind = 'softmax' | 'mlp';
export const MODEL_KINDS: readonly ModelKind[] = ['softmax', 'mlp'];

const HIDDEN = 128;

interface LayerShape {
  inDim: number;
  outDim: number;
  /** Offset of W in the flat vector; b follows W. */
  offset: number;
}

function shapes(kind: ModelKind): LayerShape[] {
  const dims = kind === 'softmax' ? [IMAGE_SIZE, NUM_CLASSES] : [IMAGE_SIZE, HIDDEN, NUM_CLASSES];
  const out: LayerShape[] = [];
  let offset = 0;
  for (let l = 0; l + 1 < dims.length; l++) {
    out.push({ inDim: dims[l]!, outDim: dims[l + 1]!, offset });
    offset += dims[l]! * dims[l + 1]! + dims[l + 1]!;
  }
  return out;
}

export function paramCount(kind: ModelKind): number {
  return shapes(kind).reduce((s, l) => s + l.inDim * l.outDim + l.outDim, 0);
}

function checkParams(kind: ModelKind, params: Float32Array): void {
  if (params.length !== paramCount(kind))
    throw new RangeError(`${kind} has ${paramCount(kind)} parameters, got a vector of ${params.length}`);
}

/** Softmax regression starts at zero; the MLP with He-normal weights (ReLU) and zero biases. */
export function initParams(kind: ModelKind, seed: number): Float32Array {
  const params = new Float32Array(paramCount(kind));
  if (kind === 'softmax') return params;
  const rng = createRng(seed);
  for (const l of shapes(kind)) {
    const std = Math.sqrt(2 / l.inDim);
    for (let i = 0; i < l.inDim * l.outDim; i++) params[l.offset + i] = rng.normal() * std;
  }
  return params;
}

/**
 * Forward pass of one example: fills `acts[l]` with the output of layer l (ReLU applied on hidden layers, the last
 * holds softmax probabilities). Returns nothing; `acts` are reused buffers.
 */
function forward(layers: LayerShape[], params: Float32Array, x: Float32Array, xOffset: number, acts: Float32Array[]) {
  let input: Float32Array = x;
  let inOffset = xOffset;
  for (let l = 0; l < layers.length; l++) {
    const { inDim, outDim, offset } = layers[l]!;
    const out = acts[l]!;
    const bias = offset + inDim * outDim;
    for (let j = 0; j < outDim; j++) out[j] = params[bias + j]!;
    for (let i = 0; i < inDim; i++) {
      const v = input[inOffset + i]!;
      if (v === 0) continue; // sparse input rows and dead ReLUs cost nothing
      const row = offset + i * outDim;
      for (let j = 0; j < outDim; j++) out[j]! += v * params[row + j]!;
    }
    if (l < layers.length - 1) {
      for (let j = 0; j < outDim; j++) if (out[j]! < 0) out[j] = 0;
    } else softmaxInPlace(out);
    input = out;
    inOffset = 0;
  }
}

function softmaxInPlace(v: Float32Array): void {
  let max = -Infinity;
  for (const z of v) if (z > max) max = z;
  let sum = 0;
  for (let j = 0; j < v.length; j++) {
    v[j] = Math.exp(v[j]! - max);
    sum += v[j]!;
  }
  for (let j = 0; j < v.length; j++) v[j]! /= sum;
}

/**
 * Adds the cross-entropy gradient of one example to `grad` (after `forward` filled `acts`); `deltas` are scratch
 * buffers, one per layer.
 */
function backward(
  layers: LayerShape[],
  params: Float32Array,
  x: Float32Array,
  xOffset: number,
  label: number,
  acts: Float32Array[],
  deltas: Float64Array[],
  grad: Float64Array,
): void {
  const last = layers.length - 1;
  const top = deltas[last]!;
  top.set(acts[last]!);
  top[label]! -= 1; // d(cross-entropy)/d(logits) = p − onehot
  for (let l = last; l >= 0; l--) {
    const { inDim, outDim, offset } = layers[l]!;
    const delta = deltas[l]!;
    const input: Float32Array = l === 0 ? x : acts[l - 1]!;
    const inOffset = l === 0 ? xOffset : 0;
    const bias = offset + inDim * outDim;
    for (let j = 0; j < outDim; j++) grad[bias + j]! += delta[j]!;
    const below = l > 0 ? deltas[l - 1]! : undefined;
    for (let i = 0; i < inDim; i++) {
      const v = input[inOffset + i]!;
      const row = offset + i * outDim;
      if (v !== 0) for (let j = 0; j < outDim; j++) grad[row + j]! += v * delta[j]!;
      if (below) {
        // ReLU: the gradient passes only where the activation was positive.
        if (v <= 0) below[i] = 0;
        else {
          let s = 0;
          for (let j = 0; j < outDim; j++) s += params[row + j]! * delta[j]!;
          below[i] = s;
        }
      }
    }
  }
}

function activations(layers: LayerShape[]): Float32Array[] {
  return layers.map((l) => new Float32Array(l.outDim));
}

function deltaBuffers(layers: LayerShape[]): Float64Array[] {
  return layers.map((l) => new Float64Array(l.outDim));
}

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  /** Learning rate of plain SGD. */
  lr: number;
  /** Seeds the order of the examples in each epoch. */
  seed: number;
}

/** Minibatch SGD from `params` on `samples`; returns the new parameters and leaves `params` untouched. */
export function trainLocal(
  kind: ModelKind,
  params: Float32Array,
  samples: Dataset,
  options: TrainOptions,
): Float32Array {
  checkParams(kind, params);
  const { epochs, batchSize, lr } = options;
  if (!(epochs >= 0 && batchSize >= 1 && lr > 0))
    throw new RangeError(`bad training options ${JSON.stringify(options)}`);
  const layers = shapes(kind);
  const w = Float32Array.from(params);
  const grad = new Float64Array(w.length);
  const acts = activations(layers);
  const deltas = deltaBuffers(layers);
  const rng = createRng(options.seed);
  const order = Uint32Array.from({ length: samples.n }, (_, i) => i);
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    for (let start = 0; start < samples.n; start += batchSize) {
      const end = Math.min(start + batchSize, samples.n);
      grad.fill(0);
      for (let k = start; k < end; k++) {
        const s = order[k]!;
        forward(layers, w, samples.x, s * IMAGE_SIZE, acts);
        backward(layers, w, samples.x, s * IMAGE_SIZE, samples.y[s]!, acts, deltas, grad);
      }
      const step = lr / (end - start);
      for (let p = 0; p < w.length; p++) w[p]! -= step * grad[p]!;
    }
  }
  return w;
}

/** Mean cross-entropy gradient over `samples` (for tests: finite differences check `backward`). */
export function gradient(kind: ModelKind, params: Float32Array, samples: Dataset): Float64Array {
  checkParams(kind, params);
  const layers = shapes(kind);
  const grad = new Float64Array(params.length);
  const acts = activations(layers);
  const deltas = deltaBuffers(layers);
  for (let s = 0; s < samples.n; s++) {
    forward(layers, params, samples.x, s * IMAGE_SIZE, acts);
    backward(layers, params, samples.x, s * IMAGE_SIZE, samples.y[s]!, acts, deltas, grad);
  }
  for (let p = 0; p < grad.length; p++) grad[p]! /= samples.n;
  return grad;
}

/** Class probabilities, row-major [n][10]. */
export function predict(kind: ModelKind, params: Float32Array, x: Float32Array, n: number): Float32Array {
  checkParams(kind, params);
  const layers = shapes(kind);
  const acts = activations(layers);
  const out = new Float32Array(n * NUM_CLASSES);
  for (let s = 0; s < n; s++) {
    forward(layers, params, x, s * IMAGE_SIZE, acts);
    out.set(acts[layers.length - 1]!, s * NUM_CLASSES);
  }
  return out;
}

export function argmax(probs: ArrayLike<number>, row: number, width = NUM_CLASSES): number {
  let best = 0;
  for (let j = 1; j < width; j++) if (probs[row * width + j]! > probs[row * width + best]!) best = j;
  return best;
}

/** Accuracy and mean cross-entropy on `samples`. */
export function evaluate(
  kind: ModelKind,
  params: Float32Array,
  samples: Dataset,
): { accuracy: number; loss: number; n: number } {
  const probs = predict(kind, params, samples.x, samples.n);
  let correct = 0;
  let loss = 0;
  for (let s = 0; s < samples.n; s++) {
    const label = samples.y[s]!;
    if (argmax(probs, s) === label) correct++;
    loss -= Math.log(Math.max(probs[s * NUM_CLASSES + label]!, 1e-12));
  }
  return { accuracy: samples.n ? correct / samples.n : 0, loss: samples.n ? loss / samples.n : 0, n: samples.n };
}

/** FedAvg (McMahan et al. 2017): the mean of the vectors weighted by each participant's sample count. */
export function fedAvg(updates: ReadonlyArray<{ params: Float32Array; weight: number }>): Float32Array {
  if (updates.length === 0) throw new RangeError('fedAvg of no updates');
  const length = updates[0]!.params.length;
  const acc = new Float64Array(length);
  let total = 0;
  for (const { params, weight } of updates) {
    if (params.length !== length) throw new RangeError(`update of length ${params.length}, expected ${length}`);
    if (!(weight > 0)) throw new RangeError(`update weight must be > 0, got ${weight}`);
    total += weight;
    for (let i = 0; i < length; i++) acc[i]! += weight * params[i]!;
  }
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = acc[i]! / total;
  return out;
}

/** a − b (a participant's update: local parameters minus the global ones). */
export function subtract(a: Float32Array, b: Float32Array): Float32Array {
  if (a.length !== b.length) throw new RangeError(`lengths ${a.length} and ${b.length}`);
  return a.map((v, i) => v - b[i]!);
}

/** a + scale·b (the global model moved by an aggregated update). */
export function addScaled(a: Float32Array, b: ArrayLike<number>, scale = 1): Float32Array {
  if (a.length !== b.length) throw new RangeError(`lengths ${a.length} and ${b.length}`);
  return a.map((v, i) => v + scale * b[i]!);
}

/** The model as the shared builder's dense layers (weights are views into `params`, not copies). */
export function toLayers(kind: ModelKind, params: Float32Array): DenseLayer[] {
  checkParams(kind, params);
  return shapes(kind).map(({ inDim, outDim, offset }) => ({
    inDim,
    outDim,
    weights: params.subarray(offset, offset + inDim * outDim),
    bias: params.subarray(offset + inDim * outDim, offset + inDim * outDim + outDim),
  }));
}

/** ONNX bytes: input 'input' float32 [batch, 784] → output 'output' float32 [batch, 10] class probabilities. */
export function toOnnx(kind: ModelKind, params: Float32Array, docString?: string): Uint8Array {
  return buildMlpOnnx({
    layers: toLayers(kind, params),
    hidden: 'relu',
    output: 'softmax',
    producer: 'agent-agency federation',
    docString: docString ?? `${kind} on MNIST (784 → ${kind === 'mlp' ? `${HIDDEN} → ` : ''}10), FedAvg`,
  });
}
