// Gradients of the fused attention (attention_rows, attention_lanes, flash_attention) in the manner of
// FlashAttention's backward pass: the probabilities are recomputed from the scores and the log-sum-exp the
// forward saved, never stored. With s = scale q.k + mask (clamped at FLOOR, as the forward), P = exp(s - lse)
// (computed as exp((s - max) - log sum) from the saved pair, which keeps fully masked rows uniform),
// dP = dO . v, delta = dO . O (attention_backward_prep) and dS = P (dP - delta):
//   DQ:  dq_i += scale sum_j dS_ij k_j                       one invocation per (batch, query, head)
//   DKV: dk_j += scale sum_i dS_ij q_i, dv_j += sum_i P_ij dO_i   one invocation per (batch, key, head)
// Two passes over the score matrix, each owning its outputs: no atomics (WGSL has none for floats), and the
// sums run in a fixed order, so results are deterministic. Scores clamped at FLOOR (fully masked keys) pass
// no gradient to q and k, as the clamp's derivative is 0 there. Outputs are added to (callers zero them), so
// q, k and v may be views of one tensor (OPT's fused [k | v | q] projection) with one gradient tensor.
// Output views have the row stride and column of their operand; only their binding offsets differ.
// Defines (beyond attention_common, whose VT is defined, OT = f32 for the gradients, GT for dO): DP (head_dim
// rounded up to 8), WG, DKV (else DQ), DV_IN_OUT (dk and dv lie in one tensor, bound once: WebGPU forbids
// two writable bindings of one buffer).

#include attention_common

#if DKV
#if !DV_IN_OUT
@group(0) @binding(${DV_BINDING}) var<storage, read_write> dv: array<f32>;
#endif
@group(0) @binding(${DO_BINDING}) var<storage, read> dout: array<${GT}>;
@group(0) @binding(${STATS_BINDING}) var<storage, read> stats: array<f32>;
#else
@group(0) @binding(${DO_BINDING}) var<storage, read> dout: array<${GT}>;
@group(0) @binding(${STATS_BINDING}) var<storage, read> stats: array<f32>;
#endif

#if VEC4
alias Lanes = vec4<f32>;
const W: u32 = 4u;
fn lane_sum(x: Lanes) -> f32 { return (x.x + x.y) + (x.z + x.w); }
fn element(x: Lanes, e: u32) -> f32 { return x[e]; }
fn ld_do(e: u32) -> Lanes { return Lanes(f32(dout[e]), f32(dout[e + 1u]), f32(dout[e + 2u]), f32(dout[e + 3u])); }
#else
alias Lanes = f32;
const W: u32 = 1u;
fn lane_sum(x: Lanes) -> f32 { return x; }
fn element(x: Lanes, e: u32) -> f32 { return x; }
fn ld_do(e: u32) -> Lanes { return f32(dout[e]); }
#endif

// The masked score before the clamp (the clamp decides whether q and k get a gradient).
fn raw_score(dot: f32, b: u32, key: u32) -> f32 {
#if MASK
  return dot + f32(mask[p.m_off + b * p.m_batch + key]);
#else
  return dot;
#endif
}

// Element index of dO for (batch, query, head): the forward's output layout [B, Lq, heads * head_dim].
fn do_index(b: u32, i: u32, h: u32) -> u32 {
  return p.g_off + ((b * p.lq + i) * p.heads + h) * p.head_dim;
}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let d = p.head_dim;
  let groups = d / W;
#if DKV
  let idx = gid.x + gid.y * p.grid_stride;
  if (idx >= p.batch * p.kv_len * p.heads) { return; }
  // Neighbouring invocations take neighbouring keys of one head.
  let j = idx % p.kv_len;
  let bh = idx / p.kv_len;
  let h = bh % p.heads;
  let b = bh / p.heads;

  var kr: array<Lanes, ${DP} / W>;
  var vr: array<Lanes, ${DP} / W>;
  let k_base = k_index(b, j, h) / W;
  let v_base = v_index(b, j, h) / W;
  for (var c = 0u; c < groups; c++) {
    kr[c] = Lanes(k[k_base + c]);
    vr[c] = Lanes(v[v_base + c]);
  }
  var dk: array<Lanes, ${DP} / W>;
  var dvv: array<Lanes, ${DP} / W>;
  // Query i sees key j when j < visible_end(i): under causal masking from i = j - (kv_len - lq) on.
  var first = 0u;
  if (p.causal != 0u && j + p.lq > p.kv_len) { first = j + p.lq - p.kv_len; }
  for (var i = first; i < p.lq; i++) {
    let q_base = q_index(b, i, h) / W;
    let g_base = do_index(b, i, h);
    var qk = Lanes(0.0);
    var gv = Lanes(0.0);
    for (var c = 0u; c < groups; c++) {
      qk += Lanes(q[q_base + c]) * p.scale * kr[c];
      gv += ld_do(g_base + c * W) * vr[c];
    }
    let st = 3u * ((b * p.lq + i) * p.heads + h) + p.s_off;
    let raw = raw_score(lane_sum(qk), b, j);
    let prob = exp_precise((max(raw, FLOOR) - stats[st]) - stats[st + 1u]);
    let ds = select(0.0, prob * (lane_sum(gv) - stats[st + 2u]), raw > FLOOR);
    for (var c = 0u; c < groups; c++) {
      dk[c] += ds * Lanes(q[q_base + c]);
      dvv[c] += prob * ld_do(g_base + c * W);
    }
  }
  let dk_base = p.o_off + b * p.k_batch + j * p.k_row + h * d;
  let dv_base = p.o2_off + b * p.v_batch + j * p.v_row + h * d;
  for (var c = 0u; c < d; c++) {
    out[dk_base + c] += p.scale * element(dk[c / W], c % W);
#if DV_IN_OUT
    out[dv_base + c] += element(dvv[c / W], c % W);
#else
    dv[dv_base + c] += element(dvv[c / W], c % W);
#endif
  }
#else
  let idx = gid.x + gid.y * p.grid_stride;
  if (idx >= p.batch * p.lq * p.heads) { return; }
  let i = idx % p.lq;
  let bh = idx / p.lq;
  let h = bh % p.heads;
  let b = bh / p.heads;
  let st = 3u * ((b * p.lq + i) * p.heads + h) + p.s_off;
  let row_max = stats[st];
  let log_sum = stats[st + 1u];
  let delta = stats[st + 2u];

  var qr: array<Lanes, ${DP} / W>;
  var gr: array<Lanes, ${DP} / W>;
  let q_base = q_index(b, i, h) / W;
  let g_base = do_index(b, i, h);
  for (var c = 0u; c < groups; c++) {
    qr[c] = Lanes(q[q_base + c]) * p.scale;
    gr[c] = ld_do(g_base + c * W);
  }
  var dq: array<Lanes, ${DP} / W>;
  let end = visible_end(i);
  for (var j = 0u; j < end; j++) {
    let k_base = k_index(b, j, h) / W;
    let v_base = v_index(b, j, h) / W;
    var qk = Lanes(0.0);
    var gv = Lanes(0.0);
    for (var c = 0u; c < groups; c++) {
      qk += qr[c] * Lanes(k[k_base + c]);
      gv += gr[c] * Lanes(v[v_base + c]);
    }
    let raw = raw_score(lane_sum(qk), b, j);
    let prob = exp_precise((max(raw, FLOOR) - row_max) - log_sum);
    let ds = select(0.0, prob * (lane_sum(gv) - delta), raw > FLOOR);
    for (var c = 0u; c < groups; c++) { dq[c] += ds * Lanes(k[k_base + c]); }
  }
  let dq_base = p.o_off + b * p.q_batch + i * p.q_row + h * d;
  for (var c = 0u; c < d; c++) { out[dq_base + c] += p.scale * element(dq[c / W], c % W); }
#endif
}
