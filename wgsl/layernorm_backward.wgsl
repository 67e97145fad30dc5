// Gradients of LayerNorm (layernorm.wgsl / layernorm_thread.wgsl) from the statistics its forward saved:
// h = x (+ residual), xhat = (h - mean) * rstd, y = xhat * w + b. As torch's layer_norm_backward:
//   dh = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * w      (one row at a time; dx = dresidual = dh)
//   dw += sum_rows dy * xhat,  db += sum_rows dy                         (PARAMS: one column at a time)
// Rows: THREAD gives one invocation a row (software adapters: SIMD lanes, no barriers), else a workgroup of
// WG threads shares a row with tree reductions (GPUs). Sums in f32.
// Defines: X, R, W, G (dy) storage types, RESIDUAL, THREAD, WG, PARAMS.

struct Params {
  rows: u32,
  d: u32,
  x_off: u32,
  r_off: u32,
  w_off: u32,
  s_off: u32,
  g_off: u32,
  o_off: u32,  // dx, or dw (PARAMS)
  o2_off: u32, // db (PARAMS)
  grid_stride: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<${X}>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<${G}>;
#if PARAMS
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;
@group(0) @binding(5) var<storage, read_write> db: array<f32>;
#if RESIDUAL
@group(0) @binding(6) var<storage, read> res: array<${R}>;
#endif
#else
@group(0) @binding(4) var<storage, read> w: array<${W}>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
#if RESIDUAL
@group(0) @binding(6) var<storage, read> res: array<${R}>;
#endif
#endif

fn xhat(row: u32, i: u32) -> f32 {
  let e = row * p.d + i;
#if RESIDUAL
  let h = f32(x[p.x_off + e]) + f32(res[p.r_off + e]);
#else
  let h = f32(x[p.x_off + e]);
#endif
  return (h - stats[p.s_off + 2u * row]) * stats[p.s_off + 2u * row + 1u];
}

#if PARAMS

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.d) { return; }
  var sw = 0.0;
  var sb = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    let g = f32(dy[p.g_off + r * p.d + c]);
    sw += g * xhat(r, c);
    sb += g;
  }
  dw[p.o_off + c] += sw;
  db[p.o2_off + c] += sb;
}

#else

fn g_of(row: u32, i: u32) -> f32 {
  return f32(dy[p.g_off + row * p.d + i]) * f32(w[p.w_off + i]);
}

#if THREAD

@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = gid.x + gid.y * p.grid_stride;
  if (row >= p.rows) { return; }
  var s1 = 0.0;
  var s2 = 0.0;
  for (var i = 0u; i < p.d; i++) {
    let g = g_of(row, i);
    s1 += g;
    s2 += g * xhat(row, i);
  }
  let inv_d = 1.0 / f32(p.d);
  let rstd = stats[p.s_off + 2u * row + 1u];
  for (var i = 0u; i < p.d; i++) {
    dx[p.o_off + row * p.d + i] = rstd * (g_of(row, i) - s1 * inv_d - xhat(row, i) * s2 * inv_d);
  }
}

#else

var<workgroup> partial: array<vec2<f32>, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_stride;
  if (row >= p.rows) { return; }
  var s = vec2<f32>(0.0);
  for (var i = lid; i < p.d; i += ${WG}u) {
    let g = g_of(row, i);
    s += vec2<f32>(g, g * xhat(row, i));
  }
  partial[lid] = s;
  workgroupBarrier();
  for (var k = ${WG}u / 2u; k > 0u; k = k / 2u) {
    if (lid < k) { partial[lid] = partial[lid] + partial[lid + k]; }
    workgroupBarrier();
  }
  let inv_d = 1.0 / f32(p.d);
  let sums = partial[0] * inv_d;
  let rstd = stats[p.s_off + 2u * row + 1u];
  for (var i = lid; i < p.d; i += ${WG}u) {
    dx[p.o_off + row * p.d + i] = rstd * (g_of(row, i) - sums.x - xhat(row, i) * sums.y);
  }
}

#endif
#endif
