// Attention probabilities softmax(Q K^T * scale + mask) written out as [batch, heads, Lq, kv_len] f32
// (for looking at attention maps; the forward pass uses the fused kernels that never store them).
// One workgroup per (batch, head, query) row. The row is written as scores, then as exp(s - max), then
// normalised: each thread only rereads what it wrote itself, so three barriers per row suffice.
// Defines (beyond attention_common; no VT, OT is f32): DP (head_dim rounded up to 8), WG.

#include attention_common

var<workgroup> q_s: array<f32, ${DP}>;
var<workgroup> red: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_stride;
  if (row >= p.batch * p.heads * p.lq) { return; }
  let i = row % p.lq;
  let h = (row / p.lq) % p.heads;
  let b = row / (p.lq * p.heads);
  let d = p.head_dim;

  let q_base = q_index(b, i, h);
  for (var c = lid; c < d; c += ${WG}u) { q_s[c] = f32(q[q_base + c]) * p.scale; }
  workgroupBarrier();

  let row_end = visible_end(i);
  let o_base = p.o_off + row * p.kv_len;

  var local_max = FLOOR;
  for (var j = lid; j < p.kv_len; j += ${WG}u) {
    var s = EXCLUDED;
    if (j < row_end) {
      let k_base = k_index(b, j, h);
      var dot = 0.0;
      for (var c = 0u; c < d; c++) { dot += q_s[c] * f32(k[k_base + c]); }
      s = masked_score(dot, b, j);
    }
    out[o_base + j] = s;
    local_max = max(local_max, s);
  }
  red[lid] = local_max;
  workgroupBarrier();
  var row_max = FLOOR;
  for (var t = 0u; t < ${WG}u; t++) { row_max = max(row_max, red[t]); }
  workgroupBarrier(); // everyone has read red before it is reused

  var local_sum = 0.0;
  for (var j = lid; j < p.kv_len; j += ${WG}u) {
    let e = exp_precise(out[o_base + j] - row_max);
    out[o_base + j] = e;
    local_sum += e;
  }
  red[lid] = local_sum;
  workgroupBarrier();
  var row_sum = 0.0;
  for (var t = 0u; t < ${WG}u; t++) { row_sum += red[t]; }

  let inv = select(0.0, 1.0 / row_sum, row_sum > 0.0);
  for (var j = lid; j < p.kv_len; j += ${WG}u) { out[o_base + j] *= inv; }
}
