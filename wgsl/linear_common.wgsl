// Shared part of every linear/matmul kernel (gemv_rows, gemv_coop, matmul_regblock, matmul_tiled):
// parameters, bindings, operand loads and the fused epilogue. It is never compiled alone: each kernel
// pulls it in with `#include linear_common`, preprocessed with the kernel's defines.
//
// C[batch, m, n] = epilogue(alpha * sum_k A[batch, m, k] * B(batch, k, n))
//   A: row-major [M, K] per batch (row stride lda), or with A_KM stored [K, M] (row stride lda; tiled only:
//   weight gradients dW = dY^T X read dY as it lies).
//   B: B_NK: row-major [N, K] (a PyTorch weight; row stride ldb), else row-major [K, N] (row stride ldb).
//   epilogue: + bias[n], activation (exact erf GELU or ReLU), + residual[batch, m, n] (a separate
//   tensor, or C itself for an in-place update), chosen at run time by p.flags: every combination
//   shares one pipeline, which matters where compiling a pipeline takes seconds (lavapipe). Absent
//   bias and residual bindings are filled with A's binding and never read.
//
// Defines: A_T, B_T, C_T, BIAS_T, R_T (storage types, f32 or f16), A_F16 / B_F16 (operand is f16, read as
// packed u32 pairs, so f16 weights work on devices without shader-f16),
// B_NK, VEC (every row start and K are multiples of 4 elements: operands are read as 4-element
// vectors, f16 ones as vec2<u32>), A_LANES (gemv_rows only: see the binding of a).
// LN (GEMV kernels only): an A-side LayerNorm prologue, C = epilogue(LN(A) B): see ln_prologue below.
// Quantized B (src/quant/format.ts): B_Q8 or B_Q4, with B_QUANT for either. B is [N, K] with every row whole
// groups of 32 packed codes (read as vec4<u32>: one q4 group or half a q8 group per load), p.ldb the padded
// row length in codes, p.b_off in codes; the f16 scales [N, groups] come in binding 6 from p.bs_off (LN's
// bindings then follow at 7 and 8). The ld_b* helpers return scaled values, so every kernel runs quantized
// weights; the decode GEMV instead sums codes per group and scales once (group_part below).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  a_off: u32,
  b_off: u32,
  c_off: u32,
  bias_off: u32,
  r_off: u32,
  a_bstride: u32,
  b_bstride: u32,
  c_bstride: u32, // also the residual's
  lda: u32,
  ldb: u32,
  ldc: u32, // also the residual's
  alpha: f32,
  flags: u32, // FLAG_* below
  // LN: element offsets of the LayerNorm weight and bias in their bindings, and its epsilon.
  ln_w_off: u32,
  ln_b_off: u32,
  ln_eps: f32,
  bs_off: u32, // B_QUANT: first scale of B's binding 6, in f16 elements
}

const FLAG_BIAS = 1u;
const FLAG_GELU = 2u;
const FLAG_RELU = 4u;
const FLAG_RESIDUAL = 8u;
const FLAG_RESIDUAL_INPLACE = 16u;

@group(0) @binding(0) var<uniform> p: Params;
#if A_LANES
// gemv_rows on CPU adapters: f32 A read one element per subgroup lane and shared by
// subgroupBroadcast; B is f16 read 8 at a time (A_LANES implies B_WIDE) or quantized.
#if A_UNIFORM
// A bound as a uniform buffer (src/kernels/linear-uniform-a.ts: llvmpipe gathers uniform words without the
// per-lane branch and bounds check of a storage load).
@group(0) @binding(1) var<uniform> a: array<vec4<f32>, ${AU_VEC4}>;
#elif QGROUPS
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
#else
@group(0) @binding(1) var<storage, read> a: array<f32>;
#endif
@group(0) @binding(2) var<storage, read> b: array<vec4<u32>>;
#elif VEC
#if A_F16
@group(0) @binding(1) var<storage, read> a: array<vec2<u32>>;
#else
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
#endif
#if B_WIDE
@group(0) @binding(2) var<storage, read> b: array<vec4<u32>>;
#elif B_QUANT
@group(0) @binding(2) var<storage, read> b: array<vec4<u32>>;
#elif B_F16
@group(0) @binding(2) var<storage, read> b: array<vec2<u32>>;
#else
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
#endif
#else
// f16 operands are read as packed pairs (unpack2x16float is core WGSL): no shader-f16 needed for them.
#if A_F16
@group(0) @binding(1) var<storage, read> a: array<u32>;
#else
@group(0) @binding(1) var<storage, read> a: array<${A_T}>;
#endif
#if B_QUANT
@group(0) @binding(2) var<storage, read> b: array<vec4<u32>>;
#elif B_F16
@group(0) @binding(2) var<storage, read> b: array<u32>;
#else
@group(0) @binding(2) var<storage, read> b: array<${B_T}>;
#endif
#endif
@group(0) @binding(3) var<storage, read_write> c: array<${C_T}>;
@group(0) @binding(4) var<storage, read> bias: array<${BIAS_T}>;
@group(0) @binding(5) var<storage, read> res: array<${R_T}>;
#if B_QUANT
@group(0) @binding(6) var<storage, read> bs: array<u32>;

// The scale of the group that holds element e of B (rows start at group boundaries, so e's group is
// (e - b_off) / 32 counted over the rows).
fn ld_scale(e: u32) -> f32 {
  let i = p.bs_off + ((e - p.b_off) >> 5u);
  return unpack2x16float(bs[i >> 1u])[i & 1u];
}

// The 32-bit word holding code e.
fn code_word(e: u32) -> i32 {
#if B_Q8
  return bitcast<i32>(b[e >> 4u][(e >> 2u) & 3u]);
#else
  return bitcast<i32>(b[e >> 5u][(e >> 3u) & 3u]);
#endif
}

// Codes of a word as f32: a q8 word holds 4 (bytes, low first), a q4 word 8 (nibbles, low first); each is
// sign-extended by shifting it to the top and back (arithmetic shift).
#if B_Q8
fn codes_of(w: i32) -> vec4<f32> {
  return vec4<f32>((vec4<i32>(w) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}
#else
fn codes_of(w: i32) -> mat2x4<f32> {
  let v = vec4<i32>(w);
  return mat2x4<f32>(vec4<f32>((v << vec4<u32>(28u, 24u, 20u, 16u)) >> vec4<u32>(28u)), vec4<f32>((v << vec4<u32>(12u, 8u, 4u, 0u)) >> vec4<u32>(28u)));
}
#endif

#if QGROUPS
// gemv_rows on 8-lane subgroups. x[m] holds one group's x values of row m of A spread over the subgroup: lane i
// has elements 4i..4i+3, handed round by subgroupBroadcast (constant lanes: a register shuffle on llvmpipe).
// group_part sums x * code over part `h` of the group for the row whose group starts at element e, unscaled:
// q4 has one part (its 32 codes in one 16-byte load), q8 two halves of 16 (one 16-byte load each), summed for
// every row before the next half's x is broadcast: the broadcasts of a whole group and the codes do not fit the
// registers, and spilling them costs as much as loading them.
fn group_part(e: u32, h: u32, x: array<vec4<f32>, ${MR}>) -> array<f32, ${MR}> {
  var d: array<f32, ${MR}>;
#if B_Q8
  let q = b[(e >> 4u) + h];
#else
  let q = b[e >> 5u];
#endif
  let c0 = codes_of(bitcast<i32>(q.x));
  let c1 = codes_of(bitcast<i32>(q.y));
  let c2 = codes_of(bitcast<i32>(q.z));
  let c3 = codes_of(bitcast<i32>(q.w));
  for (var m = 0u; m < ${MR}u; m++) {
    let v = x[m];
#if B_Q8
    if (h == 0u) {
      d[m] = dot(subgroupBroadcast(v, 0u), c0) + dot(subgroupBroadcast(v, 1u), c1) + dot(subgroupBroadcast(v, 2u), c2) + dot(subgroupBroadcast(v, 3u), c3);
    } else {
      d[m] = dot(subgroupBroadcast(v, 4u), c0) + dot(subgroupBroadcast(v, 5u), c1) + dot(subgroupBroadcast(v, 6u), c2) + dot(subgroupBroadcast(v, 7u), c3);
    }
#else
    d[m] = dot(subgroupBroadcast(v, 0u), c0[0]) + dot(subgroupBroadcast(v, 1u), c0[1]) + dot(subgroupBroadcast(v, 2u), c1[0]) + dot(subgroupBroadcast(v, 3u), c1[1]) +
           dot(subgroupBroadcast(v, 4u), c2[0]) + dot(subgroupBroadcast(v, 5u), c2[1]) + dot(subgroupBroadcast(v, 6u), c3[0]) + dot(subgroupBroadcast(v, 7u), c3[1]);
#endif
  }
  return d;
}
#endif

// Unscaled codes of elements e..e+3 (e a multiple of 4).
fn codes4(e: u32) -> vec4<f32> {
#if B_Q8
  return codes_of(code_word(e));
#else
  return codes_of(code_word(e))[(e >> 2u) & 1u];
#endif
}
#endif

#if LN
// A-side LayerNorm prologue for the decode GEMVs, C = epilogue(LN(A) B): fusing the LayerNorm that precedes a
// linear saves its dispatch (two per decoder layer). Every workgroup computes the statistics of the MR rows of
// A it multiplies (mean, then the centred sum of squares: two passes, no cancellation, as layernorm.wgsl)
// and keeps the normalised rows in workgroup memory, where the main loop reads them through the same
// a_row_start / ld_a* helpers as unfused A (so a kernel's loop does not change). The extra work is three
// passes over MR * K values per workgroup, shared by its WG invocations; LN_K (K rounded up to 8) bounds the
// rows kept, so the host only fuses while MR * LN_K floats fit the device's workgroup memory.
// Defines: LN_K, LN_T (type of the LayerNorm weight and bias), LN_W_BINDING, LN_B_BINDING, WG, MR.
@group(0) @binding(${LN_W_BINDING}) var<storage, read> ln_w: array<${LN_T}>;
@group(0) @binding(${LN_B_BINDING}) var<storage, read> ln_b: array<${LN_T}>;
#if A_LANES
#if QGROUPS
// vec4s: each lane reads four consecutive elements (ld_a_lane4).
var<workgroup> a_s: array<vec4<f32>, ${MR}u * ${LN_K}u / 4u>;
fn a_s_store(e: u32, v: f32) { a_s[e >> 2u][e & 3u] = v; }
#else
// Scalars: each lane reads its own element (a vec4 array would need a dynamic component index per lane).
var<workgroup> a_s: array<f32, ${MR}u * ${LN_K}u>;
fn a_s_store(e: u32, v: f32) { a_s[e] = v; }
fn a_s_load(e: u32) -> f32 { return a_s[e]; }
#endif
#else
var<workgroup> a_s: array<vec4<f32>, ${MR}u * ${LN_K}u / 4u>;
fn a_s_store(e: u32, v: f32) { a_s[e >> 2u][e & 3u] = v; }
fn a_s_load(e: u32) -> f32 { return a_s[e >> 2u][e & 3u]; }
#endif
var<workgroup> ln_part: array<f32, ${MR}u * ${WG}u>;
var<workgroup> ln_stat: array<f32, ${MR}u * 2u>;

// Element e of A as stored (any binding layout).
fn a_stored(e: u32) -> f32 {
#if A_LANES
#if QGROUPS
  return a[e >> 2u][e & 3u];
#else
  return a[e];
#endif
#elif VEC
#if A_F16
  return unpack2x16float(a[e >> 2u][(e >> 1u) & 1u])[e & 1u];
#else
  return a[e >> 2u][e & 3u];
#endif
#elif A_F16
  return unpack2x16float(a[e >> 1u])[e & 1u];
#else
  return f32(a[e]);
#endif
}

// Sums each row's partials of ln_part in index order (deterministic) into ln_stat[m * 2 + slot].
fn ln_reduce(li: u32, slot: u32) {
  workgroupBarrier();
  if (li < ${MR}u) {
    var s = 0.0;
    for (var t = 0u; t < ${WG}u; t++) { s += ln_part[li * ${WG}u + t]; }
    ln_stat[li * 2u + slot] = s;
  }
  workgroupBarrier();
}

// Called by every invocation of the workgroup, first thing (it has barriers): normalises rows
// min(m, M - 1) of A of `batch` into a_s (row m at m * LN_K).
fn ln_prologue(batch: u32, li: u32) {
  let a0 = p.a_off + batch * p.a_bstride;
  let inv_k = 1.0 / f32(p.K);
  for (var m = 0u; m < ${MR}u; m++) {
    let src = a0 + min(m, p.M - 1u) * p.lda;
    var s = 0.0;
    for (var k = li; k < p.K; k += ${WG}u) { s += a_stored(src + k); }
    ln_part[m * ${WG}u + li] = s;
  }
  ln_reduce(li, 0u);
  for (var m = 0u; m < ${MR}u; m++) {
    let src = a0 + min(m, p.M - 1u) * p.lda;
    let mean = ln_stat[m * 2u] * inv_k;
    var q = 0.0;
    for (var k = li; k < p.K; k += ${WG}u) {
      let c = a_stored(src + k) - mean;
      q += c * c;
    }
    ln_part[m * ${WG}u + li] = q;
  }
  ln_reduce(li, 1u);
  for (var m = 0u; m < ${MR}u; m++) {
    let src = a0 + min(m, p.M - 1u) * p.lda;
    let mean = ln_stat[m * 2u] * inv_k;
    let rstd = inverseSqrt(ln_stat[m * 2u + 1u] * inv_k + p.ln_eps);
    for (var k = li; k < ${LN_K}u; k += ${WG}u) {
      var v = 0.0;
      if (k < p.K) {
        v = (a_stored(src + k) - mean) * rstd * f32(ln_w[p.ln_w_off + k]) + f32(ln_b[p.ln_b_off + k]);
      }
      a_s_store(m * ${LN_K}u + k, v);
    }
  }
  workgroupBarrier();
}
#endif

// Where row m of A (m < MR; rows past M repeat row M - 1) of `batch` starts, as the ld_a* helpers index it.
fn a_row_start(batch: u32, m: u32) -> u32 {
#if LN
  return m * ${LN_K}u;
#else
  return p.a_off + batch * p.a_bstride + min(m, p.M - 1u) * p.lda;
#endif
}

#if A_LANES
#if QGROUPS
// Four elements of A from e (a multiple of 4) per subgroup lane: the quantized GEMV's group of 32 in one load
// per lane, shared by broadcast (group_part).
fn ld_a_lane4(e: u32) -> vec4<f32> {
#if LN
  return a_s[e >> 2u];
#else
  return a[e >> 2u];
#endif
}
#else
// One element of A per subgroup lane (gemv_rows shares them by broadcast).
fn ld_a_lane(e: u32) -> f32 {
#if LN
  return a_s_load(e);
#else
  return a[e];
#endif
}
#endif
#endif

#if !A_LANES
// Four consecutive elements starting at element e (e is a multiple of 4 when VEC).
fn ld_a4(e: u32) -> vec4<f32> {
#if LN
#if VEC
  return a_s[e >> 2u];
#else
  return vec4<f32>(ld_a1(e), ld_a1(e + 1u), ld_a1(e + 2u), ld_a1(e + 3u));
#endif
#elif VEC
#if A_F16
  let q = a[e >> 2u];
  return vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y));
#else
  return a[e >> 2u];
#endif
#else
  return vec4<f32>(ld_a1(e), ld_a1(e + 1u), ld_a1(e + 2u), ld_a1(e + 3u));
#endif
}
#endif

fn ld_b4(e: u32) -> vec4<f32> {
#if B_QUANT
  return codes4(e) * ld_scale(e);
#elif VEC
#if B_WIDE
  let q = b[e >> 3u];
  let h = select(q.xy, q.zw, (e & 4u) != 0u);
  return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
#elif B_F16
  let q = b[e >> 2u];
  return vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y));
#else
  return b[e >> 2u];
#endif
#else
  return vec4<f32>(ld_b1(e), ld_b1(e + 1u), ld_b1(e + 2u), ld_b1(e + 3u));
#endif
}

#if B_QUANT
// Unscaled codes of elements e..e+7 (e a multiple of 8).
fn codes8(e: u32) -> mat2x4<f32> {
#if B_Q8
  let q = b[e >> 4u];
  let h = select(q.xy, q.zw, (e & 8u) != 0u);
  return mat2x4<f32>(codes_of(bitcast<i32>(h.x)), codes_of(bitcast<i32>(h.y)));
#else
  let q = b[e >> 5u];
  let h = select(q.xy, q.zw, (e & 16u) != 0u);
  return codes_of(bitcast<i32>(select(h.x, h.y, (e & 8u) != 0u)));
#endif
}

// Eight scaled elements from e (a multiple of 8).
fn ld_b8(e: u32) -> mat2x4<f32> {
  return codes8(e) * ld_scale(e);
}
#elif B_WIDE
// Eight f16 elements from e (a multiple of 8) in one 16-byte load: half the load instructions of two
// ld_b4, which is what a software rasteriser's skinny GEMV is bound by.
fn ld_b8(e: u32) -> mat2x4<f32> {
  let q = b[e >> 3u];
  return mat2x4<f32>(vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y)), vec4<f32>(unpack2x16float(q.z), unpack2x16float(q.w)));
}
#endif

#if !VEC
// Single elements, for the K (and KN-layout N) tails that only exist without VEC.
fn ld_a1(e: u32) -> f32 {
#if LN
  return a_s_load(e);
#elif A_F16
  return unpack2x16float(a[e >> 1u])[e & 1u];
#else
  return f32(a[e]);
#endif
}
fn ld_b1(e: u32) -> f32 {
#if B_QUANT
  return codes4(e & ~3u)[e & 3u] * ld_scale(e);
#elif B_F16
  return unpack2x16float(b[e >> 1u])[e & 1u];
#else
  return f32(b[e]);
#endif
}
#endif

#include exp_common

// erfc(z) for z >= 0: the Chebyshev fit of Numerical Recipes (6.2), relative error below 1.2e-7, so
// GELU stays accurate to ~1e-7 even far into the negative tail where 1 + erf(x) cancels.
fn erfc_nonneg(z: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  return t * exp_precise(r);
}

// HF `gelu`: 0.5 x (1 + erf(x / sqrt 2)), written through erfc of |x| to avoid cancellation.
fn gelu(x: f32) -> f32 {
  let e = erfc_nonneg(abs(x) * 0.70710678118654752);
  let half_xe = 0.5 * x * e;
  return select(half_xe, x - half_xe, x >= 0.0);
}

// Finishes one output element: alpha, bias, activation, residual, conversion, store.
fn store_out(batch: u32, m: u32, n: u32, acc: f32) {
  var y = acc * p.alpha;
  if ((p.flags & FLAG_BIAS) != 0u) {
    y += f32(bias[p.bias_off + n]);
  }
  if ((p.flags & FLAG_GELU) != 0u) {
    y = gelu(y);
  } else if ((p.flags & FLAG_RELU) != 0u) {
    y = max(y, 0.0);
  }
  let rel = batch * p.c_bstride + m * p.ldc + n;
  if ((p.flags & FLAG_RESIDUAL) != 0u) {
    y += f32(res[p.r_off + rel]);
  } else if ((p.flags & FLAG_RESIDUAL_INPLACE) != 0u) {
    y += f32(c[p.c_off + rel]);
  }
  c[p.c_off + rel] = ${C_T}(y);
}
