/**
 * Routing decisions of the serving data plane: pure functions and small state machines, no I/O.
 *
 * - Weighted round-robin (`SmoothWrr`, nginx's smooth WRR): the split is exact, not random. With integer weights
 *   w_i summing to W, every window of W consecutive picks gives arm i exactly w_i picks, and any prefix of n picks
 *   is within one pick of n·w_i/W. Weights are basis points (0..10000), so over 1000 requests at a 5% canary the
 *   canary gets 50 ± 1 requests (0.1 percentage point).
 * - Sticky routing by key (`stickyBucket`): a key's arm is fixed by a hash of the key (SHA-256, first 32 bits) into
 *   10000 buckets; the canary owns buckets [0, weight). Raising the weight only moves keys from baseline to canary,
 *   never back. The split over N distinct keys is Binomial(N, w)/N: its tolerance is ±3·√(w(1−w)/N)
 *   (`stickyTolerance`), e.g. ±0.65 percentage point at 5% over 10,000 keys. Skewed traffic per key widens it.
 * - Header routing (A/B): a request that names a version, or the arm ("canary" | "baseline"), goes there if that
 *   version is being served; otherwise the weights decide.
 * - Shadow traffic: a second WRR picks exactly `shadowShare` of the requests to mirror to the shadow version.
 */
import { createHash } from 'node:crypto';

export const WEIGHT_SCALE = 10_000;

export type Arm = 'baseline' | 'canary';

/** nginx's smooth weighted round-robin over named arms; weights are non-negative integers. */
export class SmoothWrr<K extends string> {
  private weights: Record<K, number>;
  private current: Record<K, number>;

  constructor(weights: Record<K, number>) {
    this.weights = { ...weights };
    this.current = Object.fromEntries(Object.keys(weights).map((k) => [k, 0])) as Record<K, number>;
  }

  /** New weights keep the running state, so the split stays exact across a change (no burst toward one arm). */
  setWeights(weights: Record<K, number>): void {
    const same = Object.keys(weights).every((k) => this.weights[k as K] === weights[k as K]);
    if (same) return;
    this.weights = { ...weights };
    for (const k of Object.keys(weights) as K[]) this.current[k] ??= 0;
    // Reset the running counters: leftover credit from the old weights would skew the first window of the new ones.
    for (const k of Object.keys(this.current) as K[]) this.current[k] = 0;
  }

  next(): K | undefined {
    let total = 0;
    let best: K | undefined;
    for (const k of Object.keys(this.weights) as K[]) {
      const w = this.weights[k];
      if (w <= 0) continue;
      total += w;
      this.current[k] += w;
      if (best === undefined || this.current[k] > this.current[best]) best = k;
    }
    if (best !== undefined) this.current[best] -= total;
    return best;
  }
}

/** The key's bucket in [0, WEIGHT_SCALE): uniform for distinct keys, the same in every process. */
export function stickyBucket(key: string): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0) % WEIGHT_SCALE;
}

/** The arm of a sticky key at the given canary weight (basis points). */
export function stickyArm(key: string, canaryWeight: number): Arm {
  return stickyBucket(key) < canaryWeight ? 'canary' : 'baseline';
}

/** Three standard deviations of the canary share (as a fraction) over n distinct keys at weight w (basis points). */
export function stickyTolerance(canaryWeight: number, n: number): number {
  const w = canaryWeight / WEIGHT_SCALE;
  return 3 * Math.sqrt((w * (1 - w)) / n);
}

export interface RouteRequest {
  /** Sticky routing: the same key lands on the same arm while the weights stay. */
  key?: string;
  /** Header routing: a served version ("1.2.0") or an arm name. */
  pin?: string;
}

export interface RouteTable {
  baseline: { version: string };
  canary?: { version: string; weight: number };
}

/**
 * Picks the arm for one request. Order: a pin that names a served version or arm, then a sticky key, then WRR.
 * A canary that is not loaded in this process (table.canary absent) never gets traffic.
 */
export function chooseArm(table: RouteTable, req: RouteRequest, wrr: SmoothWrr<Arm>): Arm {
  const canary = table.canary;
  if (req.pin !== undefined) {
    if (req.pin === 'baseline' || req.pin === table.baseline.version) return 'baseline';
    if (canary && (req.pin === 'canary' || req.pin === canary.version)) return 'canary';
  }
  if (!canary || canary.weight <= 0) return 'baseline';
  if (req.key !== undefined) return stickyArm(req.key, canary.weight);
  wrr.setWeights({ baseline: WEIGHT_SCALE - canary.weight, canary: canary.weight });
  return wrr.next() ?? 'baseline';
}

/** Exactly `share` basis points of calls to next() return true, spread evenly (smooth WRR over two outcomes). */
export class ShadowPicker {
  private readonly wrr = new SmoothWrr<'mirror' | 'skip'>({ mirror: 0, skip: WEIGHT_SCALE });
  next(share: number): boolean {
    if (share <= 0) return false;
    this.wrr.setWeights({ mirror: share, skip: WEIGHT_SCALE - share });
    return this.wrr.next() === 'mirror';
  }
}
