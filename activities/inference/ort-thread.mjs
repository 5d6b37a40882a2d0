// Worker-thread side of the inference pool. ONNX Runtime blocks the event loop while it loads or runs a model, so
// sessions live here, never on the thread that talks to Temporal or serves requests. Plain JavaScript so that it
// runs without a TypeScript loader in a worker thread. Messages: { id, op, ... } → { id, ok, result | error }.
// Ops (typed in ort.ts):
//   describe                              → { backends }
//   load { key, bytes | path, settings }  → { key, signature, loadMs }   (a key already loaded is replaced)
//   run { key, feeds, outputs? }          → { outputs: { name: { type, data, dims } }, runMs }
//   release { key }                       → { released }
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

/** @type {Map<string, import('onnxruntime-node').InferenceSession>} */
const sessions = new Map();

/** 'session.intra_op.allow_spinning' = '0' → { session: { intra_op: { allow_spinning: '0' } } }, the shape ORT wants. */
function nestEntries(entries) {
  const extra = {};
  for (const [key, value] of Object.entries(entries ?? {})) {
    const parts = key.split('.');
    let obj = extra;
    for (const part of parts.slice(0, -1)) obj = obj[part] ??= {};
    obj[parts[parts.length - 1]] = value;
  }
  return extra;
}

function sessionOptions(settings = {}) {
  const { configEntries, ...rest } = settings;
  // Failed runs reach the caller as rejections with ORT's message; ORT's own stderr copy would only repeat them (an
  // erroring canary under load would flood the log), so only fatal messages are printed.
  const options = { executionProviders: ['cpu'], logSeverityLevel: 4, ...rest };
  if (configEntries && Object.keys(configEntries).length > 0) options.extra = nestEntries(configEntries);
  return options;
}

function describeValues(metadata) {
  return metadata.map((m) =>
    m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: 'non-tensor', shape: [] },
  );
}

const ops = {
  describe: async () => ({ backends: ort.listSupportedBackends().map((b) => b.name) }),

  load: async ({ key, bytes, path, settings }) => {
    const started = performance.now();
    const source = bytes ?? path;
    if (!source) throw new Error('load needs bytes or a path');
    const session = await ort.InferenceSession.create(source, sessionOptions(settings));
    const previous = sessions.get(key);
    sessions.set(key, session);
    await previous?.release();
    const signature = {
      inputs: describeValues(session.inputMetadata),
      outputs: describeValues(session.outputMetadata),
    };
    return { key, signature, loadMs: performance.now() - started };
  },

  run: async ({ key, feeds, outputs }) => {
    const session = sessions.get(key);
    if (!session) throw new Error(`no session loaded under key ${key}`);
    const tensors = {};
    for (const [name, t] of Object.entries(feeds)) tensors[name] = new ort.Tensor(t.type, t.data, t.dims);
    const started = performance.now();
    const result = outputs ? await session.run(tensors, outputs) : await session.run(tensors);
    const runMs = performance.now() - started;
    const out = {};
    for (const [name, t] of Object.entries(result)) out[name] = { type: t.type, data: t.data, dims: [...t.dims] };
    return { outputs: out, runMs };
  },

  release: async ({ key }) => {
    const session = sessions.get(key);
    sessions.delete(key);
    await session?.release();
    return { released: session !== undefined };
  },
};

parentPort?.on('message', (msg) => {
  const op = ops[msg.op];
  if (!op) {
    parentPort?.postMessage({ id: msg.id, ok: false, error: `unknown op ${msg.op}` });
    return;
  }
  op(msg).then(
    (result) => parentPort?.postMessage({ id: msg.id, ok: true, result }),
    (err) =>
      parentPort?.postMessage({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
