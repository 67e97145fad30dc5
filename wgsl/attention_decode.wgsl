// Split-KV attention ("flash decoding") for GPUs, first pass: a workgroup takes one chunk of keys of
// one (batch, query, head) and writes the unnormalised partials [m, l, acc...] that attention_combine
// merges. With few queries (token-by-token decoding) the splits are what fill the GPU: 32 heads x 1 query
// alone would occupy a handful of its cores.
// Per block of WG keys: each thread scores one key (q sits in workgroup memory), the block's weights go
// through workgroup memory, then each thread accumulates its own output dims over the block, reading V
// rows with consecutive threads on consecutive elements.
// Defines (beyond attention_common; OT is f32): DP (head_dim rounded up to WG), WG.

#include attention_common

const DIMS_PER_THREAD: u32 = ${DP}u / ${WG}u;

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

  let start = split * p.chunk;
  let end = min(visible_end(i), start + p.chunk);

  for (var c = lid; c < ${DP}u; c += ${WG}u) {
    var x = 0.0;
    if (c < d) { x = f32(q[q_index(b, i, h) + c]) * p.scale; }
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
      let k_base = k_index(b, key, h);
      var dot = 0.0;
      for (var c = 0u; c < d; c++) { dot += q_s[c] * f32(k[k_base + c]); }
      s = masked_score(dot, b, key);
    }
    s_s[lid] = s;
    workgroupBarrier();

    var block_max = FLOOR;
    for (var j = 0u; j < ${WG}u; j++) { block_max = max(block_max, s_s[j]); }
    let m_new = max(m, block_max);
    let alpha = exp_precise(m - m_new);
    m = m_new;
    l *= alpha;
    for (var t = 0u; t < DIMS_PER_THREAD; t++) { acc[t] *= alpha; }
    w_s[lid] = exp_precise(s - m);
    workgroupBarrier();

    let n = min(${WG}u, end - kb);
    for (var j = 0u; j < n; j++) {
      let w = w_s[j];
      l += w;
      let v_base = v_index(b, kb + j, h);
      for (var t = 0u; t < DIMS_PER_THREAD; t++) {
        let c = lid + t * ${WG}u;
        if (c < d) { acc[t] += w * f32(v[v_base + c]); }
      }
    }
  }

  let o_base = partial_index(row * p.heads + h, split);
  if (lid == 0u) {
    out[o_base] = m;
    out[o_base + 1u] = l;
  }
  for (var t = 0u; t < DIMS_PER_THREAD; t++) {
    let c = lid + t * ${WG}u;
    if (c < d) { out[o_base + 2u + c] = acc[t]; }
  }
}
