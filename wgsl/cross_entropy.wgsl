// Softmax cross-entropy over rows of logits with integer targets, as torch's cross_entropy(reduction='mean',
// ignore_index): loss = sum over rows whose target is not ignored of (logsumexp(x_r) - x_r[t_r]), divided by
// their count. Three entry modes (one pipeline each):
//   ROWS:     a workgroup per row: lse_r = max + log(sum exp(x - max)) (f32, exp_precise), row_loss_r.
//   MEAN:     one workgroup: loss[0] = sum_r row_loss_r / count (count > 0, from the host).
//   BACKWARD: an invocation per logit: dx = g / count * (exp(x - lse_r) - [v == t_r]) on counted rows, 0 on
//             ignored ones, where g = grad[0] (the loss's own gradient, read on the device: no host sync).
// Targets outside [0, V) other than the ignore index never read memory (the host rejects them first).
// Defines: T (logits storage), WG (power of two), ROWS | MEAN | BACKWARD.

struct Params {
  rows: u32,
  vocab: u32,
  x_off: u32,
  t_off: u32,
  aux_off: u32,   // lse/row_loss pairs: [rows, 2] f32
  out_off: u32,   // loss (MEAN) or dx (BACKWARD)
  g_off: u32,     // the loss gradient (BACKWARD)
  ignore_index: i32,
  inv_count: f32, // 1 / (rows not ignored)
  grid_stride: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

#include exp_common

#if ROWS
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> aux: array<f32>;

var<workgroup> red_m: array<f32, ${WG}>;
var<workgroup> red_s: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * p.grid_stride;
  if (r >= p.rows) { return; }
  let base = p.x_off + r * p.vocab;
  // Each thread keeps a running (max, sum exp) over its strided elements; the pairs merge in a tree.
  var m = -3.0e38;
  var s = 0.0;
  for (var j = lid; j < p.vocab; j += ${WG}u) {
    let v = f32(x[base + j]);
    if (v > m) {
      s = s * exp_precise(m - v);
      m = v;
    }
    s += exp_precise(v - m);
  }
  red_m[lid] = m;
  red_s[lid] = s;
  workgroupBarrier();
  for (var k = ${WG}u / 2u; k > 0u; k = k / 2u) {
    if (lid < k) {
      let m2 = max(red_m[lid], red_m[lid + k]);
      red_s[lid] = red_s[lid] * exp_precise(red_m[lid] - m2) + red_s[lid + k] * exp_precise(red_m[lid + k] - m2);
      red_m[lid] = m2;
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let lse = red_m[0] + log(red_s[0]);
    let t = targets[p.t_off + r];
    var loss = 0.0;
    if (t != p.ignore_index && t >= 0 && u32(t) < p.vocab) { loss = lse - f32(x[base + u32(t)]); }
    aux[p.aux_off + 2u * r] = lse;
    aux[p.aux_off + 2u * r + 1u] = loss;
  }
}
#endif

#if MEAN
@group(0) @binding(1) var<storage, read> aux: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;

var<workgroup> red: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var r = lid; r < p.rows; r += ${WG}u) { s += aux[p.aux_off + 2u * r + 1u]; }
  red[lid] = s;
  workgroupBarrier();
  for (var k = ${WG}u / 2u; k > 0u; k = k / 2u) {
    if (lid < k) { red[lid] = red[lid] + red[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u) { loss[p.out_off] = red[0] * p.inv_count; }
}
#endif

#if BACKWARD
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> aux: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let e = gid.x + gid.y * p.grid_stride;
  if (e >= p.rows * p.vocab) { return; }
  let r = e / p.vocab;
  let j = e % p.vocab;
  let t = targets[p.t_off + r];
  var d = 0.0;
  if (t != p.ignore_index) {
    let prob = exp_precise(f32(x[p.x_off + e]) - aux[p.aux_off + 2u * r]);
    d = grad[p.g_off] * p.inv_count * (prob - select(0.0, 1.0, i32(j) == t));
  }
  dx[p.out_off + e] = d;
}
#endif
