import type { Tensor } from '../tensor.js';
import { planAttention, type AttentionOptions, type HeadsView } from './attention-plan.js';
import { chooseAttentionKernel, runAttention, runAttentionProbs } from './attention-variants.js';
import { newOutput } from './output.js';

export type { AttentionKernel, AttentionOptions, HeadsView } from './attention-plan.js';
export { MAX_HEAD_DIM } from './attention-plan.js';
export { attentionBackward, type AttentionGrads } from './attention-backward.js';

/**
 * softmax(Q K^T * scale + mask) V, fused with an online softmax, never materialising the scores.
 * q [B, Lq, *], k/v [B, Lk, *] (a Tensor is a HeadsView with column 0), each f32 or f16; statistics and
 * accumulation are f32. Returns [B, Lq, numHeads*headDim] with q's dtype.
 */
export function attention(q: Tensor | HeadsView, k: Tensor | HeadsView, v: Tensor | HeadsView, options: AttentionOptions): Tensor {
  const plan = planAttention('attention', q, k, v, options);
  const kernel = options.kernel ?? chooseAttentionKernel(plan);
  const shape = [plan.batch, plan.lq, plan.heads * plan.headDim];
  return newOutput(plan.gpu, shape, plan.q.tensor.dtype, (out) => runAttention(plan, kernel, out, options.splitChunk));
}

/** The probabilities themselves, [B, numHeads, Lq, kvLength] f32 (e.g. the Q-Former cross-attention maps). */
export function attentionProbs(q: Tensor | HeadsView, k: Tensor | HeadsView, options: AttentionOptions): Tensor {
  const plan = planAttention('attentionProbs', q, k, null, { ...options, lse: undefined });
  return newOutput(plan.gpu, [plan.batch, plan.heads, plan.lq, plan.kvLength], 'f32', (out) => runAttentionProbs(plan, out));
}
