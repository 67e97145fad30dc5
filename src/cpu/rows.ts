/** dst[b, start + i, :] = src[b, i, :] on a copy of dst ([B, T, D] and [B, L, D], row-major). */
export function writeRowsCpu(dst: ArrayLike<number>, dstShape: readonly [number, number, number], src: ArrayLike<number>, srcRows: number, start: number): Float64Array {
  const [b, t, d] = dstShape;
  const out = Float64Array.from(dst);
  for (let n = 0; n < b; n++)
    for (let i = 0; i < srcRows; i++)
      for (let c = 0; c < d; c++) out[(n * t + start + i) * d + c] = src[(n * srcRows + i) * d + c]!;
  return out;
}

/** [B, L1, D] ++ [B, L2, D] along the middle dim. */
export function concatRowsCpu(a: ArrayLike<number>, b: ArrayLike<number>, batch: number, d: number): Float64Array {
  const l1 = a.length / batch / d;
  const l2 = b.length / batch / d;
  const empty = new Float64Array(batch * (l1 + l2) * d);
  return writeRowsCpu(writeRowsCpu(empty, [batch, l1 + l2, d], a, l1, 0), [batch, l1 + l2, d], b, l2, l1);
}
