// Attention of one decode step (one new token per row), with the cache length of each row read from the state
// buffer, so one captured dispatch serves every step. A workgroup per (HPW heads, row): it appends the token's
// keys and values to the cache at row len, then each head's GS = WG / HPW invocations split the len + 1 visible
// keys between them (online softmax each, keys j = g, g + GS, ...) and merge their partial results. The new
// token's own key and value come from workgroup memory, never from the cache row being written.
//
// FUSED (software adapters): the workgroup first computes its heads' queries, keys and values itself: the 3 x
// head_dim rows of the fused [k; v; q] projection that belong to each head, as a GEMV over the row's hidden state
// with the linear family's loaders (linear_common: B formats, the LayerNorm prologue with LN, 8-lane sharing of
// x with A_LANES). One dispatch then does LayerNorm + q/k/v projection + attention: measured on lavapipe, where
// every dispatch costs ~0.2 ms of fixed overhead. Every workgroup repeats the LayerNorm prologue, so it takes
// several heads (HPW 2 for OPT-2.7B: 16 workgroups per row; with one head each, the 32 prologues cost about 1.4 ms
// more CPU than a LayerNorm dispatch, measured at the full size on lavapipe). Without FUSED the
// query, key and value come from a [R, 3D] tensor written by the projection (GPUs: the GEMV wants far more
// workgroups than heads x rows).
//
// The partial results are merged per subgroup with subgroup operations, then across the workgroup's subgroups
// through workgroup memory after one barrier (SG_MERGE; measured on lavapipe, where a barrier saves and restores
// every invocation's live state: a merge through workgroup memory in rounds, with the head's accumulators live
// across ~14 barriers, took three times the CPU of the whole attention of attention_rows). Without subgroups the
// merge goes through workgroup memory in rounds of CH dims.
//
// Defines: KT (cache type), VEC4 (head_dim and D multiples of 4), WG (invocations, a multiple of 8), HPW (heads per workgroup; WG / HPW a multiple of
// the subgroup size), HD (head_dim), CH (output dims merged per round, HPW 1 only), SG_MERGE with NSG (the most
// subgroups a workgroup can have), FUSED, and with FUSED those of linear_common (A_T f32, C_T f32, MR 1, B_NK,
// LN...) plus RP (projection rows per invocation, ceil(3 HD HPW / WG)) and ST_BINDING, CACHE_BINDING (the bindings
// after linear_common's). The output is [R, D] f32 (linear_common's `c` under FUSED).

#if VEC4
// head_dim and every row start are multiples of 4: the cache is read and written 4 elements at a time (on
// software adapters each load instruction pays its own address and bounds work, so wide loads are cheaper).
alias CacheElement = vec4<${KT}>;
alias Lanes = vec4<f32>;
const LW = 4u;
fn lane_sum(x: Lanes) -> f32 { return (x.x + x.y) + (x.z + x.w); }
fn element(x: Lanes, e: u32) -> f32 { return x[e]; }
#else
alias CacheElement = ${KT};
alias Lanes = f32;
const LW = 1u;
fn lane_sum(x: Lanes) -> f32 { return x; }
fn element(x: Lanes, e: u32) -> f32 { return x; }
#endif

#if FUSED
#include linear_common
@group(0) @binding(${ST_BINDING}) var<storage, read> st: array<u32>;
@group(0) @binding(${CACHE_BINDING}) var<storage, read_write> cache: array<CacheElement>;
#else
#include exp_common
@group(0) @binding(0) var<storage, read> st: array<u32>;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> cache: array<CacheElement>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
#endif
#include decode_common

const FLOOR: f32 = -3.0e38;
const ROWS3 = 3u * ${HD}u;         // projection rows of one head: key, value, query
const GS = ${WG}u / ${HPW}u;       // invocations per head in the attention

// The new token's keys, values and (scaled) queries: head hl's key at cur[hl * ROWS3 .. + HD), value next, query last.
var<workgroup> cur: array<f32, ${HPW}u * ROWS3>;
#if SG_MERGE
var<workgroup> sg_m: array<f32, ${NSG}u>;
var<workgroup> sg_l: array<f32, ${NSG}u>;
var<workgroup> sg_acc: array<f32, ${NSG}u * ${HD}u>;
#else
var<workgroup> part: array<f32, ${WG}u>;
var<workgroup> merge: array<f32, ${WG}u * ${CH}u>;
#endif

// LW consecutive values of cur from e, and of the cache from element e (a multiple of LW).
fn cur_at(e: u32) -> Lanes {
#if VEC4
  return Lanes(cur[e], cur[e + 1u], cur[e + 2u], cur[e + 3u]);
#else
  return cur[e];
#endif
}

fn cache_at(e: u32) -> Lanes {
  return Lanes(cache[e / LW]);
}

// Column of the fused projection (and of a cache row) of slot j of the workgroup's HPW heads starting at h0.
fn qkv_column(h0: u32, j: u32, D: u32) -> u32 {
  let hl = j / ROWS3;
  let jj = j % ROWS3;
  return (jj / ${HD}u) * D + (h0 + hl) * ${HD}u + jj % ${HD}u;
}

#if FUSED
// Rows li + t * WG (t < RP) of the heads' projection rows (weight row qkv_column). Returns the dot products
// (bias not added).
fn project(r: u32, h0: u32, li: u32, lane: u32) -> array<f32, ${RP}> {
  let D = hdr(H_HIDDEN);
  var brow: array<u32, ${RP}>;
  for (var t = 0u; t < ${RP}u; t++) {
    let j = min(li + t * ${WG}u, ${HPW}u * ROWS3 - 1u); // idle slots re-read the last row
    brow[t] = p.b_off + qkv_column(h0, j, D) * p.ldb;
  }
  let a0 = a_row_start(r, 0u);
  var acc: array<vec4<f32>, ${RP}>;
  let k4 = p.K & ~3u;
#if QGROUPS
  // Quantized rows, K a multiple of 32, 8-lane subgroups: gemv_rows' group steps (linear_common's group_part):
  // the group's x in one 4-value load per lane, shared by broadcast, each row's codes summed unscaled and the
  // group's scale applied once.
  var qs: array<f32, ${RP}>;
  for (var k = 0u; k < p.K; k += 32u) {
    var xv: array<vec4<f32>, 1>;
    xv[0] = ld_a_lane4(a0 + k + 4u * lane);
    for (var t = 0u; t < ${RP}u; t++) {
      var d = group_part(brow[t] + k, 0u, xv)[0];
#if B_Q8
      d += group_part(brow[t] + k, 1u, xv)[0];
#endif
      qs[t] = fma(d, ld_scale(brow[t] + k), qs[t]);
    }
  }
  for (var t = 0u; t < ${RP}u; t++) { acc[t].x = qs[t]; }
#elif A_LANES
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
#if SUBGROUPS
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_size) sg_size: u32,
#endif
) {
  let h0 = wid.x * ${HPW}u;
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
  let y = project(r, h0, li, lane);
#else
  let y = project(r, h0, li, 0u);
#endif
  for (var t = 0u; t < ${RP}u; t++) {
    let j = li + t * ${WG}u;
    if (j < ${HPW}u * ROWS3) {
      var v = y[t];
      if ((p.flags & FLAG_BIAS) != 0u) { v += f32(bias[p.bias_off + qkv_column(h0, j, D)]); }
      cur[j] = v;
    }
  }
#else
  for (var j = li; j < ${HPW}u * ROWS3; j += ${WG}u) { cur[j] = qkv[r * W + qkv_column(h0, j, D)]; }
#endif
  workgroupBarrier();

  // Append the keys and values to the cache, LW elements per store; keep the stored (possibly f16-rounded)
  // values, which is what the following steps will read back, and scale the queries.
  let len = row_len(r);
  for (var i = li * LW; i < ${HPW}u * ${HD}u; i += ${WG}u * LW) {
    let hl = i / ${HD}u;
    let d = i % ${HD}u;
    let slot = (r * C + len) * W + (h0 + hl) * ${HD}u + d;
    let base = hl * ROWS3;
    let k = CacheElement(cur_at(base + d));
    let v = CacheElement(cur_at(base + ${HD}u + d));
    cache[slot / LW] = k;
    cache[(slot + D) / LW] = v;
    for (var e = 0u; e < LW; e++) {
      cur[base + d + e] = element(Lanes(k), e);
      cur[base + ${HD}u + d + e] = element(Lanes(v), e);
      cur[base + 2u * ${HD}u + d + e] *= scale;
    }
  }
  workgroupBarrier();

  // This invocation's head and its place among the head's GS invocations.
  let hl = li / GS;
  let g = li % GS;
  let own = hl * ROWS3;
  let hcol = (h0 + hl) * ${HD}u;
  const HL = ${HD}u / LW;
  var q: array<Lanes, HL>;
  for (var c = 0u; c < HL; c++) { q[c] = cur_at(own + 2u * ${HD}u + c * LW); }
  var acc: array<Lanes, HL>;
  var m = FLOOR;
  var l = 0.0;
  for (var j = g; j <= len; j += GS) {
    let base = (r * C + j) * W + hcol;
    var dot = Lanes(0.0);
    if (j == len) {
      for (var c = 0u; c < HL; c++) { dot += q[c] * cur_at(own + c * LW); }
    } else {
      for (var c = 0u; c < HL; c++) { dot += q[c] * cache_at(base + c * LW); }
    }
    let s = max(lane_sum(dot) + mask_at(r, j), FLOOR);
    if (s > m) {
      let alpha = exp_precise(m - s);
      l *= alpha;
      for (var c = 0u; c < HL; c++) { acc[c] *= alpha; }
      m = s;
    }
    let w = exp_precise(s - m);
    l += w;
    if (j == len) {
      for (var c = 0u; c < HL; c++) { acc[c] += w * cur_at(own + ${HD}u + c * LW); }
    } else {
      for (var c = 0u; c < HL; c++) { acc[c] += w * cache_at(base + D + c * LW); }
    }
  }

#if SG_MERGE
  // Merge within each subgroup (registers), then a head's subgroups through workgroup memory. A subgroup never
  // spans two heads: GS is a multiple of the subgroup size.
  let sg = li / sg_size;
  let sm = subgroupMax(m);
  let sf = exp_precise(m - sm);
  let sl = subgroupAdd(l * sf);
  if (lane == 0u) {
    sg_m[sg] = sm;
    sg_l[sg] = sl;
  }
  for (var c = 0u; c < HL; c++) {
    let a = subgroupAdd(acc[c] * sf);
    if (lane == 0u) {
      for (var e = 0u; e < LW; e++) { sg_acc[sg * ${HD}u + c * LW + e] = element(a, e); }
    }
  }
  workgroupBarrier();
  let per_head = GS / sg_size;
  for (var i = li; i < ${HPW}u * ${HD}u; i += ${WG}u) {
    let first = (i / ${HD}u) * per_head;
    let d = i % ${HD}u;
    var big_m = FLOOR;
    for (var t = first; t < first + per_head; t++) { big_m = max(big_m, sg_m[t]); }
    var big_l = 0.0;
    var o = 0.0;
    for (var t = first; t < first + per_head; t++) {
      let e = exp_precise(sg_m[t] - big_m);
      big_l += sg_l[t] * e;
      o += sg_acc[t * ${HD}u + d] * e;
    }
    c[r * D + h0 * ${HD}u + i] = select(0.0, o / big_l, big_l > 0.0);
  }
#else
  // Merge through workgroup memory (HPW 1): every invocation's (m, l, acc) rescaled to the common maximum.
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
      let d = min(d0 + c2, ${HD}u - 1u);
      merge[li * ${CH}u + c2] = select(0.0, element(acc[d / LW], d % LW) * f, d0 + c2 < ${HD}u);
    }
    workgroupBarrier();
    if (li < ${CH}u && d0 + li < ${HD}u) {
      var o = 0.0;
      for (var i = 0u; i < ${WG}u; i++) { o += merge[i * ${CH}u + li]; }
      c[r * D + hcol + d0 + li] = o * inv;
    }
    workgroupBarrier();
  }
#endif
}
