import { SCORE_FLOOR } from './softmax.js';

/**
 * Plain TypeScript attention (f64 arithmetic, scores materialised): the oracle of the attention kernel
 * tests. It follows the kernels' conventions exactly:
 * - score(i, j) = scale * q_i . k_j + mask[b, j], clamped below at SCORE_FLOOR;
 * - query i sees keys j < kvLength, and with `causal` only j <= kvLength - Lq + i;
 * - a query whose visible keys are all masked (-Infinity or float32's lowest) gets uniform weights over
 *   those visible keys, never NaN.
 */

/** Heads inside host rows: [batch, length, rowStride], head h at columns column + h*headDim .. */
export interface HostHeads {
  data: ArrayLike<number>;
  batch: number;
  length: number;
  rowStride: number;
  column?: number;
}

export interface HostAttentionOptions {
  numHeads: number;
  headDim: number;
  scale: number;
  causal?: boolean;
  /** Additive mask rows, [batch, rowStride]; the first kvLength entries of each row are used. */
  mask?: { data: ArrayLike<number>; rowStride: number };
  kvLength?: number;
}

function at(t: HostHeads, b: number, row: number, head: number, headDim: number, c: number): number {
  return t.data[(b * t.length + row) * t.rowStride + (t.column ?? 0) + head * headDim + c]!;
}

/** Visible, masked, clamped scores of one query row, with -Infinity for invisible keys. */
function scoreRow(q: HostHeads, k: HostHeads, o: HostAttentionOptions, b: number, h: number, i: number): Float64Array {
  const kvLength = o.kvLength ?? k.length;
  const lastVisible = o.causal ? kvLength - q.length + i : kvLength - 1;
  const scores = new Float64Array(kvLength).fill(-Infinity);
  for (let j = 0; j <= Math.min(lastVisible, kvLength - 1); j++) {
    let dot = 0;
    for (let c = 0; c < o.headDim; c++) dot += at(q, b, i, h, o.headDim, c) * at(k, b, j, h, o.headDim, c);
    const masked = o.scale * dot + (o.mask ? o.mask.data[b * o.mask.rowStride + j]! : 0);
    scores[j] = Math.max(masked, SCORE_FLOOR);
  }
  return scores;
}

function probsOfRow(scores: Float64Array): Float64Array {
  let max = -Infinity;
  for (const s of scores) max = Math.max(max, s);
  const p = new Float64Array(scores.length);
  if (max === -Infinity) return p;
  let sum = 0;
  for (let j = 0; j < scores.length; j++) {
    p[j] = scores[j] === -Infinity ? 0 : Math.exp(scores[j]! - max);
    sum += p[j]!;
  }
  for (let j = 0; j < p.length; j++) p[j] = p[j]! / sum;
  return p;
}

/** softmax(Q K^T * scale + mask) V as [batch, Lq, numHeads*headDim]. */
export function attentionReference(q: HostHeads, k: HostHeads, v: HostHeads, o: HostAttentionOptions): Float32Array {
  return Float32Array.from(attentionReference64(q, k, v, o));
}

/** attentionReference in float64 throughout (finite differences need the unrounded values). */
export function attentionReference64(q: HostHeads, k: HostHeads, v: HostHeads, o: HostAttentionOptions): Float64Array {
  const { numHeads: H, headDim: D } = o;
  const out = new Float64Array(q.batch * q.length * H * D);
  for (let b = 0; b < q.batch; b++) {
    for (let i = 0; i < q.length; i++) {
      for (let h = 0; h < H; h++) {
        const p = probsOfRow(scoreRow(q, k, o, b, h, i));
        for (let c = 0; c < D; c++) {
          let acc = 0;
          for (let j = 0; j < p.length; j++) if (p[j]! !== 0) acc += p[j]! * at(v, b, j, h, D, c);
          out[((b * q.length + i) * H + h) * D + c] = acc;
        }
      }
    }
  }
  return out;
}

/** The attention probabilities as [batch, numHeads, Lq, kvLength]. */
export function attentionProbsReference(q: HostHeads, k: HostHeads, o: HostAttentionOptions): Float32Array {
  const kvLength = o.kvLength ?? k.length;
  const out = new Float32Array(q.batch * o.numHeads * q.length * kvLength);
  for (let b = 0; b < q.batch; b++) {
    for (let h = 0; h < o.numHeads; h++) {
      for (let i = 0; i < q.length; i++) {
        out.set(probsOfRow(scoreRow(q, k, o, b, h, i)), ((b * o.numHeads + h) * q.length + i) * kvLength);
      }
    }
  }
  return out;
}

/**
 * Log-sum-exp of each (query, head)'s visible scores as the pair (max, log(sum exp(s - max))), [batch, Lq,
 * numHeads, 2]: what `attention(..., { lse })` saves.
 */
export function attentionLseReference(q: HostHeads, k: HostHeads, o: HostAttentionOptions): Float64Array {
  const out = new Float64Array(q.batch * q.length * o.numHeads * 2);
  for (let b = 0; b < q.batch; b++) {
    for (let i = 0; i < q.length; i++) {
      for (let h = 0; h < o.numHeads; h++) {
        const s = scoreRow(q, k, o, b, h, i);
        let max = -Infinity;
        for (const x of s) max = Math.max(max, x);
        let sum = 0;
        for (const x of s) if (x !== -Infinity) sum += Math.exp(x - max);
        const r = (b * q.length + i) * o.numHeads + h;
        out[2 * r] = max;
        out[2 * r + 1] = Math.log(sum);
      }
    }
  }
  return out;
}

export interface AttentionGradsReference {
  /** Gradients shaped like the operands' host arrays (only their head columns are non-zero). */
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

/**
 * Gradients of attentionReference given dOut ([batch, Lq, numHeads*headDim]), in float64, from the definition:
 * dv_j += p_ij dO_i; dS_ij = p_ij (dO_i.v_j - sum_l p_il dO_i.v_l); dq_i += scale dS_ij k_j, dk_j += scale dS_ij q_i,
 * where a score clamped at SCORE_FLOOR passes nothing to q and k.
 */
export function attentionBackwardReference(q: HostHeads, k: HostHeads, v: HostHeads, dOut: ArrayLike<number>, o: HostAttentionOptions): AttentionGradsReference {
  const { numHeads: H, headDim: D } = o;
  const dq = new Float64Array(q.data.length);
  const dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  const idx = (t: HostHeads, b: number, row: number, h: number, c: number) => (b * t.length + row) * t.rowStride + (t.column ?? 0) + h * D + c;
  for (let b = 0; b < q.batch; b++) {
    for (let i = 0; i < q.length; i++) {
      for (let h = 0; h < H; h++) {
        const s = scoreRow(q, k, o, b, h, i);
        const p = probsOfRow(s);
        const g = (c: number) => dOut[((b * q.length + i) * H + h) * D + c]!;
        const dp = new Float64Array(p.length);
        let delta = 0;
        for (let j = 0; j < p.length; j++) {
          if (s[j] === -Infinity) continue;
          for (let c = 0; c < D; c++) dp[j]! += g(c) * at(v, b, j, h, D, c);
          delta += p[j]! * dp[j]!;
        }
        for (let j = 0; j < p.length; j++) {
          if (s[j] === -Infinity) continue;
          for (let c = 0; c < D; c++) dv[idx(v, b, j, h, c)]! += p[j]! * g(c);
          // The clamp at SCORE_FLOOR has derivative 0 (fully masked keys).
          let dot = 0;
          for (let c = 0; c < D; c++) dot += at(q, b, i, h, D, c) * at(k, b, j, h, D, c);
          const raw = o.scale * dot + (o.mask ? o.mask.data[b * o.mask.rowStride + j]! : 0);
          if (raw <= SCORE_FLOOR) continue;
          const ds = p[j]! * (dp[j]! - delta);
          for (let c = 0; c < D; c++) {
            dq[idx(q, b, i, h, c)]! += o.scale * ds * at(k, b, j, h, D, c);
            dk[idx(k, b, j, h, c)]! += o.scale * ds * at(q, b, i, h, D, c);
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
