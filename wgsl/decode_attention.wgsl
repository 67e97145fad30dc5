// Attention of one decode step (one new token per row), with the cache length of each row read from the state
// buffer, so one captured dispatch serves every step. A workgroup per (head, row): it appends the token's key
// and value to the cache at row len, then its WG invocations split the len + 1 visible keys between them
// (online softmax each, keys j = li, li + WG, ...) and merge their partial results through workgroup memory.
// The new token's own key and value come from workgroup memory, never from the cache row being written.
//
// FUSED (software adapters): the workgroup first computes its head's query, key and value itself: the 3 x
// head_dim rows of the fused [k; v; q] projection that belong to the head, as a GEMV over the row's hidden state
// with the linear family's loaders (linear_common: B formats, the LayerNorm prologue with LN, 8-lane sharing of
// x with A_LANES). One dispatch then does LayerNorm + q/k/v projection + attention: measured on lavapipe, where
// every dispatch costs ~0.2-0.3 ms of fixed overhead, and a layer's kernels are few and long. Without FUSED the
// query, key and value come from a [R, 3D] tensor written by the projection (GPUs: the GEMV wants far more
// workgroups than heads x rows).
//
// Defines: KT (cache type), WG (invocations, a multiple of 8), HD (head_dim), CH (output dims merged per round),
// FUSED, and with FUSED those of linear_common (A_T f32, C_T f32, MR 1, B_NK, LN...) plus RP (projection rows per
// invocation, ceil(3 HD / WG)) and ST_BINDING, CACHE_BINDING (the bindings after linear_common's).
// The output is [R, D] f32 (linear_common's `c` under FUSED).

#if FUSED
#include linear_common
@group(0) @binding(${ST_BINDING}) var<storage, read> st: array<u32>;
@group(0) @binding(${CACHE_BINDING}) var<storage, read_write> cache: array<${KT}>;
#else
#include exp_common
@group(0) @binding(0) var<storage, read> st: array<u32>;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> cache: array<${KT}>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
#endif
#include decode_common

const FLOOR: f32 = -3.0e38;

// The new token's key, value and (scaled) query for this head: cur[0 .. HD) key, [HD, 2 HD) value, [2 HD, 3 HD) query.
var<workgroup> cur: array<f32, 3u * ${HD}u>;
var<workgroup> part: array<f32, ${WG}u>;
var<workgroup> merge: array<f32, ${WG}u * ${CH}u>;

#if FUSED
// Rows j = li + t * WG (t < RP) of the head's 3 x HD projection rows: j / HD selects key, value or query,
// weight row (j / HD) * D + h * HD + j % HD. Returns the dot products (bias not added).
fn project(r: u32, h: u32, li: u32, lane: u32) -> array<f32, ${RP}> {
  let D = hdr(H_HIDDEN);
  var brow: array<u32, ${RP}>;
  for (var t = 0u; t < ${RP}u; t++) {
    let j = min(li + t * ${WG}u, 3u * ${HD}u - 1u); // idle slots re-read the last row
    brow[t] = p.b_off + ((j / ${HD}u) * D + h * ${HD}u + j % ${HD}u) * p.ldb;
  }
  let a0 = a_row_start(r, 0u);
  var acc: array<vec4<f32>, ${RP}>;
  let k4 = p.K & ~3u;
#if A_LANES
  for (var k = 0u; k < k4; k += 8u) {
    let v = ld_a_lane(a0 + k + lane);
    let xa = vec4<f32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u));
    let xb = vec4<f32>(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
    for (var t = 0u; t < ${RP}u; t++) {
      let w = ld_b8(brow[t] + k);
      acc[t] = fma(xa, w[0], fma(xb, w[1], acc[t]));
    }
  }
#elif B_WIDE
  for (var k = 0u; k < k4; k += 8u) {
    let xa = ld_a4(a0 + k);
    let xb = ld_a4(a0 + k + 4u);
    for (var t = 0u; t < ${RP}u; t++) {
      let w = ld_b8(brow[t] + k);
      acc[t] = fma(xa, w[0], fma(xb, w[1], acc[t]));
    }
  }
#else
  for (var k = 0u; k < k4; k += 4u) {
    let xa = ld_a4(a0 + k);
    for (var t = 0u; t < ${RP}u; t++) { acc[t] = fma(xa, ld_b4(brow[t] + k), acc[t]); }
  }
#endif
  var out: array<f32, ${RP}>;
  for (var t = 0u; t < ${RP}u; t++) {
    var s = dot(acc[t], vec4<f32>(1.0));
#if !VEC
    for (var k = k4; k < p.K; k++) { s = fma(ld_a1(a0 + k), ld_b1(brow[t] + k), s); }
#endif
    out[t] = s;
  }
  return out;
}
#endif

@compute @workgroup_size(${WG})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
#if A_LANES
  @builtin(subgroup_invocation_id) lane: u32,
#endif
) {
  let h = wid.x;
  let r = wid.y;
  let D = hdr(H_HIDDEN);
  let C = hdr(H_CAPACITY);
  let W = hdr(H_WIDTH);
  let scale = bitcast<f32>(hdr(H_SCALE));

#if FUSED
#if LN
  ln_prologue(r, li);
#endif
#if A_LANES
  let y = project(r, h, li, lane);
#else
  let y = project(r, h, li, 0u);
#endif
  for (var t = 0u; t < ${RP}u; t++) {
    let j = li + t * ${WG}u;
    if (j < 3u * ${HD}u) {
      var v = y[t];
      if ((p.flags & FLAG_BIAS) != 0u) { v += f32(bias[p.bias_off + (j / ${HD}u) * D + h * ${HD}u + j % ${HD}u]); }
      cur[j] = v;
    }
  }
#else
  for (var j = li; j < 3u * ${HD}u; j += ${WG}u) {
    cur[j] = qkv[r * W + (j / ${HD}u) * D + h * ${HD}u + j % ${HD}u];
  }
#endif
  workgroupBarrier();

  // Append the key and value to the cache; keep the stored (possibly f16-rounded) values, which is what the
  // following steps will read back, and scale the query.
  let len = row_len(r);
  let slot = (r * C + len) * W + h * ${HD}u;
  for (var d = li; d < ${HD}u; d += ${WG}u) {
    let k = ${KT}(cur[d]);
    let v = ${KT}(cur[${HD}u + d]);
    cache[slot + d] = k;
    cache[slot + D + d] = v;
    cur[d] = f32(k);
    cur[${HD}u + d] = f32(v);
    cur[2u * ${HD}u + d] *= scale;
  }
  workgroupBarrier();

  var q: array<f32, ${HD}>;
  for (var d = 0u; d < ${HD}u; d++) { q[d] = cur[2u * ${HD}u + d]; }
  var acc: array<f32, ${HD}>;
  var m = FLOOR;
  var l = 0.0;
  for (var j = li; j <= len; j += ${WG}u) {
    let base = (r * C + j) * W + h * ${HD}u;
    var dot = 0.0;
    if (j == len) {
      for (var d = 0u; d < ${HD}u; d++) { dot += q[d] * cur[d]; }
    } else {
      for (var d = 0u; d < ${HD}u; d++) { dot += q[d] * f32(cache[base + d]); }
    }
    let s = max(dot + mask_at(r, j), FLOOR);
    if (s > m) {
      let alpha = exp_precise(m - s);
      l *= alpha;
      for (var d = 0u; d < ${HD}u; d++) { acc[d] *= alpha; }
      m = s;
    }
    let w = exp_precise(s - m);
    l += w;
    if (j == len) {
      for (var d = 0u; d < ${HD}u; d++) { acc[d] += w * cur[${HD}u + d]; }
    } else {
      for (var d = 0u; d < ${HD}u; d++) { acc[d] += w * f32(cache[base + D + d]); }
    }
  }

  // Merge: every invocation's (m, l, acc) rescaled to the common maximum.
  part[li] = m;
  workgroupBarrier();
  var big_m = FLOOR;
  for (var i = 0u; i < ${WG}u; i++) { big_m = max(big_m, part[i]); }
  let f = exp_precise(m - big_m);
  workgroupBarrier();
  part[li] = l * f;
  workgroupBarrier();
  var big_l = 0.0;
  for (var i = 0u; i < ${WG}u; i++) { big_l += part[i]; }
  let inv = select(0.0, 1.0 / big_l, big_l > 0.0);
  for (var d0 = 0u; d0 < ${HD}u; d0 += ${CH}u) {
    for (var c2 = 0u; c2 < ${CH}u; c2++) {
      merge[li * ${CH}u + c2] = select(0.0, acc[min(d0 + c2, ${HD}u - 1u)] * f, d0 + c2 < ${HD}u);
    }
    workgroupBarrier();
    if (li < ${CH}u && d0 + li < ${HD}u) {
      var o = 0.0;
      for (var i = 0u; i < ${WG}u; i++) { o += merge[i * ${CH}u + li]; }
      c[r * D + h * ${HD}u + d0 + li] = o * inv;
    }
    workgroupBarrier();
  }
}
