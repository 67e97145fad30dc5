// Split-KV attention, second pass: merges the partials [m, l, acc...] of every kv chunk of a
// (batch, query, head) row into its output, out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M).
// One workgroup per row; threads own output dims. No workgroup memory, no barriers.
// Defines: OT (output element type), WG.

#include exp_common

struct Params {
  rows: u32,        // batch * queries * heads
  splits: u32,
  head_dim: u32,
  o_off: u32,
  grid_stride: u32, // workgroups per grid row (launch folded into 2-D)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<${OT}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_stride;
  if (row >= p.rows) { return; }
  let d = p.head_dim;
  let stride = d + 2u;
  let base = row * p.splits * stride;

  var big_m = -3.0e38;
  for (var s = 0u; s < p.splits; s++) { big_m = max(big_m, part[base + s * stride]); }
  var big_l = 0.0;
  for (var s = 0u; s < p.splits; s++) { big_l += part[base + s * stride + 1u] * exp_precise(part[base + s * stride] - big_m); }
  let inv = select(0.0, 1.0 / big_l, big_l > 0.0);

  for (var c = lid; c < d; c += ${WG}u) {
    var o = 0.0;
    for (var s = 0u; s < p.splits; s++) {
      o += part[base + s * stride + 2u + c] * exp_precise(part[base + s * stride] - big_m);
    }
    out[p.o_off + row * d + c] = ${OT}(o * inv);
  }
}
