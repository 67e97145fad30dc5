// Attention with one invocation per (batch, query, head [, kv split]): the whole online softmax of a
// query row lives in that invocation's registers. No workgroup memory and no barriers: the variant for
// software adapters (lavapipe), where invocations are SIMD lanes of a CPU thread.
// Defines: QT, KT, VT, MT (element types), OT (output type; f32 with SPLIT), DP (head_dim rounded up to
// 8: size of the private arrays), WG, MASK (bind an additive mask), SPLIT (write the unnormalised
// partials [m, l, acc...] of one kv chunk for attention_combine instead of the output), VEC4.

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
#if VEC4
// Every offset, stride and head_dim is a multiple of 4: q/k/v are read as vec4 (what a CPU rasteriser's
// SIMD code handles best), and the loops below run over groups of W = 4 elements.
alias Lanes = vec4<f32>;
const W: u32 = 4u;
@group(0) @binding(1) var<storage, read> q: array<vec4<${QT}>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<${KT}>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<${VT}>>;
fn lane_sum(x: Lanes) -> f32 { return (x.x + x.y) + (x.z + x.w); }
fn element(x: Lanes, e: u32) -> f32 { return x[e]; }
#else
alias Lanes = f32;
const W: u32 = 1u;
@group(0) @binding(1) var<storage, read> q: array<${QT}>;
@group(0) @binding(2) var<storage, read> k: array<${KT}>;
@group(0) @binding(3) var<storage, read> v: array<${VT}>;
fn lane_sum(x: Lanes) -> f32 { return x; }
fn element(x: Lanes, e: u32) -> f32 { return x; }
#endif
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
  // Neighbouring invocations (SIMD lanes on a CPU) take neighbouring queries of the same head: they read
  // the same K/V element at the same time.
  let split = idx % p.splits;
  let i = (idx / p.splits) % p.lq;
  let bh = idx / (p.splits * p.lq);
  let h = bh % p.heads;
  let b = bh / p.heads;
  let row = b * p.lq + i;
  let row_head = row * p.heads + h;
  let d = p.head_dim;

  var visible_end = p.kv_len;
  if (p.causal != 0u) { visible_end = p.kv_len - p.lq + i + 1u; }
  let start = split * p.chunk;
  let end = min(visible_end, start + p.chunk);

  let groups = d / W;
  var qr: array<Lanes, ${DP} / W>;
  let q_base = (p.q_off + b * p.q_batch + i * p.q_row + h * d) / W;
  for (var c = 0u; c < groups; c++) { qr[c] = Lanes(q[q_base + c]) * p.scale; }

  var acc: array<Lanes, ${DP} / W>;
  var m = FLOOR;
  var l = 0.0;
  for (var j = start; j < end; j++) {
    let k_base = (p.k_off + b * p.k_batch + j * p.k_row + h * d) / W;
    var dot = Lanes(0.0);
    for (var c = 0u; c < groups; c++) { dot += qr[c] * Lanes(k[k_base + c]); }
    var s = lane_sum(dot);
#if MASK
    s += f32(mask[p.m_off + b * p.m_batch + j]);
#endif
    s = max(s, FLOOR);
    if (s > m) {
      // A new maximum: rescale what was accumulated against the old one (rare after the first keys).
      let alpha = exp(m - s);
      l *= alpha;
      for (var c = 0u; c < groups; c++) { acc[c] *= alpha; }
      m = s;
    }
    let w = exp(s - m);
    l += w;
    let v_base = (p.v_off + b * p.v_batch + j * p.v_row + h * d) / W;
    for (var c = 0u; c < groups; c++) { acc[c] += w * Lanes(v[v_base + c]); }
  }

#if SPLIT
  let o_base = p.o_off + (row_head * p.splits + split) * (d + 2u);
  out[o_base] = m;
  out[o_base + 1u] = l;
  for (var c = 0u; c < d; c++) { out[o_base + 2u + c] = element(acc[c / W], c % W); }
#else
  let inv = select(0.0, 1.0 / l, l > 0.0);
  let o_base = p.o_off + row_head * d;
  for (var c = 0u; c < d; c++) { out[o_base + c] = ${OT}(element(acc[c / W], c % W) * inv); }
#endif
}
