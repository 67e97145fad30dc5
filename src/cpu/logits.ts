/**
 * HF RepetitionPenaltyLogitsProcessor on a copy of logits [R, V]: each distinct id of row r's list (ids
 * [R, n], -1 = unused) scores s < 0 ? s * penalty : s / penalty. Ids outside [0, V) are skipped.
 */
export function repetitionPenaltyCpu(logits: ArrayLike<number>, rows: number, ids: ArrayLike<number>, penalty: number): Float64Array {
  const out = Float64Array.from(logits);
  const v = logits.length / rows;
  const n = ids.length / rows;
  for (let r = 0; r < rows; r++) {
    const seen = new Set<number>();
    for (let j = 0; j < n; j++) {
      const id = ids[r * n + j]!;
      if (id < 0 || id >= v || seen.has(id)) continue;
      seen.add(id);
      const s = out[r * v + id]!;
      out[r * v + id] = s < 0 ? s * penalty : s / penalty;
    }
  }
  return out;
}

/** logits[r, ids[r, j]] = value on a copy; ids outside [0, V) (-1 included) are skipped. */
export function setLogitsCpu(logits: ArrayLike<number>, rows: number, ids: ArrayLike<number>, value: number): Float64Array {
  const out = Float64Array.from(logits);
  const v = logits.length / rows;
  const n = ids.length / rows;
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < n; j++) {
      const id = ids[r * n + j]!;
      if (id >= 0 && id < v) out[r * v + id] = value;
    }
  return out;
}

/** x * factor. */
export function scaleCpu(x: ArrayLike<number>, factor: number): Float64Array {
  return Float64Array.from(x, (v) => v * factor);
}
