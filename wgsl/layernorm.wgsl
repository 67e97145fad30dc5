// LayerNorm over the last dim, one workgroup per row: y = (h - mean) * rsqrt(var + eps) * w + b with
// h = x (+ residual), statistics in f32 from two tree reductions (mean, then the centred sum of squares:
// no cancellation, unlike a one-pass sum of squares). Rows are re-read from memory (cache-resident) instead of
// being held in registers, so any row length works.
// Defines (beyond layernorm_common): WG (threads, a power of two).

#include layernorm_common

var<workgroup> partial: array<f32, ${WG}>;

fn workgroup_sum(v: f32, lid: u32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var s = ${WG}u / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { partial[lid] = partial[lid] + partial[lid + s]; }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier(); // partial[] is reused by the next reduction
  return total;
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_stride;
  if (row >= p.rows) { return; }
  let start = row * p.d;
  let inv_d = 1.0 / f32(p.d);

  var s = 0.0;
  for (var i = lid; i < p.d; i += ${WG}u) { s += load(start, i); }
  let mean = workgroup_sum(s, lid) * inv_d;

  var q = 0.0;
  for (var i = lid; i < p.d; i += ${WG}u) {
    let c = load(start, i) - mean;
    q += c * c;
  }
  let rstd = inverseSqrt(workgroup_sum(q, lid) * inv_d + p.eps);
  if (lid == 0u) { save_stats(row, mean, rstd); }

  for (var i = lid; i < p.d; i += ${WG}u) { store_normalized(start, i, mean, rstd); }
}
