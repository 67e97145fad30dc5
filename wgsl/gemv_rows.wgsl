// Skinny linear (M <= 8 rows of A, B in [N, K] layout) for CPU-like adapters (lavapipe): every
// invocation owns ROWS consecutive rows of B and walks the whole of K with 4-element loads, keeping
// MR x ROWS vec4 accumulators in registers. A's addresses are uniform across the workgroup (k and m
// are), so software rasterisers load A once and broadcast it; nothing touches workgroup memory.
// Grid: x * WG invocations cover ceil(N / ROWS) row groups, z = batch.
// Defines (beyond linear_common): WG, ROWS, B_WIDE (f16 B read 8 at a time; K % 8 == 0), MR (rows of A compiled for: M <= MR; rows past M re-read
// row M - 1 and are not stored).

#include linear_common

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let batch = gid.z;
  let n0 = gid.x * ${ROWS}u;
  if (n0 >= p.N) {
    return;
  }
  let a0 = p.a_off + batch * p.a_bstride;
  var arow: array<u32, ${MR}>;
  for (var m = 0u; m < ${MR}u; m++) {
    arow[m] = a0 + min(m, p.M - 1u) * p.lda;
  }
  var brow: array<u32, ${ROWS}>;
  for (var r = 0u; r < ${ROWS}u; r++) {
    // Rows past N re-read the last row (always in bounds); their results are never stored.
    brow[r] = p.b_off + batch * p.b_bstride + min(n0 + r, p.N - 1u) * p.ldb;
  }
  var acc: array<array<vec4<f32>, ${ROWS}>, ${MR}>;
  let k4 = p.K & ~3u;
#if B_WIDE
  // f16 B with K a multiple of 8: eight weights per 16-byte load.
  for (var k = 0u; k < k4; k += 8u) {
    var xa: array<vec4<f32>, ${MR}>;
    var xb: array<vec4<f32>, ${MR}>;
    for (var m = 0u; m < ${MR}u; m++) {
      xa[m] = ld_a4(arow[m] + k);
      xb[m] = ld_a4(arow[m] + k + 4u);
    }
    for (var r = 0u; r < ${ROWS}u; r++) {
      let w = ld_b8(brow[r] + k);
      for (var m = 0u; m < ${MR}u; m++) {
        acc[m][r] = fma(xa[m], w[0], acc[m][r]);
        acc[m][r] = fma(xb[m], w[1], acc[m][r]);
      }
    }
  }
#else
  for (var k = 0u; k < k4; k += 4u) {
    var xa: array<vec4<f32>, ${MR}>;
    for (var m = 0u; m < ${MR}u; m++) {
      xa[m] = ld_a4(arow[m] + k);
    }
    for (var r = 0u; r < ${ROWS}u; r++) {
      let w = ld_b4(brow[r] + k);
      for (var m = 0u; m < ${MR}u; m++) {
        acc[m][r] = fma(xa[m], w, acc[m][r]);
      }
    }
  }
#endif
  for (var m = 0u; m < ${MR}u; m++) {
    for (var r = 0u; r < ${ROWS}u; r++) {
      var s = dot(acc[m][r], vec4<f32>(1.0));
#if !VEC
      for (var k = k4; k < p.K; k++) {
        s = fma(ld_a1(arow[m] + k), ld_b1(brow[r] + k), s);
      }
#endif
      if (n0 + r < p.N && m < p.M) {
        store_out(batch, m, n0 + r, s);
      }
    }
  }
}
