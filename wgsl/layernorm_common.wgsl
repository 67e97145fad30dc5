// Shared part of the LayerNorm kernels (layernorm: a workgroup per row, layernorm_thread: an invocation
// per row): parameters, bindings, the row load h = x (+ residual) and the normalised store. Never
// compiled alone: each kernel pulls it in with `#include layernorm_common`.
// y = (h - mean) * rsqrt(var + eps) * w + b over the last dim, statistics in f32.
// Defines: X, R, W, BT, Y (storage types), RESIDUAL, STATS (also write each row's mean and rstd, [rows, 2] f32,
// which the backward pass needs: layernorm_backward).

struct Params {
  rows: u32,
  d: u32,
  x_off: u32,
  r_off: u32,
  w_off: u32,
  b_off: u32,
  y_off: u32,
  eps: f32,
  grid_stride: u32, // workgroups (layernorm) or invocations (layernorm_thread) per grid row
  s_off: u32,       // element offset of the statistics (STATS)
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
#if STATS
#if RESIDUAL
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
#else
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
#endif
#endif

// Keeps a row's statistics for the backward pass (nothing without STATS).
fn save_stats(row: u32, mean: f32, rstd: f32) {
#if STATS
  stats[p.s_off + 2u * row] = mean;
  stats[p.s_off + 2u * row + 1u] = rstd;
#endif
}

// Element i of the row that starts at row_start: x, plus the residual summed in f32 (not rounded to X).
fn load(row_start: u32, i: u32) -> f32 {
#if RESIDUAL
  return f32(x[p.x_off + row_start + i]) + f32(res[p.r_off + row_start + i]);
#else
  return f32(x[p.x_off + row_start + i]);
#endif
}

// Normalises element i of the row with its statistics, applies weight and bias, stores it.
fn store_normalized(row_start: u32, i: u32, mean: f32, rstd: f32) {
  let v = (load(row_start, i) - mean) * rstd * f32(w[p.w_off + i]) + f32(bias[p.b_off + i]);
  y[p.y_off + row_start + i] = ${Y}(v);
}
