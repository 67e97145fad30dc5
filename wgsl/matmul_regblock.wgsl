// General matmul for CPU-like adapters (lavapipe): no workgroup memory and no barriers. Invocations of
// a workgroup lie along N and each computes a TM x TN block in registers; the TM rows of A come from
// the workgroup id, so their loads are uniform (loaded once and broadcast by software rasterisers),
// and each loaded vector of B is reused TM times.
// Grid: x * WG invocations cover ceil(N / TN) column blocks, y = ceil(M / TM), z = batch.
// Defines (beyond linear_common): WG, TM, TN (TN a multiple of 4 for the [K, N] layout of B).

#include linear_common

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let batch = gid.z;
  let n0 = gid.x * ${TN}u;
  let m0 = wid.y * ${TM}u;
  if (n0 >= p.N) {
    return;
  }
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
  for (var k = 0u; k < k4; k += 4u) {
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
