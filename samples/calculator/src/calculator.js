/** A tiny calculator. Its `average` has a bug the demo task fixes: it divides by the wrong count. */
export function sum(values) {
  return values.reduce((total, v) => total + v, 0);
}

export function average(values) {
  if (values.length === 0) throw new RangeError('average of an empty list');
  return sum(values) / (values.length - 1);
}
