/**
 * The ONNX builder (common/onnx/builder.ts) against real onnxruntime-node in a worker thread (activities/inference/
 * ort.ts): built models load, report their signature, and agree with a plain-JS float32 forward pass; the bad
 * canaries are bad in exactly their way (slow, erroring, wrong classes) and otherwise keep the model's signature.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { OrtThread, floatTensor, rows } from '../../activities/inference/ort.js';
import { buildCanaryOnnx, buildMlpOnnx, forwardMlp, permuteClasses, randomMlp } from '../../common/onnx/builder.js';

const ort = new OrtThread();
afterAll(() => ort.close());

function randomInput(batch: number, dim: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: batch * dim }, () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1);
}

async function runModel(key: string, bytes: Uint8Array, input: Float32Array, batch: number, dim: number) {
  await ort.load({ key, bytes });
  return ort.run({ key, feeds: { input: floatTensor(input, [batch, dim]) } });
}

describe('buildMlpOnnx', () => {
  it('when a softmax regression is built, then ORT agrees with the JS forward pass and reports the signature', async () => {
    const graph = randomMlp([20, 4], 1);
    const input = randomInput(5, 20, 7);
    const loaded = await ort.load({ key: 'softmax', bytes: buildMlpOnnx(graph) });
    expect(loaded.signature).toEqual({
      inputs: [{ name: 'input', type: 'float32', shape: ['batch', 20] }],
      outputs: [{ name: 'output', type: 'float32', shape: ['batch', 4] }],
    });
    const { outputs } = await ort.run({ key: 'softmax', feeds: { input: floatTensor(input, [5, 20]) } });
    expect(outputs.output!.dims).toEqual([5, 4]);
    const expected = forwardMlp(graph, input, 5);
    outputs.output!.data.forEach((v, i) => expect(Number(v)).toBeCloseTo(expected[i]!, 5));
    for (const row of rows(outputs.output!)) expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  it('when an MLP with ReLU and logits is built under other names, then ORT agrees with the JS forward pass', async () => {
    const graph = randomMlp([30, 16, 8, 3], 2, { output: 'logits', inputName: 'pixels', outputName: 'scores' });
    const input = randomInput(7, 30, 3);
    const loaded = await ort.load({ key: 'mlp', bytes: buildMlpOnnx(graph), settings: { intraOpNumThreads: 1 } });
    expect(loaded.signature.inputs[0]).toEqual({ name: 'pixels', type: 'float32', shape: ['batch', 30] });
    const { outputs } = await ort.run({ key: 'mlp', feeds: { pixels: floatTensor(input, [7, 30]) } });
    const expected = forwardMlp(graph, input, 7);
    expect(expected.some((v) => v < 0)).toBe(true); // logits, not probabilities
    outputs.scores!.data.forEach((v, i) => expect(Number(v)).toBeCloseTo(expected[i]!, 4));
  });

  it('when the hidden activation is gelu, then ORT (which fuses it into Gelu) agrees with the JS forward pass', async () => {
    const graph = randomMlp([12, 10, 4], 4, { hidden: 'gelu', output: 'logits' });
    const input = randomInput(3, 12, 9);
    const { outputs } = await runModel('gelu', buildMlpOnnx(graph), input, 3, 12);
    const expected = forwardMlp(graph, input, 3);
    outputs.output!.data.forEach((v, i) => expect(Number(v)).toBeCloseTo(expected[i]!, 5));
    const relu = forwardMlp({ ...graph, hidden: 'relu' }, input, 3);
    expect(relu.some((v, i) => Math.abs(v - expected[i]!) > 1e-3)).toBe(true);
  });

  it('when the caller picks names the builder might use inside, then the model still loads', async () => {
    const graph = randomMlp([5, 4, 3], 3, { inputName: 'dense0', outputName: 'probs' });
    const loaded = await ort.load({ key: 'names', bytes: buildMlpOnnx(graph) });
    expect(loaded.signature.outputs[0]?.name).toBe('probs');
  });

  it('when layer sizes disagree, then the builder refuses', () => {
    const graph = randomMlp([4, 3], 1);
    expect(() => buildMlpOnnx({ ...graph, layers: [...graph.layers, ...randomMlp([4, 2], 1).layers] })).toThrow(
      /inDim/,
    );
  });
});

describe('buildCanaryOnnx', () => {
  const graph = randomMlp([16, 8, 5], 11);
  const input = randomInput(4, 16, 5);

  it('when the wrong canary runs, then it keeps the signature and answers a rotated class', async () => {
    const good = await runModel('good', buildMlpOnnx(graph), input, 4, 16);
    const bad = await runModel('wrong', buildCanaryOnnx(graph, { kind: 'wrong' }), input, 4, 16);
    const goodRows = rows(good.outputs.output!);
    const badRows = rows(bad.outputs.output!);
    goodRows.forEach((row, b) => row.forEach((_, c) => expect(badRows[b]![c]).toBeCloseTo(row[(c + 1) % 5]!, 5)));
    const argmax = (r: number[]) => r.indexOf(Math.max(...r));
    expect(goodRows.map(argmax)).not.toEqual(badRows.map(argmax));
    expect(forwardMlp(permuteClasses(graph, [4, 3, 2, 1, 0]), input, 4).length).toBe(20);
  });

  it('when the slow canary runs, then its outputs are unchanged and each run costs more', async () => {
    const good = await runModel('good', buildMlpOnnx(graph), input, 4, 16);
    const slowBytes = buildCanaryOnnx(graph, { kind: 'slow', size: 128, repeats: 40 });
    const slow = await runModel('slow', slowBytes, input, 4, 16);
    rows(slow.outputs.output!).forEach((row, b) =>
      row.forEach((v, c) => expect(v).toBeCloseTo(rows(good.outputs.output!)[b]![c]!, 5)),
    );
    const median = async (key: string) => {
      const times: number[] = [];
      for (let i = 0; i < 9; i++)
        times.push((await ort.run({ key, feeds: { input: floatTensor(input, [4, 16]) } })).runMs);
      return times.sort((a, b) => a - b)[4]!;
    };
    // 40 MatMuls of 128×128 are ~168 MFLOP per run against ~1 kFLOP for the model itself.
    expect(await median('slow')).toBeGreaterThan(5 * (await median('good')));
  });

  it('when the erroring canary has rate 1, then every run fails with an ORT error, and rate 0 never fails', async () => {
    await ort.load({ key: 'always', bytes: buildCanaryOnnx(graph, { kind: 'error', rate: 1 }) });
    await ort.load({ key: 'never', bytes: buildCanaryOnnx(graph, { kind: 'error', rate: 0 }) });
    const feeds = { input: floatTensor(input, [4, 16]) };
    for (let i = 0; i < 5; i++) {
      await expect(ort.run({ key: 'always', feeds })).rejects.toThrow(/out of|bounds|range/i);
      await expect(ort.run({ key: 'never', feeds })).resolves.toBeDefined();
    }
  });

  it('when the erroring canary has rate 0.5, then some runs fail and some succeed', async () => {
    await ort.load({ key: 'half', bytes: buildCanaryOnnx(graph, { kind: 'error', rate: 0.5, seed: 3 }) });
    const feeds = { input: floatTensor(input.subarray(0, 16), [1, 16]) };
    let failed = 0;
    for (let i = 0; i < 60; i++) await ort.run({ key: 'half', feeds }).catch(() => failed++);
    expect(failed).toBeGreaterThan(10);
    expect(failed).toBeLessThan(50);
  });

  it('when the erroring canary keys on a feature, then exactly the batches with a row above the bound fail', async () => {
    await ort.load({ key: 'feature', bytes: buildCanaryOnnx(graph, { kind: 'error', feature: 2, above: 0.5 }) });
    const ok = new Float32Array(16).fill(0.1);
    const trigger = Float32Array.from(ok, (v, i) => (i === 2 ? 0.9 : v));
    const good = await ort.run({ key: 'feature', feeds: { input: floatTensor(ok, [1, 16]) } });
    expect(rows(good.outputs.output!)[0]).toHaveLength(5);
    await expect(ort.run({ key: 'feature', feeds: { input: floatTensor(trigger, [1, 16]) } })).rejects.toThrow();
    const both = new Float32Array([...ok, ...trigger]);
    await expect(ort.run({ key: 'feature', feeds: { input: floatTensor(both, [2, 16]) } })).rejects.toThrow();
  });
});

describe('OrtThread', () => {
  it('when a session is released, then running it fails, and bad bytes fail to load with an error', async () => {
    await ort.load({
      key: 'gone',
      bytes: buildMlpOnnx(randomMlp([3, 2], 1)),
      settings: { configEntries: { 'session.intra_op.allow_spinning': '0' } },
    });
    expect(await ort.release({ key: 'gone' })).toEqual({ released: true });
    await expect(ort.run({ key: 'gone', feeds: { input: floatTensor([1, 2, 3], [1, 3]) } })).rejects.toThrow(
      /no session/,
    );
    await expect(ort.load({ key: 'junk', bytes: new Uint8Array([1, 2, 3, 4]) })).rejects.toThrow();
    expect(await ort.release({ key: 'junk' })).toEqual({ released: false });
  });
});
