// Skinny linear (M <= 8 rows of A, B in [N, K] layout) for CPU-like adapters (lavapipe): every
// invocation owns ROWS consecutive rows of B and walks the whole of K with 4-element loads, keeping
// MR x ROWS vec4 accumulators in registers. A's addresses are uniform across the workgroup (k and m
// are), so software rasterisers load A once and broadcast it; nothing touches workgroup memory.
// Grid: x * WG invocations cover ceil(N / ROWS) row groups, z = batch.
// Defines (beyond linear_common): WG, ROWS, B_WIDE (f16 B read 8 at a time; K % 8 == 0), MR (rows of A compiled for: M <= MR; rows past M re-read
// row M - 1 and are not stored), A_LANES (with B_WIDE and subgroups of exactly 8 lanes: see below).
//
// Why A_LANES: a software rasteriser runs a subgroup as one SIMD vector and loads storage at
// per-lane addresses one lane and one 32-bit word at a time (Mesa 25's llvmpipe: about ten
// instructions per word, bounds check and exec-mask test included), even when every lane asks for
// the same address. A's eight values per step are the same for all lanes, so reading them as two
// vec4 costs as many loads as B's row itself. With A_LANES each lane loads one of the eight and
// subgroupBroadcast hands them round (a register shuffle): 8 words of A per step become 1.
// Measured on lavapipe (2 cores): 2560 -> 10240 and 10240 -> 2560 f16 GEMVs 20-45% faster.
// LN (linear_common): the rows of A are LayerNorm-ed into workgroup memory first; the loop is unchanged.

#include linear_common

@compute @workgroup_size(${WG})
fn main(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
#if A_LANES
  @builtin(subgroup_invocation_id) sg_lane: u32,
#endif
) {
  let batch = gid.z;
  let n0 = gid.x * ${ROWS}u;
#if LN
  ln_prologue(batch, li);
#endif
#if A_LANES
  // No early return: subgroupBroadcast needs every lane of the subgroup (rows past N are clamped).
#else
  if (n0 >= p.N) {
    return;
  }
#endif
  var arow: array<u32, ${MR}>;
  for (var m = 0u; m < ${MR}u; m++) {
    arow[m] = a_row_start(batch, m);
  }
  var brow: array<u32, ${ROWS}>;
  for (var r = 0u; r < ${ROWS}u; r++) {
    // Rows past N re-read the last row (always in bounds); their results are never stored.
    brow[r] = p.b_off + batch * p.b_bstride + min(n0 + r, p.N - 1u) * p.ldb;
  }
  var acc: array<array<vec4<f32>, ${ROWS}>, ${MR}>;
  let k4 = p.K & ~3u;
#if QGROUPS
  // Quantized B, K a multiple of 32, 8-lane subgroups: one group of 32 per step (group_part in linear_common).
  // Lane i loads x[k + 4i .. k + 4i + 3] (one 16-byte load), shared by broadcast; each row's codes are summed
  // against x unscaled, part by part for all rows, and the group's scale is applied once. Rows are unrolled by
  // hand (QR2, QR4): a dynamically indexed private array costs a per-lane loop through memory on llvmpipe.
  var qa: array<array<f32, ${ROWS}>, ${MR}>;
#if QPAIRS
  // Scales in pairs (K a multiple of 64, even first scale): one 32-bit load every other group gives two.
  var sw: array<u32, ${ROWS}>;
#endif
  for (var k = 0u; k < p.K; k += 32u) {
    var xv: array<vec4<f32>, ${MR}>;
    for (var m = 0u; m < ${MR}u; m++) {
      xv[m] = ld_a_lane4(arow[m] + k + 4u * sg_lane);
    }
    var d0 = group_part(brow[0] + k, 0u, xv);
#if QR2
    var d1 = group_part(brow[1] + k, 0u, xv);
#endif
#if QR4
    var d2 = group_part(brow[2] + k, 0u, xv);
    var d3 = group_part(brow[3] + k, 0u, xv);
#endif
#if B_Q8
    let e0 = group_part(brow[0] + k, 1u, xv);
#if QR2
    let e1 = group_part(brow[1] + k, 1u, xv);
#endif
#if QR4
    let e2 = group_part(brow[2] + k, 1u, xv);
    let e3 = group_part(brow[3] + k, 1u, xv);
#endif
#endif
#if QPAIRS
    if ((k & 32u) == 0u) {
      for (var r = 0u; r < ${ROWS}u; r++) {
        sw[r] = bs[(p.bs_off + ((brow[r] + k - p.b_off) >> 5u)) >> 1u];
      }
    }
    let half = (k >> 5u) & 1u;
    let s0 = unpack2x16float(sw[0])[half];
#if QR2
    let s1 = unpack2x16float(sw[1])[half];
#endif
#if QR4
    let s2 = unpack2x16float(sw[2])[half];
    let s3 = unpack2x16float(sw[3])[half];
#endif
#else
    let s0 = ld_scale(brow[0] + k);
#if QR2
    let s1 = ld_scale(brow[1] + k);
#endif
#if QR4
    let s2 = ld_scale(brow[2] + k);
    let s3 = ld_scale(brow[3] + k);
#endif
#endif
    for (var m = 0u; m < ${MR}u; m++) {
#if B_Q8
      d0[m] += e0[m];
#if QR2
      d1[m] += e1[m];
#endif
#if QR4
      d2[m] += e2[m];
      d3[m] += e3[m];
#endif
#endif
      qa[m][0] = fma(d0[m], s0, qa[m][0]);
#if QR2
      qa[m][1] = fma(d1[m], s1, qa[m][1]);
#endif
#if QR4
      qa[m][2] = fma(d2[m], s2, qa[m][2]);
      qa[m][3] = fma(d3[m], s3, qa[m][3]);
#endif
    }
  }
  for (var m = 0u; m < ${MR}u; m++) {
    for (var r = 0u; r < ${ROWS}u; r++) {
      acc[m][r].x = qa[m][r];
    }
  }
#elif A_LANES
  let lane = sg_lane;
  for (var k = 0u; k < k4; k += 8u) {
    var xa: array<vec4<f32>, ${MR}>;
    var xb: array<vec4<f32>, ${MR}>;
    for (var m = 0u; m < ${MR}u; m++) {
      let v = ld_a_lane(arow[m] + k + lane);
      xa[m] = vec4<f32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u));
      xb[m] = vec4<f32>(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
    }
    for (var r = 0u; r < ${ROWS}u; r++) {
      let w = ld_b8(brow[r] + k);
      for (var m = 0u; m < ${MR}u; m++) {
        acc[m][r] = fma(xa[m], w[0], acc[m][r]);
        acc[m][r] = fma(xb[m], w[1], acc[m][r]);
      }
    }
  }
#elif B_WIDE
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
