// LayerNorm with one invocation per row and no workgroup memory: for software adapters (lavapipe runs
// invocations as SIMD lanes, where barriers are costly and independent rows vectorise well). Same math as
// layernorm.wgsl: two-pass f32 statistics, y = (h - mean) * rsqrt(var + eps) * w + b, h = x (+ residual).
// Defines: those of layernorm_common.

#include layernorm_common

@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = gid.x + gid.y * p.grid_stride;
  if (row >= p.rows) { return; }
  let start = row * p.d;
  let inv_d = 1.0 / f32(p.d);
  var s = 0.0;
  for (var i = 0u; i < p.d; i++) { s += load(start, i); }
  let mean = s * inv_d;
  var q = 0.0;
  for (var i = 0u; i < p.d; i++) {
    let c = load(start, i) - mean;
    q += c * c;
  }
  let rstd = inverseSqrt(q * inv_d + p.eps);
  save_stats(row, mean, rstd);
  for (var i = 0u; i < p.d; i++) { store_normalized(start, i, mean, rstd); }
}
