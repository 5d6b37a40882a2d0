/**
 * How the optimiser sees a point: numbers in [0, 1] for ranges and ordinals (log-scaled where asked), one-hot columns
 * for categoricals. `columnDim[c]` says which dimension column c belongs to, so the kernel keeps one length scale per
 * dimension (the one-hot columns of a categorical share theirs). Also: sampling, decoding, neighbours and, for small
 * discrete spaces, the list of every point.
 */
import type { Dimension, ParamValue, Point, SearchSpace } from '../../../workflows/tuning/space.js';
import type { Rng } from './rng.js';

export interface Encoding {
  space: SearchSpace;
  /** Number of encoded columns. */
  width: number;
  /** For each column, the index of its dimension in `space`. */
  columnDim: number[];
  /** For each column, 1 for a numeric column, 2 for a one-hot one (two columns differ when a category changes). */
  columnWeight: number[];
}

export function createEncoding(space: SearchSpace): Encoding {
  const columnDim: number[] = [];
  const columnWeight: number[] = [];
  space.forEach((d, i) => {
    const cols = d.kind === 'categorical' ? d.values.length : 1;
    for (let c = 0; c < cols; c++) {
      columnDim.push(i);
      columnWeight.push(d.kind === 'categorical' ? 2 : 1);
    }
  });
  return { space, width: columnDim.length, columnDim, columnWeight };
}

function toUnit(d: Dimension, v: ParamValue): number {
  switch (d.kind) {
    case 'integer':
    case 'real': {
      const x = Number(v);
      return d.log ? Math.log(x / d.min) / Math.log(d.max / d.min) : (x - d.min) / (d.max - d.min);
    }
    case 'ordinal':
      return d.values.length === 1 ? 0 : d.values.indexOf(Number(v)) / (d.values.length - 1);
    case 'categorical':
      throw new TypeError('categorical dimensions are one-hot, not unit-scaled');
  }
}

/** A value of `d` from a unit-interval coordinate (rounded for integers, nearest rank for ordinals). */
function fromUnit(d: Exclude<Dimension, { kind: 'categorical' }>, u: number): number {
  const t = Math.min(1, Math.max(0, u));
  switch (d.kind) {
    case 'real':
      return d.log ? d.min * Math.pow(d.max / d.min, t) : d.min + t * (d.max - d.min);
    case 'integer': {
      const x = d.log ? d.min * Math.pow(d.max / d.min, t) : d.min + t * (d.max - d.min);
      return Math.min(d.max, Math.max(d.min, Math.round(x)));
    }
    case 'ordinal':
      return d.values[Math.round(t * (d.values.length - 1))]!;
  }
}

export function encode(enc: Encoding, point: Point): number[] {
  const out: number[] = [];
  for (const d of enc.space) {
    const v = point[d.name];
    if (v === undefined) throw new TypeError(`point has no value for ${d.name}`);
    if (d.kind === 'categorical') for (const c of d.values) out.push(c === v ? 1 : 0);
    else out.push(toUnit(d, v));
  }
  return out;
}

/** The canonical key of a point, to recognise one already evaluated. */
export function pointKey(space: SearchSpace, point: Point): string {
  return JSON.stringify(space.map((d) => point[d.name]));
}

/** A uniform random point (uniform on the log scale for log dimensions). */
export function samplePoint(space: SearchSpace, rng: Rng): Point {
  const p: Point = {};
  for (const d of space)
    p[d.name] = d.kind === 'categorical' ? d.values[rng.int(d.values.length)]! : fromUnit(d, rng.next());
  return p;
}

/**
 * A random neighbour: each numeric coordinate moves by a normal step of `scale` in unit space; each categorical
 * changes with probability 1/(number of dimensions). At least one coordinate changes.
 */
export function perturb(space: SearchSpace, point: Point, scale: number, rng: Rng): Point {
  const p: Point = { ...point };
  const pick = rng.int(space.length);
  space.forEach((d, i) => {
    if (d.kind === 'categorical') {
      if ((i === pick || rng.next() < 1 / space.length) && d.values.length > 1) {
        const others = d.values.filter((v) => v !== point[d.name]);
        p[d.name] = others[rng.int(others.length)]!;
      }
    } else {
      let u = toUnit(d, point[d.name]!) + scale * rng.normal();
      // A rounded dimension must move by at least one step when it is the one picked, else the neighbour is the point.
      if (i === pick && d.kind !== 'real') {
        const steps = d.kind === 'ordinal' ? d.values.length - 1 : d.max - d.min;
        if (steps > 0 && Math.abs(u - toUnit(d, point[d.name]!)) < 1 / steps) u += (rng.next() < 0.5 ? -1 : 1) / steps;
      }
      p[d.name] = fromUnit(d, u);
    }
  });
  return p;
}

/** The number of points of a space with no real dimension; Infinity otherwise. */
export function cardinality(space: SearchSpace): number {
  let n = 1;
  for (const d of space) {
    if (d.kind === 'real') return Infinity;
    n *= d.kind === 'integer' ? d.max - d.min + 1 : d.values.length;
  }
  return n;
}

/** Every point of a discrete space (call only when `cardinality` is small). */
export function enumerate(space: SearchSpace): Point[] {
  let points: Point[] = [{}];
  for (const d of space) {
    const values: ParamValue[] =
      d.kind === 'integer'
        ? Array.from({ length: d.max - d.min + 1 }, (_, i) => d.min + i)
        : d.kind === 'real'
          ? []
          : [...d.values];
    points = points.flatMap((p) => values.map((v) => ({ ...p, [d.name]: v })));
  }
  return points;
}
