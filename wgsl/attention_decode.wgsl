// Split-KV attention ("flash decoding") for GPUs, first pass: a workgroup takes one chunk of keys of
// one (batch, query, head) and writes the unnormalised partials [m, l, acc...] that attention_combine
// merges. With few queries (token-by-token decoding) the splits are what fill the GPU: 32 heads x 1 query
// alone would occupy a handful of its cores.
// Per block of WG keys: each thread scores one key (q sits in workgroup memory), the block's weights go
// through workgroup memory, then each thread accumulates its own output dims over the block, reading V
// rows with consecutive threads on consecutive elements.
// Defines: QT, KT, VT, MT (element types), DP (head_dim rounded up to WG), WG, MASK.

const FLOOR: f32 = -3.0e38;   // scores are clamped here (see attention_rows.wgsl)
const EXCLUDED: f32 = -3.4e38; // keys outside the chunk: below FLOOR, so exp(EXCLUDED - m) == 0
const DIMS_PER_THREAD: u32 = ${DP}u / ${WG}u;

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
  grid_stride: u32,
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
@group(0) @binding(3) var<storage, read> v: array<${VT}>;
#if MASK
@group(0) @binding(4) var<storage, read> mask: array<${MT}>;
@group(0) @binding(5) var<storage, read_write> part: array<f32>;
#else
@group(0) @binding(4) var<storage, read_write> part: array<f32>;
#endif

var<workgroup> q_s: array<f32, ${DP}>;
var<workgroup> s_s: array<f32, ${WG}>;
var<workgroup> w_s: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let split = wid.x;
  let h = wid.y;
  let row = wid.z;
  let i = row % p.lq;
  let b = row / p.lq;
  let d = p.head_dim;

  var visible_end = p.kv_len;
  if (p.causal != 0u) { visible_end = p.kv_len - p.lq + i + 1u; }
  let start = split * p.chunk;
  let end = min(visible_end, start + p.chunk);

  for (var c = lid; c < ${DP}u; c += ${WG}u) {
    var x = 0.0;
    if (c < d) { x = f32(q[p.q_off + b * p.q_batch + i * p.q_row + h * d + c]) * p.scale; }
    q_s[c] = x;
  }

  var acc: array<f32, DIMS_PER_THREAD>;
  var m = FLOOR;
  var l = 0.0;
  for (var kb = start; kb < end; kb += ${WG}u) {
    workgroupBarrier(); // q_s is complete; the previous block's readers of s_s/w_s are done
    let key = kb + lid;
    var s = EXCLUDED;
    if (key < end) {
      let k_base = p.k_off + b * p.k_batch + key * p.k_row + h * d;
      var dot = 0.0;
      for (var c = 0u; c < d; c++) { dot += q_s[c] * f32(k[k_base + c]); }
#if MASK
      dot += f32(mask[p.m_off + b * p.m_batch + key]);
#endif
      s = max(dot, FLOOR);
    }
    s_s[lid] = s;
    workgroupBarrier();

    var block_max = FLOOR;
    for (var j = 0u; j < ${WG}u; j++) { block_max = max(block_max, s_s[j]); }
    let m_new = max(m, block_max);
    let alpha = exp(m - m_new);
    m = m_new;
    l *= alpha;
    for (var t = 0u; t < DIMS_PER_THREAD; t++) { acc[t] *= alpha; }
    w_s[lid] = exp(s - m);
    workgroupBarrier();

    let n = min(${WG}u, end - kb);
    for (var j = 0u; j < n; j++) {
      let w = w_s[j];
      l += w;
      let v_base = p.v_off + b * p.v_batch + (kb + j) * p.v_row + h * d;
      for (var t = 0u; t < DIMS_PER_THREAD; t++) {
        let c = lid + t * ${WG}u;
        if (c < d) { acc[t] += w * f32(v[v_base + c]); }
      }
    }
  }

  let o_base = p.o_off + ((row * p.heads + h) * p.splits + split) * (d + 2u);
  if (lid == 0u) {
    part[o_base] = m;
    part[o_base + 1u] = l;
  }
  for (var t = 0u; t < DIMS_PER_THREAD; t++) {
    let c = lid + t * ${WG}u;
    if (c < d) { part[o_base + 2u + c] = acc[t]; }
  }
}
