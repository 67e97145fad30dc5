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

export interface LayerNormGradsCpu {
  /** Gradient of x (and of the residual, which enters as h = x + residual). */
  dx: Float64Array;
  dw: Float64Array;
  db: Float64Array;
}

/**
 * Gradients of layerNormCpu given dy, in float64, from the definition: xhat = (h - mean) * rstd, y = xhat w + b;
 * dh = rstd (g - mean(g) - xhat mean(g xhat)) with g = dy w; dw = sum_rows dy xhat; db = sum_rows dy.
 */
export function layerNormBackwardCpu(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  eps: number,
  dy: ArrayLike<number>,
  residual?: ArrayLike<number>,
): LayerNormGradsCpu {
  const d = weight.length;
  if (x.length % d !== 0 || dy.length !== x.length) throw new RangeError('layerNormBackwardCpu: size mismatch');
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(d);
  const db = new Float64Array(d);
  const xhat = new Float64Array(d);
  for (let r = 0; r < x.length / d; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i]! + (residual ? residual[r * d + i]! : 0);
    mean /= d;
    let variance = 0;
    for (let i = 0; i < d; i++) variance += (x[r * d + i]! + (residual ? residual[r * d + i]! : 0) - mean) ** 2;
    const rstd = 1 / Math.sqrt(variance / d + eps);
    let mg = 0;
    let mgx = 0;
    for (let i = 0; i < d; i++) {
      xhat[i] = (x[r * d + i]! + (residual ? residual[r * d + i]! : 0) - mean) * rstd;
      const g = dy[r * d + i]! * weight[i]!;
      mg += g / d;
      mgx += (g * xhat[i]!) / d;
      dw[i]! += dy[r * d + i]! * xhat[i]!;
      db[i]! += dy[r * d + i]!;
    }
    for (let i = 0; i < d; i++) dx[r * d + i] = rstd * (dy[r * d + i]! * weight[i]! - mg - xhat[i]! * mgx);
  }
  return { dx, dw, db };
}
