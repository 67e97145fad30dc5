// LayerNorm over the last dim, one workgroup per row: y = (h - mean) * rsqrt(var + eps) * w + b with
// h = x (+ residual), statistics in f32 from two tree reductions (mean, then the centred sum of squares:
// no cancellation, unlike a one-pass sum of squares). Rows are re-read from memory (cache-resident) instead of
// being held in registers, so any row length works.
// Defines: X, R, W, BT, Y (storage types), RESIDUAL, WG (threads, a power of two).

struct Params {
  rows: u32,
  d: u32,
  x_off: u32,
  r_off: u32,
  w_off: u32,
  b_off: u32,
  y_off: u32,
  eps: f32,
  groups_x: u32, // workgroups per grid row (rows beyond 65535 fold into y)
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

var<workgroup> partial: array<f32, ${WG}>;

fn load(row_start: u32, i: u32) -> f32 {
#if RESIDUAL
  return f32(x[p.x_off + row_start + i]) + f32(res[p.r_off + row_start + i]);
#else
  return f32(x[p.x_off + row_start + i]);
#endif
}

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
  let row = wid.x + wid.y * p.groups_x;
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

  for (var i = lid; i < p.d; i += ${WG}u) {
    let v = (load(start, i) - mean) * rstd * f32(w[p.w_off + i]) + f32(bias[p.b_off + i]);
    y[p.y_off + start + i] = ${Y}(v);
  }
}
