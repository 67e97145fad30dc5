/**
 * Gradients of y = act(x W^T + b) + r (the `linear` kernel), as ordinary products of the GemmProblem family:
 *   dX = dZ W          (W [N, K] read as a [K, N]-layout B: no transposed copy of a frozen f16 weight)
 *   dW = dZ^T X        (dZ read as an A stored [K, M]: no transposed copy of the activations)
 *   db = sum_rows(dZ)
 * where dZ is dY through the activation (geluBackward/reluBackward in elementwise.ts) and r's gradient is dY.
 * Weight and bias gradients accumulate into existing tensors when given (several uses of one weight, gradient
 * accumulation over micro-batches).
 */
import type { Weight } from '../quant/quantized-tensor.js';
import type { Tensor } from '../tensor.js';
import { matmul } from './linear.js';
import { sumRows } from './reduce.js';

function rows2d(t: Tensor): Tensor {
  return t.reshape([t.size / t.dim(-1), t.dim(-1)]);
}

/**
 * dX [..., K] (f32) of a linear layer from dY [..., N] and its weight [N, K]: f32, f16, or quantized (q8/q4,
 * frozen), whose codes the kernels read down the columns with each group's scale: dX = dY (q * s), with no
 * dequantized copy (docs/finetuning.md has the measurement that chose this over dequantizing into scratch).
 */
export function linearInputGrad(dy: Tensor, weight: Weight): Tensor {
  if (weight.ndim !== 2 || weight.dim(0) !== dy.dim(-1)) throw new RangeError(`linearInputGrad: weight ${weight} does not match dY ${dy}`);
  const d2 = rows2d(dy);
  try {
    const dx = matmul(d2, weight);
    const shaped = dx.reshape([...dy.shape.slice(0, -1), weight.dim(1)]);
    dx.dispose();
    return shaped;
  } finally {
    d2.dispose();
  }
}

/** dW [N, K] = dY^T X summed over every leading dim of dY [..., N] and x [..., K]; added to `accumulate` if given. */
export function linearWeightGrad(dy: Tensor, x: Tensor, accumulate?: Tensor): Tensor {
  const rows = dy.size / dy.dim(-1);
  if (x.size / x.dim(-1) !== rows) throw new RangeError(`linearWeightGrad: dY ${dy} and x ${x} differ in rows`);
  const d2 = rows2d(dy);
  const x2 = rows2d(x);
  try {
    return matmul(d2, x2, { transposeA: true, accumulate });
  } finally {
    d2.dispose();
    x2.dispose();
  }
}

/** db [N] = dY summed over its rows; added to `accumulate` if given. */
export function linearBiasGrad(dy: Tensor, accumulate?: Tensor): Tensor {
  return sumRows(dy, accumulate);
}
