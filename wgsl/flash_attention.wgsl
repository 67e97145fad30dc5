// Flash attention for GPUs: a workgroup takes BQ queries of one (batch, head) and streams K/V through
// workgroup memory in tiles of BK keys with an online softmax; scores are never written to memory.
// TPR threads share a query row: for scores each owns keys lane, lane+TPR, ...; for the output each owns
// dims lane, lane+TPR, ... Every thread of a row repeats the row's max/sum bookkeeping on the same
// values, which replaces a cross-thread reduction (and its barriers) by a few broadcast reads.
// Defines (beyond attention_common): DP (head_dim rounded up to TPR), BQ, BK, TPR.
// K/V tiles keep the input element type (f16 stays f16: half the workgroup memory, no precision lost).

#include attention_common

const WG: u32 = ${BQ}u * ${TPR}u;
const QS: u32 = ${DP}u + 1u; // padded row strides keep the threads of a warp on different banks
const KS: u32 = ${DP}u + 1u;
const SS: u32 = ${BK}u + 1u;
const KEYS_PER_THREAD: u32 = ${BK}u / ${TPR}u;
const DIMS_PER_THREAD: u32 = ${DP}u / ${TPR}u;

var<workgroup> q_tile: array<f32, ${BQ}u * QS>;
var<workgroup> k_tile: array<${KT}, ${BK}u * KS>;
var<workgroup> v_tile: array<${VT}, ${BK}u * ${DP}u>;
var<workgroup> s_tile: array<f32, ${BQ}u * SS>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = wid.z;
  let h = wid.y;
  let q0 = wid.x * ${BQ}u;
  let d = p.head_dim;

  for (var e = lid; e < ${BQ}u * ${DP}u; e += WG) {
    let r = e / ${DP}u;
    let c = e % ${DP}u;
    var x = 0.0;
    if (q0 + r < p.lq && c < d) { x = f32(q[q_index(b, q0 + r, h) + c]) * p.scale; }
    q_tile[r * QS + c] = x;
  }

  // Keys past the last query of this block are invisible to all of it under causal masking.
  let kv_end = visible_end(min(q0 + ${BQ}u, p.lq) - 1u);

  let r = lid / ${TPR}u;
  let lane = lid % ${TPR}u;
  let i = q0 + r;
  let row_valid = i < p.lq;
  let row_end = visible_end(i);

  var acc: array<f32, DIMS_PER_THREAD>;
  var m = FLOOR;
  var l = 0.0;
  for (var kb = 0u; kb < kv_end; kb += ${BK}u) {
    workgroupBarrier(); // the previous tile's readers are done (and q_tile is complete)
    for (var e = lid; e < ${BK}u * ${DP}u; e += WG) {
      let j = e / ${DP}u;
      let c = e % ${DP}u;
      let key = kb + j;
      var kx = ${KT}(0);
      var vx = ${VT}(0);
      if (key < kv_end && c < d) {
        kx = k[k_index(b, key, h) + c];
        vx = v[v_index(b, key, h) + c];
      }
      k_tile[j * KS + c] = kx;
      v_tile[j * ${DP}u + c] = vx;
    }
    workgroupBarrier();

    // Zeroed explicitly: Dawn on lavapipe does not re-zero a var declared inside a loop body.
    var dots: array<f32, KEYS_PER_THREAD>;
    for (var t = 0u; t < KEYS_PER_THREAD; t++) { dots[t] = 0.0; }
    for (var c = 0u; c < ${DP}u; c++) {
      let qx = q_tile[r * QS + c];
      for (var t = 0u; t < KEYS_PER_THREAD; t++) { dots[t] += qx * f32(k_tile[(lane + t * ${TPR}u) * KS + c]); }
    }
    for (var t = 0u; t < KEYS_PER_THREAD; t++) {
      let key = kb + lane + t * ${TPR}u;
      var s = EXCLUDED;
      if (row_valid && key < kv_end && key < row_end) { s = masked_score(dots[t], b, key); }
      s_tile[r * SS + lane + t * ${TPR}u] = s;
    }
    workgroupBarrier();

    var tile_max = FLOOR;
    for (var j = 0u; j < ${BK}u; j++) { tile_max = max(tile_max, s_tile[r * SS + j]); }
    let m_new = max(m, tile_max);
    let alpha = exp_precise(m - m_new);
    m = m_new;
    l *= alpha;
    for (var t = 0u; t < DIMS_PER_THREAD; t++) { acc[t] *= alpha; }
    for (var j = 0u; j < ${BK}u; j++) {
      let w = exp_precise(s_tile[r * SS + j] - m);
      l += w;
      for (var t = 0u; t < DIMS_PER_THREAD; t++) { acc[t] += w * f32(v_tile[j * ${DP}u + lane + t * ${TPR}u]); }
    }
  }

  if (!row_valid) { return; }
  if (lane == 0u) { save_lse((b * p.lq + i) * p.heads + h, m, l); }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  let o_base = p.o_off + ((b * p.lq + i) * p.heads + h) * d;
  for (var t = 0u; t < DIMS_PER_THREAD; t++) {
    let c = lane + t * ${TPR}u;
    if (c < d) { out[o_base + c] = ${OT}(acc[t] * inv); }
  }
}
