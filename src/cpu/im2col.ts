/**
 * pixels [B, C, H, W] -> [B, (H/p)*(W/p), C*p*p]: patch (py, px) in row-major order, columns in (c, ky, kx)
 * order. Rows and columns past the last whole patch are dropped, as a stride-p Conv2d without padding does.
 */
export function im2colCpu(pixels: ArrayLike<number>, shape: readonly [number, number, number, number], p: number): Float64Array {
  const [b, c, h, w] = shape;
  const ph = Math.floor(h / p);
  const pw = Math.floor(w / p);
  const cols = c * p * p;
  const out = new Float64Array(b * ph * pw * cols);
  for (let n = 0; n < b; n++)
    for (let py = 0; py < ph; py++)
      for (let px = 0; px < pw; px++)
        for (let ch = 0; ch < c; ch++)
          for (let ky = 0; ky < p; ky++)
            for (let kx = 0; kx < p; kx++) {
              const o = ((n * ph + py) * pw + px) * cols + (ch * p + ky) * p + kx;
              out[o] = pixels[((n * c + ch) * h + py * p + ky) * w + px * p + kx]!;
            }
  return out;
}
