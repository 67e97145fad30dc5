/**
 * Multinomial sampling with HF's warpers. The GPU keeps the top_k best candidates of each row (HF's default
 * top_k is 50); top-p and the draw run on the host over those few values. Only top_k = 0 (or a k above the
 * top-k kernel's limit) reads whole rows back.
 *
 * Differences from torch, by design: the draw uses our seeded PRNG (rng.ts), walking the candidates from the
 * most to the least likely; top-k keeps exactly k candidates where HF also keeps ties with the k-th value.
 */
import { TOPK_MAX_K, topk } from '../kernels/topk.js';
import type { Tensor } from '../tensor.js';
import type { GenerationConfig } from './config.js';
import { softmaxOf } from './logits-process.js';
import type { Random } from './rng.js';

/**
 * How many of the candidates (scores sorted descending) TopPLogitsWarper keeps: it drops, from the least
 * likely up, those whose cumulative probability stays <= 1 - top_p, and always keeps the best one.
 */
export function topPCount(sortedDesc: ArrayLike<number>, topP: number): number {
  const n = sortedDesc.length;
  if (topP >= 1 || n <= 1) return n;
  const p = softmaxOf(sortedDesc);
  let tail = 0;
  let keep = n;
  for (let i = n - 1; i >= 1; i--) {
    tail += p[i]!;
    if (tail <= 1 - topP) keep = i;
    else break;
  }
  return keep;
}

/** Draws one of the candidates (scores sorted descending, their ids alongside) from softmax(scores). */
export function drawToken(sortedDesc: ArrayLike<number>, ids: ArrayLike<number>, rng: Random): number {
  const p = softmaxOf(sortedDesc);
  const u = rng.next();
  let cum = 0;
  for (let i = 0; i < p.length; i++) {
    cum += p[i]!;
    if (u < cum) return ids[i]!;
  }
  // Rounding left the sum a hair below u: the last candidate with any mass.
  for (let i = p.length - 1; i >= 0; i--) if (p[i]! > 0) return ids[i]!;
  return ids[0]!;
}

/** One row's candidates (descending, ties by lower id) after top-k and top-p, then the draw. */
export function sampleCandidates(values: ArrayLike<number>, ids: ArrayLike<number>, c: GenerationConfig, rng: Random): number {
  const kept = topPCount(values, c.top_p);
  return drawToken(Array.prototype.slice.call(values, 0, kept) as number[], Array.prototype.slice.call(ids, 0, kept) as number[], rng);
}

/** Sorts a whole row descending (ties: lower index first); the host path for top_k = 0. */
export function sortRow(row: ArrayLike<number>): { values: Float64Array; ids: Int32Array } {
  const order = Array.from({ length: row.length }, (_, i) => i).sort((a, b) => row[b]! - row[a]! || a - b);
  return { values: Float64Array.from(order, (i) => row[i]!), ids: Int32Array.from(order) };
}

/** Samples one token per row of processed scores [R, V] (temperature already applied); row r draws from rngFor(r). */
export async function pickSampled(scores: Tensor, c: GenerationConfig, rngFor: (row: number) => Random): Promise<number[]> {
  const [R, V] = scores.shape as [number, number];
  const k = c.top_k === 0 ? V : Math.min(c.top_k, V);
  const out: number[] = [];
  if (k <= TOPK_MAX_K) {
    const { values, indices } = topk(scores, k);
    try {
      const [vals, ids] = await Promise.all([values.read(), indices.read()]);
      for (let r = 0; r < R; r++) out.push(sampleCandidates(vals.subarray(r * k, (r + 1) * k), ids.subarray(r * k, (r + 1) * k), c, rngFor(r)));
    } finally {
      values.dispose();
      indices.dispose();
    }
    return out;
  }
  const all = await scores.read();
  for (let r = 0; r < R; r++) {
    const { values, ids } = sortRow(all.subarray(r * V, (r + 1) * V));
    out.push(sampleCandidates(values.subarray(0, k), ids.subarray(0, k), c, rngFor(r)));
  }
  return out;
}
