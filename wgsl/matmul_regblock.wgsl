// General matmul for CPU-like adapters (lavapipe): no workgroup memory and no barriers. Invocations of
// a workgroup lie along N and each computes a TM x TN block in registers; the TM rows of A come from
// the workgroup id, so their loads are uniform (loaded once and broadcast by software rasterisers),
// and each loaded vector of B is reused TM times.
// Grid: x * WG invocations cover ceil(N / TN) column blocks, y = ceil(M / TM), z = batch.
// Defines (beyond linear_common): WG, TM, TN (TN a multiple of 4 for the [K, N] layout of B),
// ROW_LANES ([N, K] B, TM = 8 = the subgroup size, VEC: see below).
//
// ROW_LANES: "uniform" loads are not free everywhere. Mesa 25's llvmpipe loads storage one lane and
// one 32-bit word at a time even when all lanes ask for the same address, so the TM rows of A cost
// twice B's loads. With ROW_LANES, lane i of each subgroup loads row i of the block (8 values of K
// per step) and subgroupBroadcast shares it: 64 words of A per step become 8 per lane.

#include linear_common

@compute @workgroup_size(${WG})
fn main(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(workgroup_id) wid: vec3<u32>,
#if ROW_LANES
  @builtin(subgroup_invocation_id) sg_lane: u32,
#endif
) {
  let batch = gid.z;
  let n0 = gid.x * ${TN}u;
  let m0 = wid.y * ${TM}u;
#if ROW_LANES
  // No early return: subgroupBroadcast needs every lane (columns past N are clamped, never stored).
#else
  if (n0 >= p.N) {
    return;
  }
#endif
  let a0 = p.a_off + batch * p.a_bstride;
  let b0 = p.b_off + batch * p.b_bstride;
  var arow: array<u32, ${TM}>;
  for (var i = 0u; i < ${TM}u; i++) {
    // Rows and columns past the edge re-read the last one (in bounds); they are never stored.
    arow[i] = a0 + min(m0 + i, p.M - 1u) * p.lda;
  }
  let k4 = p.K & ~3u;

#if B_NK
  var brow: array<u32, ${TN}>;
  for (var j = 0u; j < ${TN}u; j++) {
    brow[j] = b0 + min(n0 + j, p.N - 1u) * p.ldb;
  }
  var acc: array<array<f32, ${TN}>, ${TM}>;
  var kv = 0u;
#if ROW_LANES
  let own_row = a0 + min(m0 + sg_lane, p.M - 1u) * p.lda;
  let k8 = p.K & ~7u;
#if B_QUANT
  // Quantized B: each column's group scale is loaded once per group of 32 (every fourth step), not per step.
  var sc: array<f32, ${TN}>;
#endif
  for (; kv < k8; kv += 8u) {
#if B_QUANT
    if ((kv & 31u) == 0u) {
      for (var j = 0u; j < ${TN}u; j++) {
        sc[j] = ld_scale(brow[j] + kv);
      }
    }
#endif
    let lo = ld_a4(own_row + kv);
    let hi = ld_a4(own_row + kv + 4u);
    let alo = array<vec4<f32>, 8>(subgroupBroadcast(lo, 0u), subgroupBroadcast(lo, 1u), subgroupBroadcast(lo, 2u), subgroupBroadcast(lo, 3u),
                                  subgroupBroadcast(lo, 4u), subgroupBroadcast(lo, 5u), subgroupBroadcast(lo, 6u), subgroupBroadcast(lo, 7u));
    let ahi = array<vec4<f32>, 8>(subgroupBroadcast(hi, 0u), subgroupBroadcast(hi, 1u), subgroupBroadcast(hi, 2u), subgroupBroadcast(hi, 3u),
                                  subgroupBroadcast(hi, 4u), subgroupBroadcast(hi, 5u), subgroupBroadcast(hi, 6u), subgroupBroadcast(hi, 7u));
    for (var j = 0u; j < ${TN}u; j++) {
#if B_QUANT
      let w = codes8(brow[j] + kv) * sc[j];
      let blo = w[0];
      let bhi = w[1];
#elif B_WIDE
      let w = ld_b8(brow[j] + kv);
      let blo = w[0];
      let bhi = w[1];
#else
      let blo = ld_b4(brow[j] + kv);
      let bhi = ld_b4(brow[j] + kv + 4u);
#endif
      for (var i = 0u; i < 8u; i++) {
        acc[i][j] += dot(alo[i], blo) + dot(ahi[i], bhi);
      }
    }
  }
#endif
  for (var k = kv; k < k4; k += 4u) {
    var bv: array<vec4<f32>, ${TN}>;
    for (var j = 0u; j < ${TN}u; j++) {
      bv[j] = ld_b4(brow[j] + k);
    }
    for (var i = 0u; i < ${TM}u; i++) {
      let av = ld_a4(arow[i] + k);
      for (var j = 0u; j < ${TN}u; j++) {
        acc[i][j] += dot(av, bv[j]);
      }
    }
  }
#if !VEC
  for (var k = k4; k < p.K; k++) {
    for (var i = 0u; i < ${TM}u; i++) {
      let av = ld_a1(arow[i] + k);
      for (var j = 0u; j < ${TN}u; j++) {
        acc[i][j] = fma(av, ld_b1(brow[j] + k), acc[i][j]);
      }
    }
  }
#endif
  for (var i = 0u; i < ${TM}u; i++) {
    if (m0 + i < p.M) {
      for (var j = 0u; j < ${TN}u; j++) {
        if (n0 + j < p.N) {
          store_out(batch, m0 + i, n0 + j, acc[i][j]);
        }
      }
    }
  }

#else
  // B is [K, N]: each invocation keeps TN / 4 column vectors per row of its block.
  const TQ = ${TN}u / 4u;
  var col: array<u32, TQ>;
  for (var q = 0u; q < TQ; q++) {
#if VEC
    col[q] = min(n0 + q * 4u, p.N - 4u); // N is a multiple of 4 here
#else
    col[q] = n0 + q * 4u;
#endif
  }
  var acc: array<array<vec4<f32>, TQ>, ${TM}>;
#if VEC
  for (var k = 0u; k < k4; k += 4u) {
    var av: array<vec4<f32>, ${TM}>;
    for (var i = 0u; i < ${TM}u; i++) {
      av[i] = ld_a4(arow[i] + k);
    }
    for (var kk = 0u; kk < 4u; kk++) {
      for (var q = 0u; q < TQ; q++) {
        let bv = ld_b4(b0 + (k + kk) * p.ldb + col[q]);
        for (var i = 0u; i < ${TM}u; i++) {
          acc[i][q] = fma(vec4<f32>(av[i][kk]), bv, acc[i][q]);
        }
      }
    }
  }
#else
  let last = p.N - 1u;
  for (var k = 0u; k < p.K; k++) {
    let brow = b0 + k * p.ldb;
    for (var q = 0u; q < TQ; q++) {
      let n = col[q];
      let bv = vec4<f32>(ld_b1(brow + min(n, last)), ld_b1(brow + min(n + 1u, last)),
                         ld_b1(brow + min(n + 2u, last)), ld_b1(brow + min(n + 3u, last)));
      for (var i = 0u; i < ${TM}u; i++) {
        acc[i][q] = fma(vec4<f32>(ld_a1(arow[i] + k)), bv, acc[i][q]);
      }
    }
  }
#endif
  for (var i = 0u; i < ${TM}u; i++) {
    if (m0 + i < p.M) {
      for (var q = 0u; q < TQ; q++) {
        for (var c = 0u; c < 4u; c++) {
          let n = n0 + q * 4u + c;
          if (n < p.N) {
            store_out(batch, m0 + i, n, acc[i][q][c]);
          }
        }
      }
    }
  }
#endif
}
