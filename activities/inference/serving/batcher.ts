/**
 * Dynamic batching for one model version: requests that arrive within `maxWaitMs` of the first waiting one run as
 * one batch of at most `maxBatchSize` rows; at most `concurrency` batches run at once (the rest wait, still
 * collecting rows). A full batch leaves at once; a lone request waits at most `maxWaitMs`. The values come from the
 * version's settings.serving (the tuning workflow chooses them).
 *
 * The batcher also counts requests in flight, so a version is released only after they drain (`drained()`).
 */
export interface BatchSettings {
  maxBatchSize: number;
  maxWaitMs: number;
  concurrency: number;
}

export const DEFAULT_BATCH: BatchSettings = { maxBatchSize: 32, maxWaitMs: 2, concurrency: 2 };

/** Runs rows (each a flat Float32Array of the row width) as one batch; returns one output row per input row. */
export type RunBatch = (rows: Float32Array[]) => Promise<Float32Array[]>;

interface Waiting {
  rows: Float32Array[];
  resolve: (out: Float32Array[]) => void;
  reject: (err: Error) => void;
}

export class DynamicBatcher {
  private queue: Waiting[] = [];
  private queuedRows = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = 0;
  private inFlight = 0;
  private drainWaiters: (() => void)[] = [];
  /** Sizes of the batches run so far (for tests and the bench). */
  readonly batchSizes: number[] = [];

  constructor(
    private readonly run: RunBatch,
    private settings: BatchSettings = DEFAULT_BATCH,
  ) {}

  update(settings: BatchSettings): void {
    this.settings = settings;
  }

  /** Queues the rows of one request; resolves with their outputs, in order. */
  submit(rows: Float32Array[]): Promise<Float32Array[]> {
    this.inFlight++;
    return new Promise<Float32Array[]>((resolve, reject) => {
      this.queue.push({ rows, resolve, reject });
      this.queuedRows += rows.length;
      this.pump();
    }).finally(() => {
      this.inFlight--;
      if (this.inFlight === 0) for (const w of this.drainWaiters.splice(0)) w();
    });
  }

  /** Resolves once no request is queued or running. */
  drained(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  get pending(): number {
    return this.inFlight;
  }

  private pump(): void {
    while (this.queue.length > 0 && this.running < this.settings.concurrency) {
      // maxWaitMs 0: no batching wait at all (a 0 ms timer would still cost Node's ~1 ms minimum).
      if (this.settings.maxWaitMs <= 0) this.waitExpired = true;
      if (this.queuedRows < this.settings.maxBatchSize && this.timer === undefined && !this.waitExpired) {
        // Not full yet: wait for more rows, at most maxWaitMs from now.
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.waitExpired = true;
          this.pump();
        }, this.settings.maxWaitMs);
        return;
      }
      if (this.queuedRows < this.settings.maxBatchSize && !this.waitExpired) return;
      this.launch();
    }
  }

  private waitExpired = false;

  private launch(): void {
    const batch: Waiting[] = [];
    let rows = 0;
    // Whole requests only; a request larger than maxBatchSize runs as a batch of its own.
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      if (batch.length > 0 && rows + next.rows.length > this.settings.maxBatchSize) break;
      batch.push(this.queue.shift()!);
      rows += next.rows.length;
    }
    this.queuedRows -= rows;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.waitExpired = false;
    this.running++;
    this.batchSizes.push(rows);
    const input = batch.flatMap((w) => w.rows);
    this.run(input)
      .then((out) => {
        let offset = 0;
        for (const w of batch) {
          w.resolve(out.slice(offset, offset + w.rows.length));
          offset += w.rows.length;
        }
      })
      .catch((err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err));
        for (const w of batch) w.reject(error);
      })
      .finally(() => {
        this.running--;
        this.pump();
      });
  }
}
