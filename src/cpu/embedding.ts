/** Row gather: out[i, :] = table[ids[i], :]; ids outside [0, V) give a row of zeros (as the GPU kernel). */
export function embeddingCpu(ids: ArrayLike<number>, table: ArrayLike<number>, d: number): Float64Array {
  const vocab = table.length / d;
  const out = new Float64Array(ids.length * d);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= vocab) continue;
    for (let c = 0; c < d; c++) out[i * d + c] = table[id * d + c]!;
  }
  return out;
}
