/**
 * The serving router's pure parts (activities/inference/serving/routing.ts, batcher.ts): exact weighted round-robin,
 * sticky hashing within its stated tolerance, header (A/B) pins, shadow selection, and the dynamic batcher's
 * max-wait / max-size / drain behaviour.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DynamicBatcher } from '../../activities/inference/serving/batcher.js';
import {
  chooseArm,
  ShadowPicker,
  SmoothWrr,
  stickyArm,
  stickyTolerance,
  WEIGHT_SCALE,
  type Arm,
} from '../../activities/inference/serving/routing.js';

const table = (weight: number) => ({ baseline: { version: '1.0.0' }, canary: { version: '1.1.0', weight } });

describe('weighted round-robin', () => {
  it('when 1000 requests are routed at each default step, then the canary share is within 0.1 pp of the target', () => {
    const wrr = new SmoothWrr<Arm>({ baseline: WEIGHT_SCALE, canary: 0 });
    for (const pct of [5, 10, 25, 50, 100]) {
      let canary = 0;
      for (let i = 0; i < 1000; i++) if (chooseArm(table(pct * 100), {}, wrr) === 'canary') canary++;
      expect(Math.abs(canary / 1000 - pct / 100)).toBeLessThanOrEqual(0.001);
    }
  });

  it('when any weight is routed, then every prefix is within one pick of its exact share', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: WEIGHT_SCALE }), fc.integer({ min: 1, max: 3000 }), (w, n) => {
        const wrr = new SmoothWrr<Arm>({ baseline: WEIGHT_SCALE - w, canary: w });
        let canary = 0;
        for (let i = 0; i < n; i++) if (wrr.next() === 'canary') canary++;
        expect(Math.abs(canary - (n * w) / WEIGHT_SCALE)).toBeLessThanOrEqual(1);
      }),
      { numRuns: 200 },
    );
  });

  it('when the canary has weight 0 or is absent, then it never gets a request', () => {
    const wrr = new SmoothWrr<Arm>({ baseline: 1, canary: 0 });
    for (let i = 0; i < 500; i++) {
      expect(chooseArm(table(0), {}, wrr)).toBe('baseline');
      expect(chooseArm({ baseline: { version: '1.0.0' } }, { key: `k${i}` }, wrr)).toBe('baseline');
    }
  });
});

describe('sticky routing', () => {
  it('when 10,000 distinct keys are routed, then the canary share is within the stated tolerance', () => {
    for (const w of [500, 1000, 2500, 5000]) {
      let canary = 0;
      for (let i = 0; i < 10_000; i++) if (stickyArm(`user-${i}`, w) === 'canary') canary++;
      expect(Math.abs(canary / 10_000 - w / WEIGHT_SCALE)).toBeLessThanOrEqual(stickyTolerance(w, 10_000));
    }
    expect(stickyTolerance(500, 10_000)).toBeCloseTo(0.0065, 4);
  });

  it('when the weight rises, then a key on the canary stays there and the same key always gets the same arm', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 1, max: 10_000 }), (k, w, d) => {
        const before = stickyArm(k, w);
        expect(stickyArm(k, w)).toBe(before);
        if (before === 'canary') expect(stickyArm(k, Math.min(WEIGHT_SCALE, w + d))).toBe('canary');
      }),
    );
  });
});

describe('header routing and shadow selection', () => {
  it('when a request pins a served version or arm, then it goes there whatever the weights; else weights decide', () => {
    const wrr = new SmoothWrr<Arm>({ baseline: 1, canary: 0 });
    expect(chooseArm(table(0), { pin: '1.1.0' }, wrr)).toBe('canary');
    expect(chooseArm(table(0), { pin: 'canary' }, wrr)).toBe('canary');
    expect(chooseArm(table(10_000), { pin: '1.0.0' }, wrr)).toBe('baseline');
    expect(chooseArm(table(10_000), { pin: 'baseline', key: 'x' }, wrr)).toBe('baseline');
    expect(chooseArm(table(10_000), { pin: '9.9.9' }, wrr)).toBe('canary');
    expect(chooseArm({ baseline: { version: '1.0.0' } }, { pin: 'canary' }, wrr)).toBe('baseline');
  });

  it('when a shadow share is set, then exactly that share of requests is mirrored', () => {
    const picker = new ShadowPicker();
    let mirrored = 0;
    for (let i = 0; i < 1000; i++) if (picker.next(2000)) mirrored++;
    expect(mirrored).toBe(200);
    expect(picker.next(0)).toBe(false);
  });
});

describe('dynamic batcher', () => {
  const echo = (sizes: number[]) => async (rows: Float32Array[]) => {
    sizes.push(rows.length);
    await new Promise((r) => setTimeout(r, 5));
    return rows.map((r) => r.map((x) => x * 2));
  };

  it('when requests arrive together, then they run as batches of at most maxBatchSize, answers in order', async () => {
    const sizes: number[] = [];
    const b = new DynamicBatcher(echo(sizes), { maxBatchSize: 4, maxWaitMs: 50, concurrency: 1 });
    const outs = await Promise.all(Array.from({ length: 10 }, (_, i) => b.submit([Float32Array.of(i)])));
    expect(outs.map((o) => o[0]![0])).toEqual(Array.from({ length: 10 }, (_, i) => i * 2));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(4);
    expect(sizes.reduce((a, x) => a + x, 0)).toBe(10);
    expect(sizes[0]).toBe(4);
  });

  it('when a lone request arrives, then it waits about maxWaitMs, not longer', async () => {
    const sizes: number[] = [];
    const b = new DynamicBatcher(echo(sizes), { maxBatchSize: 64, maxWaitMs: 30, concurrency: 1 });
    const t0 = performance.now();
    await b.submit([Float32Array.of(1)]);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(28);
    expect(sizes).toEqual([1]);
  });

  it('when a batch fails, then each of its requests is rejected and drained() still resolves', async () => {
    const b = new DynamicBatcher(async () => Promise.reject(new Error('boom')), {
      maxBatchSize: 8,
      maxWaitMs: 1,
      concurrency: 1,
    });
    const results = await Promise.allSettled([b.submit([Float32Array.of(1)]), b.submit([Float32Array.of(2)])]);
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    await b.drained();
    expect(b.pending).toBe(0);
  });

  it('when requests are in flight, then drained() resolves only after they finish', async () => {
    let finished = 0;
    const slow = async (rows: Float32Array[]) => {
      await new Promise((r) => setTimeout(r, 20));
      finished++;
      return rows;
    };
    const b = new DynamicBatcher(slow, { maxBatchSize: 1, maxWaitMs: 1, concurrency: 1 });
    const p = Promise.all([b.submit([Float32Array.of(1)]), b.submit([Float32Array.of(2)])]);
    expect(b.pending).toBe(2);
    await b.drained();
    expect(finished).toBe(2);
    await p;
  });
});
