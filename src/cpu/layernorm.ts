/**
 * LayerNorm over the last dim of row-major `x` (rows of `d`), in float64: (h - mean) / sqrt(var + eps) * w + b
 * with h = x (+ residual) and the biased variance, as torch.nn.LayerNorm.
 */
export function layerNormCpu(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
  eps: number,
  residual?: ArrayLike<number>,
): Float64Array {
  const d = weight.length;
  if (bias.length !== d || x.length % d !== 0) throw new RangeError('layerNormCpu: size mismatch');
  if (residual && residual.length !== x.length) throw new RangeError('layerNormCpu: residual size mismatch');
  const out = new Float64Array(x.length);
  const h = new Float64Array(d);
  for (let r = 0; r < x.length / d; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) {
      h[i] = x[r * d + i]! + (residual ? residual[r * d + i]! : 0);
      mean += h[i]!;
    }
    mean /= d;
    let variance = 0;
    for (let i = 0; i < d; i++) variance += (h[i]! - mean) ** 2;
    variance /= d;
    const rstd = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < d; i++) out[r * d + i] = (h[i]! - mean) * rstd * weight[i]! + bias[i]!;
  }
  return out;
}
