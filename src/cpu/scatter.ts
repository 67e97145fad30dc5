/** dst[rows[i], :] = src[i, :] on a copy of dst; rows outside [0, N) are skipped (as the GPU kernel). */
export function scatterRowsCpu(dst: ArrayLike<number>, src: ArrayLike<number>, rows: ArrayLike<number>, d: number): Float64Array {
  const out = Float64Array.from(dst);
  const n = dst.length / d;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    if (r < 0 || r >= n) continue;
    for (let c = 0; c < d; c++) out[r * d + c] = src[i * d + c]!;
  }
  return out;
}
