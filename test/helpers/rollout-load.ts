/**
 * A load generator for rollout tests and the bench: `concurrency` loops sending predictions through a serving host's
 * router until stopped, recording for each request the canary weight the host applied when it routed it, the
 * version that answered, and failures. With `labels`, each answer gets its label back (feedback), as a client that
 * learns the truth later would.
 */
import type { ServingHost } from '../../activities/inference/serving/host.js';
import type { Db } from '../../common/db.js';
import { attachLabels } from '../../common/model-serving.js';
import { inputRow, labelOf } from './served-models.js';

export interface Sample {
  /** Routing order (taken right before the router decides, synchronously). */
  seq: number;
  weight: number;
  version: string;
  ms: number;
}

export class RolloutLoad {
  readonly samples: Sample[] = [];
  failed = 0;
  private stopped = false;
  private loops: Promise<void>[] = [];
  private toLabel: { id: string; label: number }[] = [];
  private labeller?: Promise<void>;
  private seq = 0;

  constructor(
    private readonly host: ServingHost,
    private readonly model: string,
    private readonly opts: { concurrency?: number; labels?: Db } = {},
  ) {}

  start(): this {
    const n = this.opts.concurrency ?? 8;
    this.loops = Array.from({ length: n }, (_, w) => this.loop(w, n));
    if (this.opts.labels) this.labeller = this.label(this.opts.labels);
    return this;
  }

  private async loop(w: number, n: number): Promise<void> {
    for (let i = w; !this.stopped; i += n) {
      const row = inputRow(i);
      const weight = this.host.snapshot('default', this.model)?.canary?.weight ?? 0;
      const started = performance.now();
      const seq = this.seq++;
      try {
        const p = await this.host.predict('default', this.model, [row]);
        this.samples.push({ seq, weight, version: p.version, ms: performance.now() - started });
        if (this.opts.labels) this.toLabel.push({ id: p.id, label: labelOf(row) });
      } catch {
        this.failed++;
      }
      // Yield to timers and I/O now and then, as a real client's network would.
      if (i % 64 < n) await new Promise((r) => setImmediate(r));
    }
  }

  private async label(db: Db): Promise<void> {
    while (!this.stopped) {
      await new Promise((r) => setTimeout(r, 150));
      await this.host.flush();
      const batch = this.toLabel.splice(0);
      await attachLabels(db, 'default', this.model, batch);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.loops, this.labeller]);
  }

  /** For each canary weight seen, the canary share over the first 1000 requests routed at that weight. */
  sharesPerWeight(canaryVersion: string): { weight: number; n: number; share: number }[] {
    const byWeight = new Map<number, Sample[]>();
    const ordered = [...this.samples].sort((a, b) => a.seq - b.seq);
    for (const s of ordered) {
      const list = byWeight.get(s.weight) ?? [];
      list.push(s);
      byWeight.set(s.weight, list);
    }
    return [...byWeight.entries()].map(([weight, all]) => {
      const first = all.slice(0, 1000);
      const canary = first.filter((s) => s.version === canaryVersion).length;
      return { weight, n: first.length, share: canary / first.length };
    });
  }
}
