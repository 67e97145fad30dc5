import type { Gpu } from '../../src/gpu/gpu.js';
import { Tensor } from '../../src/tensor.js';

/**
 * `values` as a tensor of `shape` that starts `offset` elements into its buffer (a view, as the model's row slices
 * are), with 1e4 before and after it so that a kernel reading outside the view shows in its result.
 */
export function tensorAt(gpu: Gpu, values: Float32Array, shape: number[], offset: number): Tensor {
  if (offset === 0) return Tensor.from(gpu, values, shape);
  const padded = new Float32Array(values.length + offset + 3).fill(1e4);
  padded.set(values, offset);
  const base = Tensor.from(gpu, padded, [padded.length]);
  const view = base.rows(offset, values.length);
  const shaped = view.reshape(shape);
  base.dispose();
  view.dispose();
  return shaped;
}
