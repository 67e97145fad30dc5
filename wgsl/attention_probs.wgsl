// Attention probabilities softmax(Q K^T * scale + mask) written out as [batch, heads, Lq, kv_len] f32
// (for looking at attention maps; the forward pass uses the fused kernels that never store them).
// One workgroup per (batch, head, query) row. The row is written as scores, then as exp(s - max), then
// normalised: each thread only rereads what it wrote itself, so three barriers per row suffice.
// Defines: QT, KT, MT (element types), DP (head_dim rounded up to 8), WG, MASK.

const FLOOR: f32 = -3.0e38;   // scores are clamped here (see attention_rows.wgsl)
const EXCLUDED: f32 = -3.4e38; // keys the query may not see: exp(EXCLUDED - max) == 0

struct Params {
  batch: u32,
  lq: u32,
  kv_len: u32,
  heads: u32,
  head_dim: u32,
  causal: u32,
  scale: f32,
  chunk: u32,
  splits: u32,
  grid_stride: u32, // workgroups per grid row (launch folded into 2-D)
  q_off: u32,
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
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<${QT}>;
@group(0) @binding(2) var<storage, read> k: array<${KT}>;
#if MASK
@group(0) @binding(3) var<storage, read> mask: array<${MT}>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
#else
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
#endif

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

  for (var c = lid; c < d; c += ${WG}u) { q_s[c] = f32(q[p.q_off + b * p.q_batch + i * p.q_row + h * d + c]) * p.scale; }
  workgroupBarrier();

  var last_key = p.kv_len - 1u;
  if (p.causal != 0u) { last_key = p.kv_len - p.lq + i; }
  let o_base = p.o_off + row * p.kv_len;

  var local_max = FLOOR;
  for (var j = lid; j < p.kv_len; j += ${WG}u) {
    var s = EXCLUDED;
    if (j <= last_key) {
      let k_base = p.k_off + b * p.k_batch + j * p.k_row + h * d;
      var dot = 0.0;
      for (var c = 0u; c < d; c++) { dot += q_s[c] * f32(k[k_base + c]); }
#if MASK
      dot += f32(mask[p.m_off + b * p.m_batch + j]);
#endif
      s = max(dot, FLOOR);
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
    let e = exp(out[o_base + j] - row_max);
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
