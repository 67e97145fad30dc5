import { attentionReference } from './attention.js';
import { layerNormCpu } from './layernorm.js';
import { linearRef } from './linear.js';

export interface DecodeAttentionRefArgs {
  /** [R, D] hidden states. */
  x: ArrayLike<number>;
  /** [3D, D] fused [k; v; q] projection and its [3D] bias. */
  weight: ArrayLike<number>;
  bias: ArrayLike<number> | null;
  ln: { weight: ArrayLike<number>; bias: ArrayLike<number>; eps: number } | null;
  /** [R, C, 3D] cache rows [key | value | query]; row r holds lengths[r] filled rows. */
  cache: ArrayLike<number>;
  capacity: number;
  lengths: readonly number[];
  /** [R, C] additive mask. */
  mask: ArrayLike<number>;
  heads: number;
  headDim: number;
  scale: number;
  /** Rounds the new keys and values as the cache stores them (f16 caches). */
  store: (v: number) => number;
}

/**
 * One decode step's attention in plain TypeScript (float64), the oracle of decode_attention: LayerNorm (if any),
 * the fused projection, the new key and value appended at each row's length, then each row's query against its
 * len + 1 keys. Returns the [R, D] output and the cache as the kernel should leave it.
 */
export function decodeAttentionReference(a: DecodeAttentionRefArgs): { out: Float32Array; cache: Float32Array } {
  const R = a.lengths.length;
  const D = a.heads * a.headDim;
  const W = 3 * D;
  const C = a.capacity;
  const input = a.ln ? layerNormCpu(a.x, a.ln.weight, a.ln.bias, a.ln.eps) : a.x;
  const qkv = linearRef(input, a.weight, R, D, W, { bias: a.bias });
  const cache = Float32Array.from(a.cache);
  const out = new Float32Array(R * D);
  for (let r = 0; r < R; r++) {
    const len = a.lengths[r]!;
    for (let c = 0; c < 2 * D; c++) cache[(r * C + len) * W + c] = a.store(qkv[r * W + c]!);
    const rowCache = cache.subarray(r * C * W, (r + 1) * C * W);
    const q = { data: qkv.subarray(r * W, (r + 1) * W), batch: 1, length: 1, rowStride: W, column: 2 * D };
    const k = { data: rowCache, batch: 1, length: C, rowStride: W, column: 0 };
    const v = { data: rowCache, batch: 1, length: C, rowStride: W, column: D };
    const mask = { data: Array.prototype.slice.call(a.mask, r * C, (r + 1) * C) as number[], rowStride: C };
    out.set(attentionReference(q, k, v, { numHeads: a.heads, headDim: a.headDim, scale: a.scale, mask, kvLength: len + 1 }), r * D);
  }
  return { out, cache };
}
