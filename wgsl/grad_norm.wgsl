// Global gradient norm for clip_grad_norm_, on the device (the optimizer step never waits for the host):
//   PARTIAL: each workgroup sums the squares of CHUNK consecutive elements of one gradient into partial[slot].
//   FINISH:  one workgroup sums every partial, and writes out = (norm, clip coefficient), the coefficient
//            being min(1, max_norm / (norm + 1e-6)) as torch computes it (1 when clipping is off).
// Sums in f32 with a tree per workgroup.
// Defines: PARTIAL | FINISH, WG (power of two), CHUNK (PARTIAL: elements per workgroup).

struct Params {
  n: u32,        // PARTIAL: elements; FINISH: partials
  x_off: u32,
  slot: u32,     // PARTIAL: index of this tensor's first partial
  o_off: u32,
  max_norm: f32, // FINISH: <= 0 turns clipping off
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, ${WG}>;

fn tree(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var k = ${WG}u / 2u; k > 0u; k = k / 2u) {
    if (lid < k) { red[lid] = red[lid] + red[lid + k]; }
    workgroupBarrier();
  }
  return red[0];
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
#if PARTIAL
  let start = wid.x * ${CHUNK}u;
  let end = min(start + ${CHUNK}u, p.n);
  var s = 0.0;
  for (var i = start + lid; i < end; i += ${WG}u) {
    let g = x[p.x_off + i];
    s += g * g;
  }
  let total = tree(s, lid);
  if (lid == 0u) { out[p.slot + wid.x] = total; }
#else
  var s = 0.0;
  for (var i = lid; i < p.n; i += ${WG}u) { s += x[p.x_off + i]; }
  let total = tree(s, lid);
  if (lid == 0u) {
    let norm = sqrt(total);
    out[p.o_off] = norm;
    out[p.o_off + 1u] = select(1.0, min(1.0, p.max_norm / (norm + 1e-6)), p.max_norm > 0.0);
  }
#endif
}
