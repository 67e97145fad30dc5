// Attention with one invocation per (batch, query, head [, kv split]): the whole online softmax of a
// query row lives in that invocation's registers. No workgroup memory and no barriers: the variant for
// software adapters (lavapipe), where invocations are SIMD lanes of a CPU thread.
// Defines (beyond attention_common, whose OT is f32 with SPLIT): DP (head_dim rounded up to 8: size of
// the private arrays), WG, SPLIT (write the unnormalised partials [m, l, acc...] of one kv chunk for
// attention_combine instead of the output).

#include attention_common

#if VEC4
// q/k/v are read as vec4 (what a CPU rasteriser's SIMD code handles best), and the loops below run over
// groups of W = 4 elements.
alias Lanes = vec4<f32>;
const W: u32 = 4u;
fn lane_sum(x: Lanes) -> f32 { return (x.x + x.y) + (x.z + x.w); }
fn element(x: Lanes, e: u32) -> f32 { return x[e]; }
#else
alias Lanes = f32;
const W: u32 = 1u;
fn lane_sum(x: Lanes) -> f32 { return x; }
fn element(x: Lanes, e: u32) -> f32 { return x; }
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

  let start = split * p.chunk;
  let end = min(visible_end(i), start + p.chunk);

  let groups = d / W;
  var qr: array<Lanes, ${DP} / W>;
  let q_base = q_index(b, i, h) / W;
  for (var c = 0u; c < groups; c++) { qr[c] = Lanes(q[q_base + c]) * p.scale; }

  var acc: array<Lanes, ${DP} / W>;
  var m = FLOOR;
  var l = 0.0;
  for (var j = start; j < end; j++) {
    let k_base = k_index(b, j, h) / W;
    var dot = Lanes(0.0);
    for (var c = 0u; c < groups; c++) { dot += qr[c] * Lanes(k[k_base + c]); }
    let s = masked_score(lane_sum(dot), b, j);
    if (s > m) {
      // A new maximum: rescale what was accumulated against the old one (rare after the first keys).
      let alpha = exp_precise(m - s);
      l *= alpha;
      for (var c = 0u; c < groups; c++) { acc[c] *= alpha; }
      m = s;
    }
    let w = exp_precise(s - m);
    l += w;
    let v_base = v_index(b, j, h) / W;
    for (var c = 0u; c < groups; c++) { acc[c] += w * Lanes(v[v_base + c]); }
  }

#if SPLIT
  let o_base = partial_index(row_head, split);
  out[o_base] = m;
  out[o_base + 1u] = l;
  for (var c = 0u; c < d; c++) { out[o_base + 2u + c] = element(acc[c / W], c % W); }
#else
  save_lse(row_head, m, l);
  let inv = select(0.0, 1.0 / l, l > 0.0);
  let o_base = p.o_off + row_head * d;
  for (var c = 0u; c < d; c++) { out[o_base + c] = ${OT}(element(acc[c / W], c % W) * inv); }
#endif
}
