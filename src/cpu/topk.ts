import { greater } from './argmax.js';

/**
 * The k largest values of each row of x [R, V] and their indices, sorted descending; equal values keep
 * ascending index order; NaN is larger than every number (as torch.topk).
 */
export function topkCpu(x: ArrayLike<number>, rows: number, k: number): { values: Float64Array; indices: Int32Array } {
  const v = x.length / rows;
  if (k > v) throw new RangeError(`topkCpu: k ${k} > row length ${v}`);
  const values = new Float64Array(rows * k);
  const indices = new Int32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const order = Array.from({ length: v }, (_, i) => i);
    const at = (i: number) => x[r * v + i]!;
    order.sort((i, j) => (greater(at(i), at(j)) ? -1 : greater(at(j), at(i)) ? 1 : i - j));
    for (let j = 0; j < k; j++) {
      indices[r * k + j] = order[j]!;
      values[r * k + j] = at(order[j]!);
    }
  }
  return { values, indices };
}
