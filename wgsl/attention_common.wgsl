// Shared part of the attention kernels (attention_rows, flash_attention, attention_decode,
// attention_probs): parameters, bindings, operand addressing, causal visibility and the masked score.
// It is never compiled alone: each kernel pulls it in with `#include attention_common`.
//
// Operands: head h of row j of q (k, v) in batch b starts at element q_off + b * q_batch + j * q_row +
// h * head_dim; the additive mask is [batch, m_batch], broadcast over heads and queries.
// Bindings: p, q, k, v (only with VT), mask (only with MASK), out.
// Defines: QT, KT, VT, MT, OT (element types; attention_probs defines no VT and binds no v), MASK,
// VEC4 (every q/k/v offset, row stride and head_dim is a multiple of 4: q/k/v are bound as vec4 arrays),
// LSE (attention_rows, attention_lanes, flash_attention: also write each (query, head)'s log-sum-exp of its
// scores, [B, Lq, heads, 2] f32, at binding LSE_BINDING, after out: what attention_backward recomputes the
// probabilities from). It is kept as the unevaluated sum max + log(sum exp(s - max)): a row whose keys are
// all masked has max = FLOOR, where adding log(n) would be lost to rounding and with it the uniform weights.

#include exp_common

// Scores are clamped at FLOOR, so -inf and float32's lowest mask value become an ordinary (tiny) score:
// a query whose visible keys are all masked gets uniform weights instead of NaN.
const FLOOR: f32 = -3.0e38;
// The score of a key a query may not see: below FLOOR, so exp(EXCLUDED - m) == 0.
const EXCLUDED: f32 = -3.4e38;

struct Params {
  batch: u32,
  lq: u32,
  kv_len: u32,
  heads: u32,
  head_dim: u32,
  causal: u32,
  scale: f32,
  chunk: u32,       // keys per split (kv_len for the kernels that do not split)
  splits: u32,
  grid_stride: u32, // workgroups or invocations per grid row (1-D launch folded into 2-D)
  q_off: u32,       // element offsets of head 0 (binding offset + view column); row and batch strides
  q_row: u32,
  q_batch: u32,
  k_off: u32,
  k_row: u32,
  k_batch: u32,
  v_off: u32,
  v_row: u32,
  v_batch: u32,
  m_off: u32,
  m_batch: u32,
  o_off: u32,
  lse_off: u32,     // LSE; the backward kernels use the next three as well
  o2_off: u32,      // dv (attention_backward DKV)
  g_off: u32,       // dO
  s_off: u32,       // packed (lse, delta) per (query, head)
}

#if VEC4
alias QElement = vec4<${QT}>;
alias KElement = vec4<${KT}>;
#else
alias QElement = ${QT};
alias KElement = ${KT};
#endif

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<QElement>;
@group(0) @binding(2) var<storage, read> k: array<KElement>;
#if VT
#if VEC4
alias VElement = vec4<${VT}>;
#else
alias VElement = ${VT};
#endif
@group(0) @binding(3) var<storage, read> v: array<VElement>;
#if MASK
@group(0) @binding(4) var<storage, read> mask: array<${MT}>;
@group(0) @binding(5) var<storage, read_write> out: array<${OT}>;
#else
@group(0) @binding(4) var<storage, read_write> out: array<${OT}>;
#endif
#else
#if MASK
@group(0) @binding(3) var<storage, read> mask: array<${MT}>;
@group(0) @binding(4) var<storage, read_write> out: array<${OT}>;
#else
@group(0) @binding(3) var<storage, read_write> out: array<${OT}>;
#endif
#endif

#if LSE
@group(0) @binding(${LSE_BINDING}) var<storage, read_write> lse_out: array<f32>;
#endif

// Saves the log-sum-exp m + log(l) of a finished online softmax, as the pair (m, log l) (nothing without LSE).
fn save_lse(row_head: u32, m: f32, l: f32) {
#if LSE
  lse_out[p.lse_off + 2u * row_head] = m;
  lse_out[p.lse_off + 2u * row_head + 1u] = log(l);
#endif
}

// Element index where head h of query i of batch b starts in q (a multiple of 4 under VEC4).
fn q_index(b: u32, i: u32, h: u32) -> u32 {
  return p.q_off + b * p.q_batch + i * p.q_row + h * p.head_dim;
}

fn k_index(b: u32, key: u32, h: u32) -> u32 {
  return p.k_off + b * p.k_batch + key * p.k_row + h * p.head_dim;
}

#if VT
fn v_index(b: u32, key: u32, h: u32) -> u32 {
  return p.v_off + b * p.v_batch + key * p.v_row + h * p.head_dim;
}
#endif

// One past the last key query i sees: all of them, or under causal masking those up to its absolute
// position kv_len - lq + i (the host guarantees lq <= kv_len then).
fn visible_end(i: u32) -> u32 {
  if (p.causal != 0u) { return p.kv_len - p.lq + i + 1u; }
  return p.kv_len;
}

// The score of `key` for a query of batch b, from the scaled dot product q.k: plus the mask, clamped.
fn masked_score(dot: f32, b: u32, key: u32) -> f32 {
#if MASK
  return max(dot + f32(mask[p.m_off + b * p.m_batch + key]), FLOOR);
#else
  return max(dot, FLOOR);
#endif
}

// Where the unnormalised partials [m, l, acc...] of one kv split of a (query row, head) pair start in
// out (split kernels; attention_combine merges them).
fn partial_index(row_head: u32, split: u32) -> u32 {
  return p.o_off + (row_head * p.splits + split) * (p.head_dim + 2u);
}
