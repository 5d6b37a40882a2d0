// Worker-thread side of the inference pool. ONNX Runtime blocks the event loop while it loads or runs a model, so
// sessions live here, never on the thread that talks to Temporal. Plain JavaScript so that it runs without a
// TypeScript loader in a worker thread. Messages: { id, op, ... } → { id, ok, result | error }.
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

parentPort?.on('message', (msg) => {
  try {
    if (msg.op === 'describe') {
      parentPort?.postMessage({
        id: msg.id,
        ok: true,
        result: { backends: ort.listSupportedBackends().map((b) => b.name) },
      });
    } else {
      parentPort?.postMessage({ id: msg.id, ok: false, error: `unknown op ${msg.op}` });
    }
  } catch (err) {
    parentPort?.postMessage({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) });
  }
});
