// Skinny linear (M <= 8 rows of A, B in [N, K] layout) for GPUs: a workgroup owns ROWS rows of B and
// its WG invocations stride over K together, so each row is read in coalesced 16-byte pieces (8 bytes
// for f16). Partial sums are reduced with subgroupAdd plus one workgroup step (SUBGROUPS), or with a
// workgroup-memory tree where subgroups are missing. Memory-bound: the whole point is bytes in flight.
// Grid: x = ceil(N / ROWS), z = batch.
// Defines (beyond linear_common): WG (power of two), ROWS, B_WIDE (f16 B read 8 at a time; K % 8 == 0), MR (= M, 1..8), SUBGROUPS.
// LN (linear_common): the rows of A are LayerNorm-ed into workgroup memory first; the loop is unchanged.

#include linear_common

const NV = ${MR}u * ${ROWS}u; // partial sums per invocation
#if SUBGROUPS
const MAX_SUBGROUPS = ${WG}u / 4u; // WebGPU subgroups have at least 4 invocations
var<workgroup> red: array<f32, NV * MAX_SUBGROUPS>;
#else
var<workgroup> red: array<f32, NV * ${WG}u>;
#endif

@compute @workgroup_size(${WG})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
#if SUBGROUPS
  @builtin(subgroup_invocation_id) sg_lane: u32,
  @builtin(subgroup_size) sg_size: u32,
#endif
) {
  let batch = wid.z;
  let n0 = wid.x * ${ROWS}u;
#if LN
  ln_prologue(batch, li);
#endif
  var arow: array<u32, ${MR}>;
  for (var m = 0u; m < ${MR}u; m++) {
    arow[m] = a_row_start(batch, m);
  }
  var brow: array<u32, ${ROWS}>;
  for (var r = 0u; r < ${ROWS}u; r++) {
    brow[r] = p.b_off + batch * p.b_bstride + min(n0 + r, p.N - 1u) * p.ldb;
  }
  var acc: array<f32, NV>;
  let k4 = p.K & ~3u;
#if B_WIDE
  // f16 B with K a multiple of 8: 16 bytes per invocation and row, 512 contiguous bytes per 32 lanes.
  for (var k = li * 8u; k < k4; k += ${WG}u * 8u) {
    var xa: array<vec4<f32>, ${MR}>;
    var xb: array<vec4<f32>, ${MR}>;
    for (var m = 0u; m < ${MR}u; m++) {
      xa[m] = ld_a4(arow[m] + k);
      xb[m] = ld_a4(arow[m] + k + 4u);
    }
    for (var r = 0u; r < ${ROWS}u; r++) {
      let w = ld_b8(brow[r] + k);
      for (var m = 0u; m < ${MR}u; m++) {
        acc[m * ${ROWS}u + r] += dot(xa[m], w[0]) + dot(xb[m], w[1]);
      }
    }
  }
#else
  for (var k = li * 4u; k < k4; k += ${WG}u * 4u) {
    var xa: array<vec4<f32>, ${MR}>;
    for (var m = 0u; m < ${MR}u; m++) {
      xa[m] = ld_a4(arow[m] + k);
    }
    for (var r = 0u; r < ${ROWS}u; r++) {
      let w = ld_b4(brow[r] + k);
      for (var m = 0u; m < ${MR}u; m++) {
        acc[m * ${ROWS}u + r] += dot(xa[m], w);
      }
    }
  }
#endif
#if !VEC
  for (var k = k4 + li; k < p.K; k += ${WG}u) {
    for (var r = 0u; r < ${ROWS}u; r++) {
      let w = ld_b1(brow[r] + k);
      for (var m = 0u; m < ${MR}u; m++) {
        acc[m * ${ROWS}u + r] = fma(ld_a1(arow[m] + k), w, acc[m * ${ROWS}u + r]);
      }
    }
  }
#endif

#if SUBGROUPS
  // Subgroups are assumed to tile the workgroup in order (local index / subgroup size), as on every
  // driver that exposes them for 1-D workgroups.
  let sg = li / sg_size;
  for (var i = 0u; i < NV; i++) {
    let s = subgroupAdd(acc[i]);
    if (sg_lane == 0u) {
      red[i * MAX_SUBGROUPS + sg] = s;
    }
  }
  workgroupBarrier();
  if (li < NV) {
    var s = 0.0;
    for (var g = 0u; g < ${WG}u / sg_size; g++) {
      s += red[li * MAX_SUBGROUPS + g];
    }
    let r = li % ${ROWS}u;
    let m = li / ${ROWS}u;
    if (n0 + r < p.N && m < p.M) {
      store_out(batch, m, n0 + r, s);
    }
  }
#else
  // One barrier and a serial sum per output: a fallback path, kept short rather than clever.
  for (var i = 0u; i < NV; i++) {
    red[i * ${WG}u + li] = acc[i];
  }
  workgroupBarrier();
  if (li < NV) {
    var s = 0.0;
    for (var t = 0u; t < ${WG}u; t++) {
      s += red[li * ${WG}u + t];
    }
    let r = li % ${ROWS}u;
    let m = li / ${ROWS}u;
    if (n0 + r < p.N && m < p.M) {
      store_out(batch, m, n0 + r, s);
    }
  }
#endif
}
