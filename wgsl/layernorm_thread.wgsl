// LayerNorm with one invocation per row and no workgroup memory: for software adapters (lavapipe runs
// invocations as SIMD lanes, where barriers are costly and independent rows vectorise well). Same math as
// layernorm.wgsl: two-pass f32 statistics, y = (h - mean) * rsqrt(var + eps) * w + b, h = x (+ residual).
// Defines: X, R, W, BT, Y (storage types), RESIDUAL.

struct Params {
  rows: u32,
  d: u32,
  x_off: u32,
  r_off: u32,
  w_off: u32,
  b_off: u32,
  y_off: u32,
  eps: f32,
  row_stride: u32, // invocations per grid row (rows beyond 65535 workgroups fold into y)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<${X}>;
@group(0) @binding(2) var<storage, read> w: array<${W}>;
@group(0) @binding(3) var<storage, read> bias: array<${BT}>;
#if RESIDUAL
@group(0) @binding(4) var<storage, read> res: array<${R}>;
@group(0) @binding(5) var<storage, read_write> y: array<${Y}>;
#else
@group(0) @binding(4) var<storage, read_write> y: array<${Y}>;
#endif

fn load(row_start: u32, i: u32) -> f32 {
#if RESIDUAL
  return f32(x[p.x_off + row_start + i]) + f32(res[p.r_off + row_start + i]);
#else
  return f32(x[p.x_off + row_start + i]);
#endif
}

@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = gid.x + gid.y * p.row_stride;
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
  for (var i = 0u; i < p.d; i++) {
    y[p.y_off + start + i] = ${Y}((load(start, i) - mean) * rstd * f32(w[p.w_off + i]) + f32(bias[p.b_off + i]));
  }
}
