/**
 * ONNX Runtime sessions in a worker thread (ort-thread.mjs): creating a session and running a batch block the event
 * loop, so they never happen on a thread that polls Temporal or serves requests. One OrtThread is one worker thread
 * with any number of sessions under caller-chosen keys; a process may hold several (e.g. one per served version).
 *
 *   new OrtThread()
 *   .load({ key, bytes | path, settings? }): Promise<{ key, signature: ModelSignature, loadMs }>
 *   .run({ key, feeds, outputs? }): Promise<{ outputs: Record<string, TensorData>, runMs }>   (feeds batched: dims[0])
 *   .release({ key }): Promise<{ released: boolean }>
 *   .describe(): Promise<{ backends: string[] }>
 *   .close()                                   terminates the thread; pending calls reject
 *   TensorData { type: 'float32' | …; data: typed array; dims: number[] }
 *   floatTensor(data, dims) / rows(t)          helpers: build a float32 feed; split a [batch, n] output into rows
 * Errors from ONNX Runtime (bad model, failed run) reject the call with ORT's message; the thread keeps running.
 */
import { Worker } from 'node:worker_threads';
import type { ModelSignature } from '../../common/onnx/signature.js';
import type { SessionSettings } from '../../common/onnx/session-settings.js';

export type TensorArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array;
export interface TensorData {
  type: string;
  data: TensorArray;
  dims: number[];
}

export type LoadSource = { bytes: Uint8Array; path?: never } | { path: string; bytes?: never };
export type LoadArgs = { key: string; settings?: SessionSettings } & LoadSource;
export interface LoadResult {
  key: string;
  signature: ModelSignature;
  loadMs: number;
}
export interface RunArgs {
  key: string;
  feeds: Record<string, TensorData>;
  /** Output names to fetch (default: all). */
  outputs?: string[];
}
export interface RunResult {
  outputs: Record<string, TensorData>;
  /** Time inside session.run, measured in the thread (no messaging). */
  runMs: number;
}

export function floatTensor(data: Float32Array | number[], dims: number[]): TensorData {
  return { type: 'float32', data: data instanceof Float32Array ? data : Float32Array.from(data), dims };
}

/** A [batch, n] output as batch rows of plain numbers. */
export function rows(t: TensorData): number[][] {
  const [batch = 0, n = 1] = t.dims;
  return Array.from({ length: batch }, (_, b) => Array.from(t.data.subarray(b * n, (b + 1) * n), Number));
}

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

  call<T>(op: string, args: object = {}): Promise<T> {
    const worker = this.start();
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ ...args, id, op });
    });
  }

  describe(): Promise<{ backends: string[] }> {
    return this.call('describe');
  }

  load(args: LoadArgs): Promise<LoadResult> {
    return this.call('load', args);
  }

  run(args: RunArgs): Promise<RunResult> {
    return this.call('run', args);
  }

  release(args: { key: string }): Promise<{ released: boolean }> {
    return this.call('release', args);
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
  }
}
