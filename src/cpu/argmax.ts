/**
 * Index of the largest value of each row of x [R, V], as torch.argmax: the first maximum wins, NaN counts
 * as larger than every number (the first NaN wins), -0 equals +0.
 */
export function argmaxCpu(x: ArrayLike<number>, rows: number): Int32Array {
  const v = x.length / rows;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let i = 1; i < v; i++) if (greater(x[r * v + i]!, x[r * v + best]!)) best = i;
    out[r] = best;
  }
  return out;
}

/** a > b in the order of torch's max/sort: NaN above +Infinity, NaNs equal to each other. */
export function greater(a: number, b: number): boolean {
  if (Number.isNaN(b)) return false;
  if (Number.isNaN(a)) return true;
  return a > b;
}
