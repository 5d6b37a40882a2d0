/**
 * Activities of the inference pool (queue agency-inference). ONNX sessions run in a worker thread (ort-thread.ts).
 * Today: a self-check that ONNX Runtime loads in that thread. Serving, canary routing and tuning trials arrive here.
 */
import { Worker } from 'node:worker_threads';

export class OrtThread {
  private worker: Worker | undefined;
  private next = 0;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./ort-thread.mjs', import.meta.url));
    worker.on('message', (msg: { id: number; ok: boolean; result?: unknown; error?: string }) => {
      const waiter = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.ok) waiter?.resolve(msg.result);
      else waiter?.reject(new Error(msg.error));
    });
    worker.on('error', (err) => this.failAll(err));
    worker.on('exit', () => {
      this.worker = undefined;
      this.failAll(new Error('the ONNX Runtime thread exited'));
    });
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private failAll(err: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
  }

  call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const worker = this.start();
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ id, op, ...args });
    });
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
  }
}

export function createInferenceActivities(ort: OrtThread) {
  return {
    async inferenceSelfCheck(): Promise<{ ok: boolean; backends: string[] }> {
      const { backends } = await ort.call<{ backends: string[] }>('describe');
      return { ok: backends.includes('cpu'), backends };
    },
  };
}

export type InferenceActivities = ReturnType<typeof createInferenceActivities>;
