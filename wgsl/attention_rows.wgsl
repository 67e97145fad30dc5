// Attention with one invocation per (batch, query, head [, kv split]): the whole online softmax of a
// query row lives in that invocation's registers. No workgroup memory and no barriers: the variant for
// software adapters (lavapipe), where invocations are SIMD lanes of a CPU thread.
// Defines: QT, KT, VT, MT (element types), OT (output type; f32 with SPLIT), DP (head_dim rounded up to
// 8: size of the private arrays), WG, MASK (bind an additive mask), SPLIT (write the unnormalised
// partials [m, l, acc...] of one kv chunk for attention_combine instead of the output).

// Scores are clamped at FLOOR, so -inf and float32's lowest mask value become an ordinary (tiny) score:
// a query whose visible keys are all masked gets uniform weights instead of NaN.
const FLOOR: f32 = -3.0e38;

struct Params {
  batch: u32,
  lq: u32,
  kv_len: u32,
  heads: u32,
  head_dim: u32,
  causal: u32,
  scale: f32,
  chunk: u32,       // keys per split (kv_len without SPLIT)
  splits: u32,
  grid_stride: u32, // invocations per grid row (1-D launch folded into 2-D)
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
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<${QT}>;
@group(0) @binding(2) var<storage, read> k: array<${KT}>;
@group(0) @binding(3) var<storage, read> v: array<${VT}>;
#if MASK
@group(0) @binding(4) var<storage, read> mask: array<${MT}>;
@group(0) @binding(5) var<storage, read_write> out: array<${OT}>;
#else
@group(0) @binding(4) var<storage, read_write> out: array<${OT}>;
#endif

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let idx = gid.x + gid.y * p.grid_stride;
  if (idx >= p.batch * p.lq * p.heads * p.splits) { return; }
  let split = idx % p.splits;
  let row_head = idx / p.splits;
  let h = row_head % p.heads;
  let row = row_head / p.heads;
  let i = row % p.lq;
  let b = row / p.lq;
  let d = p.head_dim;

  var visible_end = p.kv_len;
  if (p.causal != 0u) { visible_end = p.kv_len - p.lq + i + 1u; }
  let start = split * p.chunk;
  let end = min(visible_end, start + p.chunk);

  var qr: array<f32, ${DP}>;
  let q_base = p.q_off + b * p.q_batch + i * p.q_row + h * d;
  for (var c = 0u; c < d; c++) { qr[c] = f32(q[q_base + c]) * p.scale; }

  var acc: array<f32, ${DP}>;
  var m = FLOOR;
  var l = 0.0;
  for (var j = start; j < end; j++) {
    let k_base = p.k_off + b * p.k_batch + j * p.k_row + h * d;
    var s = 0.0;
    for (var c = 0u; c < d; c++) { s += qr[c] * f32(k[k_base + c]); }
#if MASK
    s += f32(mask[p.m_off + b * p.m_batch + j]);
#endif
    s = max(s, FLOOR);
    if (s > m) {
      // A new maximum: rescale what was accumulated against the old one (rare after the first keys).
      let alpha = exp(m - s);
      l *= alpha;
      for (var c = 0u; c < d; c++) { acc[c] *= alpha; }
      m = s;
    }
    let w = exp(s - m);
    l += w;
    let v_base = p.v_off + b * p.v_batch + j * p.v_row + h * d;
    for (var c = 0u; c < d; c++) { acc[c] += w * f32(v[v_base + c]); }
  }

#if SPLIT
  let o_base = p.o_off + idx * (d + 2u);
  out[o_base] = m;
  out[o_base + 1u] = l;
  for (var c = 0u; c < d; c++) { out[o_base + 2u + c] = acc[c]; }
#else
  let inv = select(0.0, 1.0 / l, l > 0.0);
  let o_base = p.o_off + row_head * d;
  for (var c = 0u; c < d; c++) { out[o_base + c] = ${OT}(acc[c] * inv); }
#endif
}
