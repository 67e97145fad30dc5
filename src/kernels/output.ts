import type { Gpu } from '../gpu/gpu.js';
import { Tensor, type DType } from '../tensor.js';

/**
 * A kernel's new output, filled by `record` (which records the dispatches that write it). An empty
 * output is returned without recording anything. If `record` throws, the output is disposed before the
 * error propagates, so a rejected call leaks no GPU buffer.
 */
export function newOutput(gpu: Gpu, shape: readonly number[], dtype: DType, record: (out: Tensor) => void): Tensor {
  const out = Tensor.empty(gpu, shape, dtype);
  if (out.size === 0) return out;
  try {
    record(out);
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}
