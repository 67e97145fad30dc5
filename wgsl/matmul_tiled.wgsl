// General matmul for GPUs: BM x BN output tiles per workgroup of (BM / TM) * (BN / TN) invocations,
// K walked in BK slices staged in workgroup memory (k-major, so the inner loop reads 4-wide vectors
// of both operands: TM x TN multiply-adds per TM / 4 + TN / 4 vector reads). The next slice is
// loaded from global memory into registers while the current one is being multiplied.
// Each invocation owns TM rows and TN columns, taken in groups of 4 spread BM / (TM / 4) rows and
// BN / (TN / 4) columns apart, so that neighbouring invocations read neighbouring vectors.
// F16_MATH: the slices are stored as f16 and multiplied in f16 (vec4<f16>), summed in f16 over one
// slice only and added into the f32 accumulators after every slice.
// Grid: x = ceil(N / BN), y = ceil(M / BM), z = batch.
// Defines (beyond linear_common): BM, BN, BK (multiples of 4), TM, TN (4 or 8), F16_MATH, A_KM (A stored
// [K, M]: staged a row of K at a time, which is the k-major order of As already).

#include linear_common

const BM = ${BM}u;
const BN = ${BN}u;
const BK = ${BK}u;
const TM = ${TM}u;
const TN = ${TN}u;
const TX = BN / TN; // invocations along N
const NT = (BM / TM) * TX; // invocations per workgroup
const RSTEP = BM / (TM / 4u);
const CSTEP = BN / (TN / 4u);
const LA = BM * BK / 4u / NT; // A vectors each invocation stages per slice
const LB = BN * BK / 4u / NT;

#if F16_MATH
alias SS = f16;
#else
alias SS = f32;
#endif
alias ST = vec4<SS>;
var<workgroup> As: array<ST, BK * BM / 4u>; // [k][m]
var<workgroup> Bs: array<ST, BK * BN / 4u>; // [k][n]

var<private> stage_a: array<vec4<f32>, LA>;
var<private> stage_b: array<vec4<f32>, LB>;

// Four elements of row `row` (< rows) starting at column `col` of a row-major operand; zero past
// `cols`. Indices are clamped so that nothing outside the operand is ever read.
fn fetch_a(base: u32, ld: u32, row: u32, col: u32) -> vec4<f32> {
  let r = base + min(row, p.M - 1u) * ld;
#if VEC
  return select(vec4<f32>(0.0), ld_a4(r + min(col, p.K - 4u)), col < p.K);
#else
  var v: vec4<f32>;
  for (var c = 0u; c < 4u; c++) {
    v[c] = select(0.0, ld_a1(r + min(col + c, p.K - 1u)), col + c < p.K);
  }
  return v;
#endif
}

#if A_KM
// A stored [K, M]: four rows m .. m + 3 of column k, which lie side by side; columns past K read as zero,
// rows past M are clamped (never stored).
fn fetch_a_km(base: u32, k: u32, m: u32) -> vec4<f32> {
  let r = base + min(k, p.K - 1u) * p.lda;
#if VEC
  return select(vec4<f32>(0.0), ld_a4(r + min(m, p.M - 4u)), k < p.K);
#else
  let last = p.M - 1u;
  let v = vec4<f32>(ld_a1(r + min(m, last)), ld_a1(r + min(m + 1u, last)), ld_a1(r + min(m + 2u, last)),
                    ld_a1(r + min(m + 3u, last)));
  return select(vec4<f32>(0.0), v, k < p.K);
#endif
}
#endif

#if B_NK
fn fetch_b(base: u32, row: u32, col: u32) -> vec4<f32> {
  let r = base + min(row, p.N - 1u) * p.ldb;
#if VEC
  return select(vec4<f32>(0.0), ld_b4(r + min(col, p.K - 4u)), col < p.K);
#else
  var v: vec4<f32>;
  for (var c = 0u; c < 4u; c++) {
    v[c] = select(0.0, ld_b1(r + min(col + c, p.K - 1u)), col + c < p.K);
  }
  return v;
#endif
}
#else
// Row k of B ([K, N]) from column n; rows past K read as zero, columns past N are never stored.
fn fetch_b(base: u32, k: u32, n: u32) -> vec4<f32> {
  let r = base + min(k, p.K - 1u) * p.ldb;
#if VEC
  return select(vec4<f32>(0.0), ld_b4(r + min(n, p.N - 4u)), k < p.K);
#else
  let last = p.N - 1u;
  let v = vec4<f32>(ld_b1(r + min(n, last)), ld_b1(r + min(n + 1u, last)), ld_b1(r + min(n + 2u, last)),
                    ld_b1(r + min(n + 3u, last)));
  return select(vec4<f32>(0.0), v, k < p.K);
#endif
}
#endif

fn load_slice(a0: u32, b0: u32, m0: u32, n0: u32, k0: u32, li: u32) {
  for (var i = 0u; i < LA; i++) {
    let idx = li + i * NT;
#if A_KM
    stage_a[i] = fetch_a_km(a0, k0 + idx / (BM / 4u), m0 + (idx % (BM / 4u)) * 4u);
#else
    stage_a[i] = fetch_a(a0, p.lda, m0 + idx / (BK / 4u), k0 + (idx % (BK / 4u)) * 4u);
#endif
  }
  for (var i = 0u; i < LB; i++) {
    let idx = li + i * NT;
#if B_NK
    stage_b[i] = fetch_b(b0, n0 + idx / (BK / 4u), k0 + (idx % (BK / 4u)) * 4u);
#else
    stage_b[i] = fetch_b(b0, k0 + idx / (BN / 4u), n0 + (idx % (BN / 4u)) * 4u);
#endif
  }
}

fn store_slice(li: u32) {
  for (var i = 0u; i < LA; i++) {
    let idx = li + i * NT;
#if A_KM
    As[idx] = ST(stage_a[i]); // [k][m] already
#else
    let m = idx / (BK / 4u);
    let kq = (idx % (BK / 4u)) * 4u;
    for (var c = 0u; c < 4u; c++) {
      As[((kq + c) * BM + m) / 4u][m % 4u] = SS(stage_a[i][c]);
    }
#endif
  }
  for (var i = 0u; i < LB; i++) {
    let idx = li + i * NT;
#if B_NK
    let n = idx / (BK / 4u);
    let kq = (idx % (BK / 4u)) * 4u;
    for (var c = 0u; c < 4u; c++) {
      Bs[((kq + c) * BN + n) / 4u][n % 4u] = SS(stage_b[i][c]);
    }
#else
    Bs[idx] = ST(stage_b[i]);
#endif
  }
}

@compute @workgroup_size(NT)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let batch = wid.z;
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let a0 = p.a_off + batch * p.a_bstride;
  let b0 = p.b_off + batch * p.b_bstride;
  let tx = li % TX;
  let ty = li / TX;

  var acc: array<array<vec4<f32>, TN / 4u>, TM>;
#if F16_MATH
  var part: array<array<vec4<f16>, TN / 4u>, TM>;
#endif
  let slices = (p.K + BK - 1u) / BK;
  load_slice(a0, b0, m0, n0, 0u, li);
  for (var s = 0u; s < slices; s++) {
    store_slice(li);
    workgroupBarrier();
    if (s + 1u < slices) {
      load_slice(a0, b0, m0, n0, (s + 1u) * BK, li);
    }
    for (var k = 0u; k < BK; k++) {
      var bv: array<ST, TN / 4u>;
      for (var jq = 0u; jq < TN / 4u; jq++) {
        bv[jq] = Bs[(k * BN + jq * CSTEP) / 4u + tx];
      }
      for (var iq = 0u; iq < TM / 4u; iq++) {
        let av = As[(k * BM + iq * RSTEP) / 4u + ty];
        for (var r = 0u; r < 4u; r++) {
          for (var jq = 0u; jq < TN / 4u; jq++) {
#if F16_MATH
            part[iq * 4u + r][jq] = fma(vec4<f16>(av[r]), bv[jq], part[iq * 4u + r][jq]);
#else
            acc[iq * 4u + r][jq] = fma(vec4<f32>(av[r]), bv[jq], acc[iq * 4u + r][jq]);
#endif
          }
        }
      }
    }
#if F16_MATH
    for (var i = 0u; i < TM; i++) {
      for (var jq = 0u; jq < TN / 4u; jq++) {
        acc[i][jq] += vec4<f32>(part[i][jq]);
        part[i][jq] = vec4<f16>();
      }
    }
#endif
    workgroupBarrier();
  }

  for (var iq = 0u; iq < TM / 4u; iq++) {
    for (var r = 0u; r < 4u; r++) {
      let m = m0 + iq * RSTEP + ty * 4u + r;
      if (m < p.M) {
        for (var jq = 0u; jq < TN / 4u; jq++) {
          for (var c = 0u; c < 4u; c++) {
            let n = n0 + jq * CSTEP + tx * 4u + c;
            if (n < p.N) {
              store_out(batch, m, n, acc[iq * 4u + r][jq][c]);
            }
          }
        }
      }
    }
  }
}
