/**
 * The federated models (activities/federation/model.ts): the hand-written loops agree with ml-matrix products and
 * with finite-difference gradients, SGD learns real MNIST digits, FedAvg weighs by sample count, and the ONNX export
 * (common/onnx/builder.ts) run by onnxruntime-node in a worker thread predicts what the in-process model predicts.
 */
import { Matrix } from 'ml-matrix';
import { afterAll, describe, expect, it } from 'vitest';
import { OrtThread, floatTensor } from '../../activities/inference/ort.js';
import { federatedMnist, IMAGE_SIZE, NUM_CLASSES, subset, type Dataset } from '../../activities/federation/data.js';
import {
  addScaled,
  argmax,
  evaluate,
  fedAvg,
  gradient,
  initParams,
  paramCount,
  predict,
  subtract,
  toLayers,
  toOnnx,
  trainLocal,
  type ModelKind,
} from '../../activities/federation/model.js';

const fed = federatedMnist({ participants: 4, partition: { kind: 'iid' }, seed: 5, trainLimit: 1200 });
const first = (data: Dataset, n: number) =>
  subset(
    data,
    Uint32Array.from({ length: n }, (_, i) => i),
  );

/** softmax(relu(X·W1 + b1)·W2 + b2) with ml-matrix, the reference for the loops. */
function referenceForward(kind: ModelKind, params: Float32Array, data: Dataset): Matrix {
  let h = new Matrix(Array.from({ length: data.n }, (_, s) => Array.from(data.x.subarray(s * 784, (s + 1) * 784))));
  const layers = toLayers(kind, params);
  layers.forEach((l, k) => {
    const w = new Matrix(
      Array.from({ length: l.inDim }, (_, i) => Array.from(l.weights.subarray(i * l.outDim, (i + 1) * l.outDim))),
    );
    h = h.mmul(w).addRowVector(Array.from(l.bias));
    if (k < layers.length - 1) h = new Matrix(h.to2DArray().map((row) => row.map((v) => Math.max(0, v))));
  });
  return new Matrix(
    h.to2DArray().map((row) => {
      const m = Math.max(...row);
      const e = row.map((v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    }),
  );
}

describe('models', () => {
  it('when counted, then softmax regression has 7,850 parameters and the MLP 101,770', () => {
    expect(paramCount('softmax')).toBe(7850);
    expect(paramCount('mlp')).toBe(101_770);
    expect(initParams('mlp', 1).length).toBe(101_770);
  });

  it('when predicting, then the loops agree with ml-matrix products', () => {
    const data = first(fed.test, 20);
    for (const kind of ['softmax', 'mlp'] as const) {
      const params = trainLocal(kind, initParams(kind, 2), first(fed.train, 100), {
        epochs: 1,
        batchSize: 10,
        lr: 0.1,
        seed: 1,
      });
      const ours = predict(kind, params, data.x, data.n);
      const ref = referenceForward(kind, params, data);
      for (let s = 0; s < data.n; s++)
        for (let j = 0; j < NUM_CLASSES; j++) expect(ours[s * NUM_CLASSES + j]!).toBeCloseTo(ref.get(s, j), 5);
    }
  });

  it('when differentiating, then the gradient matches finite differences of the loss', () => {
    const data = first(fed.train, 8);
    for (const kind of ['softmax', 'mlp'] as const) {
      const params = initParams(kind, 3);
      // Move the softmax weights off zero so that the checked gradient is not trivially symmetric.
      for (let i = 0; i < params.length; i += 7) params[i]! += 0.01 * Math.sin(i);
      const grad = gradient(kind, params, data);
      // Coordinates with signal: the biases and weights of pixels that are non-zero in the batch.
      const pixel = Array.from({ length: IMAGE_SIZE }, (_, i) => i).find((i) => data.x[i]! > 0.5)!;
      const layers = toLayers(kind, params);
      const coords = [pixel * layers[0]!.outDim + 3, layers[0]!.inDim * layers[0]!.outDim + 1, paramCount(kind) - 2];
      for (const c of coords) {
        const h = 1e-2;
        const plus = Float32Array.from(params);
        const minus = Float32Array.from(params);
        plus[c]! += h;
        minus[c]! -= h;
        const numeric = (evaluate(kind, plus, data).loss - evaluate(kind, minus, data).loss) / (2 * h);
        expect(Math.abs(grad[c]!)).toBeGreaterThan(1e-4);
        expect(grad[c]!).toBeCloseTo(numeric, 3);
      }
    }
  });

  it('when trained by SGD on real digits, then held-out accuracy rises from chance to above 80%', () => {
    const test = first(fed.test, 500);
    const start = initParams('softmax', 1);
    expect(evaluate('softmax', start, test).accuracy).toBeLessThan(0.2);
    const trained = trainLocal('softmax', start, fed.train, { epochs: 2, batchSize: 20, lr: 0.5, seed: 1 });
    expect(evaluate('softmax', trained, test).accuracy).toBeGreaterThan(0.8);
    expect(Array.from(start.subarray(0, 10))).toEqual(new Array(10).fill(0)); // the input is not modified
  });

  it('when trained twice with the same seed, then the result is identical; another seed differs', () => {
    const opts = { epochs: 1, batchSize: 16, lr: 0.1, seed: 4 };
    const a = trainLocal('mlp', initParams('mlp', 1), fed.shards[0]!, opts);
    const b = trainLocal('mlp', initParams('mlp', 1), fed.shards[0]!, opts);
    const c = trainLocal('mlp', initParams('mlp', 1), fed.shards[0]!, { ...opts, seed: 5 });
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false);
  });

  it('when averaging, then FedAvg weighs each vector by its sample count', () => {
    const a = Float32Array.from([1, 0, 4]);
    const b = Float32Array.from([3, 2, 0]);
    expect(
      Array.from(
        fedAvg([
          { params: a, weight: 1 },
          { params: b, weight: 3 },
        ]),
      ),
    ).toEqual([2.5, 1.5, 1]);
    expect(Array.from(addScaled(a, subtract(b, a), 0.5))).toEqual([2, 1, 2]);
    expect(() => fedAvg([])).toThrow(/no updates/);
    expect(() =>
      fedAvg([
        { params: a, weight: 1 },
        { params: Float32Array.of(1), weight: 1 },
      ]),
    ).toThrow(/length/);
    expect(() => fedAvg([{ params: a, weight: 0 }])).toThrow(/weight/);
  });
});

describe('ONNX export', () => {
  const ort = new OrtThread();
  afterAll(() => ort.close());

  it('when exported and run by onnxruntime-node, then it predicts what the in-process model predicts', async () => {
    const data = first(fed.test, 64);
    for (const kind of ['softmax', 'mlp'] as const) {
      const params = trainLocal(kind, initParams(kind, 7), fed.shards[1]!, {
        epochs: 1,
        batchSize: 16,
        lr: 0.1,
        seed: 2,
      });
      const loaded = await ort.load({ key: kind, bytes: toOnnx(kind, params) });
      expect(loaded.signature.inputs[0]).toEqual({ name: 'input', type: 'float32', shape: ['batch', 784] });
      const { outputs } = await ort.run({ key: kind, feeds: { input: floatTensor(data.x, [data.n, IMAGE_SIZE]) } });
      const onnx = outputs.output!;
      expect(onnx.dims).toEqual([64, 10]);
      const ours = predict(kind, params, data.x, data.n);
      for (let i = 0; i < ours.length; i++) expect(Number(onnx.data[i])).toBeCloseTo(ours[i]!, 5);
      for (let s = 0; s < data.n; s++) expect(argmax(onnx.data as Float32Array, s)).toBe(argmax(ours, s));
    }
  });
});
