// Row-wise softmax / log-softmax over the last dimension, one workgroup per row. Each thread keeps a
// running (max, sum of exp) over its strided elements in one pass; a tree reduction merges the pairs;
// a second pass writes the result. Statistics are f32 whatever the storage type.
// Defines: T (input type), OT (output type), WG (power of two), MASK (+ MT: additive mask rows, row r
// uses mask row r % mask_rows), LOG (write x - max - log(sum) instead of the probabilities).

// Values are clamped at FLOOR for the statistics: -inf counts as "masked", a fully masked row comes out
// uniform (softmax) instead of NaN, and log-softmax keeps -inf for -inf inputs.
const FLOOR: f32 = -3.0e38;

struct Params {
  rows: u32,
  width: u32,
  x_off: u32,
  o_off: u32,
  m_off: u32,
  mask_rows: u32,
  grid_stride: u32, // workgroups per grid row (launch folded into 2-D)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<${T}>;
#if MASK
@group(0) @binding(2) var<storage, read> mask: array<${MT}>;
@group(0) @binding(3) var<storage, read_write> out: array<${OT}>;
#else
@group(0) @binding(2) var<storage, read_write> out: array<${OT}>;
#endif

var<workgroup> red_m: array<f32, ${WG}>;
var<workgroup> red_s: array<f32, ${WG}>;

fn value(x_base: u32, m_base: u32, j: u32) -> f32 {
#if MASK
  return f32(x[x_base + j]) + f32(mask[m_base + j]);
#else
  return f32(x[x_base + j]);
#endif
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_stride;
  if (row >= p.rows) { return; }
  let x_base = p.x_off + row * p.width;
  let m_base = p.m_off + (row % p.mask_rows) * p.width;

  var m = FLOOR;
  var s = 0.0;
  for (var j = lid; j < p.width; j += ${WG}u) {
    let y = max(value(x_base, m_base, j), FLOOR);
    if (y > m) {
      s *= exp(m - y);
      m = y;
    }
    s += exp(y - m);
  }
  red_m[lid] = m;
  red_s[lid] = s;
  for (var half = ${WG}u / 2u; half > 0u; half /= 2u) {
    workgroupBarrier();
    if (lid < half) {
      let m2 = red_m[lid + half];
      let s2 = red_s[lid + half];
      let mm = max(red_m[lid], m2);
      red_s[lid] = red_s[lid] * exp(red_m[lid] - mm) + s2 * exp(m2 - mm);
      red_m[lid] = mm;
    }
  }
  workgroupBarrier();
  let row_max = red_m[0];
  let row_sum = red_s[0];

  let o_base = p.o_off + row * p.width;
#if LOG
  // (x - max) - log(sum), in this order: max + log(sum) would lose log(sum) next to a huge max.
  let log_sum = log(row_sum);
  for (var j = lid; j < p.width; j += ${WG}u) { out[o_base + j] = ${OT}((value(x_base, m_base, j) - row_max) - log_sum); }
#else
  let inv = 1.0 / row_sum;
  for (var j = lid; j < p.width; j += ${WG}u) { out[o_base + j] = ${OT}(exp(max(value(x_base, m_base, j), FLOOR) - row_max) * inv); }
#endif
}
