/**
 * THE ONNX builder of the project (onnx-proto): float32 dense networks — softmax regression is one layer, an MLP is
 * several with ReLU between — serialised as ONNX bytes that onnxruntime-node loads. Federation exports its trained
 * parameters through it, and the model tests and benchmarks build their models (good and deliberately bad) with it.
 *
 * Exported API (others import these; keep them stable):
 *   interface DenseLayer { inDim; outDim; weights: Float32Array (row-major [inDim][outDim]); bias: Float32Array }
 *   interface MlpGraph   { layers; hidden?: 'relu' | 'gelu' (exact erf form, which ORT fuses into Gelu); output: 'softmax' | 'logits'; inputName? = 'input' (float32
 *                          ['batch', inDim]); outputName? = 'output' (float32 ['batch', outDim]); producer?; docString? }
 *   buildMlpOnnx(graph): Uint8Array                      the model
 *   buildCanaryOnnx(graph, defect): Uint8Array           a deliberately bad model with the same signature:
 *     { kind: 'slow', size?: 256, repeats }              + a chain of `repeats` MatMuls of a size×size matrix per run,
 *                                                          (a fixed cost per batch, on input-dependent data so that
 *                                                          constant folding cannot remove it; outputs are unchanged)
 *     { kind: 'error', rate }                            each run fails with probability `rate` (1 = always), drawn
 *                                                          inside the graph (RandomUniform; `seed` makes it repeatable)
 *     { kind: 'error', feature, above }                  a run fails when any row has input[row][feature] > above
 *                                                          (deterministic: the caller chooses which requests fail)
 *     { kind: 'wrong', permutation? }                    output class i answers what the original's class
 *                                                          permutation[i] would (default: rotate by one), so it is
 *                                                          wrong on labelled data while looking healthy otherwise
 *   permuteClasses(graph, permutation?): MlpGraph        the graph behind the 'wrong' canary
 *   randomMlp(dims, seed, opts?): MlpGraph               seeded random weights (dims = [in, hidden..., out])
 *   forwardMlp(graph, input, batch): Float32Array        plain-JS float32 forward pass, the reference for tests
 * Internal tensors are named mlp.* and canary.*, so any other input/output name is free to choose.
 * Run-time failures surface from onnxruntime as a rejected run() (an out-of-range Gather index), never as wrong
 * numbers, so an error canary is visible as errors.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import { mulberry32 } from '../stats.js';

const { onnx } = onnxProto;
type INode = OnnxTypes.INodeProto;
type ITensor = OnnxTypes.ITensorProto;
type IValueInfo = OnnxTypes.IValueInfoProto;

export interface DenseLayer {
  inDim: number;
  outDim: number;
  /** Row-major [inDim][outDim]. */
  weights: Float32Array;
  bias: Float32Array;
}

export interface MlpGraph {
  layers: DenseLayer[];
  /** Between layers (default relu). gelu is the exact erf form x·½·(1+erf(x/√2)) from Div/Erf/Add/Mul nodes. */
  hidden?: 'relu' | 'gelu';
  output: 'softmax' | 'logits';
  inputName?: string;
  outputName?: string;
  producer?: string;
  docString?: string;
}

export type CanaryDefect =
  | { kind: 'slow'; size?: number; repeats: number }
  | { kind: 'error'; rate: number; seed?: number }
  | { kind: 'error'; feature: number; above: number }
  | { kind: 'wrong'; permutation?: number[] };

/** Opset 13: Softmax over the last axis only, Unsqueeze/ReduceSum take axes as inputs. */
const OPSET = 13;
const IR_VERSION = 8;
const F32 = onnx.TensorProto.DataType.FLOAT;
const I64 = onnx.TensorProto.DataType.INT64;

function floatTensor(name: string, dims: number[], values: Float32Array): ITensor {
  const copy = Float32Array.from(values); // own buffer: rawData must start at offset 0 of the bytes we hand over
  return { name, dims, dataType: F32, rawData: new Uint8Array(copy.buffer) };
}

function int64Tensor(name: string, dims: number[], values: number[]): ITensor {
  const data = BigInt64Array.from(values.map((v) => BigInt(v)));
  return { name, dims, dataType: I64, rawData: new Uint8Array(data.buffer) };
}

function valueInfo(name: string, dims: (number | string)[]): IValueInfo {
  return {
    name,
    type: {
      tensorType: {
        elemType: F32,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, number> = {}): INode {
  const attribute = Object.entries(attrs).map(([name, v]) =>
    Number.isInteger(v)
      ? { name, type: onnx.AttributeProto.AttributeType.INT, i: v }
      : { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v },
  );
  return { opType, input: inputs, output: outputs, name: `${opType}_${outputs[0]}`, attribute };
}

function checkGraph(graph: MlpGraph): void {
  if (graph.layers.length === 0) throw new Error('an MLP needs at least one layer');
  graph.layers.forEach((l, i) => {
    if (l.weights.length !== l.inDim * l.outDim) throw new Error(`layer ${i}: weights must hold inDim*outDim values`);
    if (l.bias.length !== l.outDim) throw new Error(`layer ${i}: bias must hold outDim values`);
    const prev = graph.layers[i - 1];
    if (prev && prev.outDim !== l.inDim)
      throw new Error(`layer ${i}: inDim ${l.inDim} ≠ previous outDim ${prev.outDim}`);
  });
}

function activation(kind: 'relu' | 'gelu', x: string, i: number, nodes: INode[], initializers: ITensor[]): string {
  if (kind === 'relu') {
    nodes.push(node('Relu', [x], [`mlp.relu${i}`]));
    return `mlp.relu${i}`;
  }
  if (i === 0) {
    initializers.push(floatTensor('mlp.gelu_sqrt2', [], new Float32Array([Math.SQRT2])));
    initializers.push(floatTensor('mlp.gelu_one', [], new Float32Array([1])));
    initializers.push(floatTensor('mlp.gelu_half', [], new Float32Array([0.5])));
  }
  nodes.push(
    node('Div', [x, 'mlp.gelu_sqrt2'], [`mlp.gelu_div${i}`]),
    node('Erf', [`mlp.gelu_div${i}`], [`mlp.gelu_erf${i}`]),
    node('Add', [`mlp.gelu_erf${i}`, 'mlp.gelu_one'], [`mlp.gelu_add${i}`]),
    node('Mul', [x, `mlp.gelu_add${i}`], [`mlp.gelu_mul${i}`]),
    node('Mul', [`mlp.gelu_mul${i}`, 'mlp.gelu_half'], [`mlp.gelu${i}`]),
  );
  return `mlp.gelu${i}`;
}

/** erf by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7, below float32 resolution near 1). */
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x >= 0 ? y : -y;
}

interface Parts {
  nodes: INode[];
  initializers: ITensor[];
  /** Name of the tensor holding the network's output before any canary defect is mixed in. */
  result: string;
}

function mlpParts(graph: MlpGraph, inputName: string): Parts {
  checkGraph(graph);
  const nodes: INode[] = [];
  const initializers: ITensor[] = [];
  let current = inputName;
  graph.layers.forEach((layer, i) => {
    initializers.push(floatTensor(`mlp.W${i}`, [layer.inDim, layer.outDim], layer.weights));
    initializers.push(floatTensor(`mlp.B${i}`, [layer.outDim], layer.bias));
    const out = `mlp.dense${i}`;
    nodes.push(node('Gemm', [current, `mlp.W${i}`, `mlp.B${i}`], [out]));
    current = out;
    if (i < graph.layers.length - 1) current = activation(graph.hidden ?? 'relu', current, i, nodes, initializers);
  });
  if (graph.output === 'softmax') {
    nodes.push(node('Softmax', [current], ['mlp.probs'], { axis: -1 }));
    current = 'mlp.probs';
  }
  return { nodes, initializers, result: current };
}

function encode(graph: MlpGraph, parts: Parts, extra: string | undefined): Uint8Array {
  const inputName = graph.inputName ?? 'input';
  const outputName = graph.outputName ?? 'output';
  const first = graph.layers[0]!;
  const last = graph.layers[graph.layers.length - 1]!;
  const nodes = [...parts.nodes, node('Identity', [parts.result], [outputName])];
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: graph.producer ?? 'agent-agency',
    producerVersion: '1',
    docString: [graph.docString, extra].filter(Boolean).join(' '),
    graph: {
      name: 'mlp',
      node: nodes,
      initializer: parts.initializers,
      input: [valueInfo(inputName, ['batch', first.inDim])],
      output: [valueInfo(outputName, ['batch', last.outDim])],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

export function buildMlpOnnx(graph: MlpGraph): Uint8Array {
  return encode(graph, mlpParts(graph, graph.inputName ?? 'input'), undefined);
}

/** Adds `zero` (a [1] or [batch,1] tensor that is 0 whenever the run succeeds) to the result, keeping the signature. */
function mixIn(parts: Parts, zero: string): Parts {
  const out = 'canary.out';
  return { ...parts, nodes: [...parts.nodes, node('Add', [parts.result, zero], [out])], result: out };
}

/**
 * A run fails when `trigger` (bool) is true: its index becomes 1,000,000 into a one-element constant, which Gather
 * rejects; when false, the gathered value is 0 and the outputs are untouched.
 */
function failWhen(parts: Parts, trigger: string, unsqueeze: boolean): Parts {
  const nodes = [
    node('Cast', [trigger], ['canary.fail_i'], { to: I64 }),
    node('Mul', ['canary.fail_i', 'canary.fail_big'], ['canary.fail_idx']),
    node('Gather', ['canary.fail_zero', 'canary.fail_idx'], ['canary.fail_val'], { axis: 0 }),
  ];
  const initializers = [
    int64Tensor('canary.fail_big', [], [1_000_000]),
    floatTensor('canary.fail_zero', [1], new Float32Array([0])),
  ];
  let zero = 'canary.fail_val';
  if (unsqueeze) {
    initializers.push(int64Tensor('canary.fail_axes', [1], [1]));
    nodes.push(node('Unsqueeze', ['canary.fail_val', 'canary.fail_axes'], ['canary.fail_col']));
    zero = 'canary.fail_col';
  }
  return mixIn(
    { ...parts, nodes: [...parts.nodes, ...nodes], initializers: [...parts.initializers, ...initializers] },
    zero,
  );
}

function slowParts(parts: Parts, inputName: string, size: number, repeats: number): Parts {
  // Start from the input's mean so the chain depends on run-time data (ORT folds constant-only subgraphs away).
  // The identity matrix keeps the values bounded; ORT does not special-case it, so each MatMul costs size³.
  const identity = new Float32Array(size * size);
  for (let i = 0; i < size; i++) identity[i * size + i] = 1;
  const nodes: INode[] = [node('ReduceMean', [inputName], ['canary.slow_mean'], { keepdims: 1 })];
  nodes.push(node('Mul', ['canary.slow_eye', 'canary.slow_mean'], ['canary.slow_0']));
  for (let r = 0; r < repeats; r++)
    nodes.push(node('MatMul', [`canary.slow_${r}`, 'canary.slow_eye'], [`canary.slow_${r + 1}`]));
  nodes.push(node('ReduceSum', [`canary.slow_${repeats}`], ['canary.slow_sum'], { keepdims: 0 }));
  nodes.push(node('Mul', ['canary.slow_sum', 'canary.slow_nil'], ['canary.slow_zero']));
  const initializers = [
    floatTensor('canary.slow_eye', [size, size], identity),
    floatTensor('canary.slow_nil', [], new Float32Array([0])),
  ];
  return mixIn(
    { ...parts, nodes: [...parts.nodes, ...nodes], initializers: [...parts.initializers, ...initializers] },
    'canary.slow_zero',
  );
}

export function buildCanaryOnnx(graph: MlpGraph, defect: CanaryDefect): Uint8Array {
  const inputName = graph.inputName ?? 'input';
  if (defect.kind === 'wrong') {
    return encode(graph, mlpParts(permuteClasses(graph, defect.permutation), inputName), 'canary: wrong classes');
  }
  const parts = mlpParts(graph, inputName);
  if (defect.kind === 'slow') {
    if (!(defect.repeats >= 1)) throw new Error('a slow canary needs repeats ≥ 1');
    return encode(graph, slowParts(parts, inputName, defect.size ?? 256, defect.repeats), 'canary: slow');
  }
  if ('rate' in defect) {
    if (!(defect.rate >= 0 && defect.rate <= 1)) throw new Error('an error rate lies in [0, 1]');
    const draw: INode = {
      ...node('RandomUniform', [], ['canary.fail_draw']),
      attribute: [
        { name: 'shape', type: onnx.AttributeProto.AttributeType.INTS, ints: [1] },
        { name: 'dtype', type: onnx.AttributeProto.AttributeType.INT, i: F32 },
        ...(defect.seed === undefined
          ? []
          : [{ name: 'seed', type: onnx.AttributeProto.AttributeType.FLOAT, f: defect.seed }]),
      ],
    };
    const withDraw: Parts = {
      ...parts,
      nodes: [...parts.nodes, draw, node('Less', ['canary.fail_draw', 'canary.fail_rate'], ['canary.fail_hit'])],
      initializers: [...parts.initializers, floatTensor('canary.fail_rate', [1], new Float32Array([defect.rate]))],
    };
    return encode(graph, failWhen(withDraw, 'canary.fail_hit', false), 'canary: erroring');
  }
  const first = graph.layers[0]!;
  if (!(defect.feature >= 0 && defect.feature < first.inDim))
    throw new Error('the error feature must be an input index');
  const withTrigger: Parts = {
    ...parts,
    nodes: [
      ...parts.nodes,
      node('Gather', [inputName, 'canary.fail_feature'], ['canary.fail_x'], { axis: 1 }),
      node('Greater', ['canary.fail_x', 'canary.fail_above'], ['canary.fail_hit']),
    ],
    initializers: [
      ...parts.initializers,
      int64Tensor('canary.fail_feature', [], [defect.feature]),
      floatTensor('canary.fail_above', [], new Float32Array([defect.above])),
    ],
  };
  return encode(graph, failWhen(withTrigger, 'canary.fail_hit', true), 'canary: erroring');
}

/** Output column i of the result is column permutation[i] of the original's last layer. */
export function permuteClasses(graph: MlpGraph, permutation?: number[]): MlpGraph {
  const last = graph.layers[graph.layers.length - 1]!;
  const perm = permutation ?? Array.from({ length: last.outDim }, (_, i) => (i + 1) % last.outDim);
  if (
    perm.length !== last.outDim ||
    new Set(perm).size !== perm.length ||
    perm.some((p) => !(p >= 0 && p < last.outDim))
  )
    throw new Error('the permutation must reorder every output class exactly once');
  const weights = new Float32Array(last.weights.length);
  for (let r = 0; r < last.inDim; r++)
    for (let c = 0; c < last.outDim; c++) weights[r * last.outDim + c] = last.weights[r * last.outDim + perm[c]!]!;
  const bias = Float32Array.from(perm, (p) => last.bias[p]!);
  return { ...graph, layers: [...graph.layers.slice(0, -1), { ...last, weights, bias }] };
}

/** Seeded random weights, uniform in ±sqrt(6/(in+out)) (Glorot), small random biases. */
export function randomMlp(dims: number[], seed: number, opts: Partial<Omit<MlpGraph, 'layers'>> = {}): MlpGraph {
  if (dims.length < 2) throw new Error('dims needs an input and an output size');
  // mulberry32: a small seeded generator, so the same seed builds the same model everywhere.
  const next = mulberry32(seed);
  const layers: DenseLayer[] = [];
  for (let i = 0; i + 1 < dims.length; i++) {
    const inDim = dims[i]!;
    const outDim = dims[i + 1]!;
    const scale = Math.sqrt(6 / (inDim + outDim));
    const weights = Float32Array.from({ length: inDim * outDim }, () => (next() * 2 - 1) * scale);
    const bias = Float32Array.from({ length: outDim }, () => (next() * 2 - 1) * 0.1);
    layers.push({ inDim, outDim, weights, bias });
  }
  return { output: 'softmax', ...opts, layers };
}

/** Reference forward pass in float32 arithmetic order close to ORT's; input is row-major [batch][inDim]. */
export function forwardMlp(graph: MlpGraph, input: Float32Array, batch: number): Float32Array {
  checkGraph(graph);
  let x = input;
  graph.layers.forEach((layer, li) => {
    const y = new Float32Array(batch * layer.outDim);
    for (let b = 0; b < batch; b++)
      for (let o = 0; o < layer.outDim; o++) {
        let acc = 0;
        for (let i = 0; i < layer.inDim; i++) acc += x[b * layer.inDim + i]! * layer.weights[i * layer.outDim + o]!;
        const v = acc + layer.bias[o]!;
        const hidden = li < graph.layers.length - 1 ? (graph.hidden ?? 'relu') : undefined;
        y[b * layer.outDim + o] =
          hidden === 'relu' ? Math.max(0, v) : hidden === 'gelu' ? v * 0.5 * (1 + erf(v / Math.SQRT2)) : v;
      }
    x = y;
  });
  if (graph.output === 'softmax') {
    const outDim = graph.layers[graph.layers.length - 1]!.outDim;
    for (let b = 0; b < batch; b++) {
      const row = x.subarray(b * outDim, (b + 1) * outDim);
      const max = Math.max(...row);
      let sum = 0;
      for (let o = 0; o < outDim; o++) sum += row[o] = Math.exp(row[o]! - max);
      for (let o = 0; o < outDim; o++) row[o] = row[o]! / sum;
    }
  }
  return x;
}
