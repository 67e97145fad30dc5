import type { Gpu } from '../gpu/gpu.js';
import type { GemmProblem, TiledConfig, VariantChoice, VariantKind } from './linear-problem.js';

/** A variant with every choice made (fields that do not apply to its kind are left at their defaults). */
export interface ResolvedVariant {
  kind: VariantKind;
  vec: boolean;
  /** GEMV kernels: f16 B read 8 elements per load (K and B's row starts multiples of 8). */
  wide: boolean;
  subgroups: boolean;
  tile: TiledConfig;
  f16Math: boolean;
  /** gemv-rows: rows of B per invocation. */
  gemvRows: number;
  /** gemv-rows with subgroups: read A through a uniform binding where one fits (linear-uniform-a.ts). */
  uniformA: boolean;
}

/** Largest M the skinny (GEMV) kernels take; their accumulators are unrolled per row of A. */
export const GEMV_MAX_ROWS = 8;

const SHADER: Readonly<Record<VariantKind, string>> = {
  'gemv-rows': 'gemv_rows',
  'gemv-coop': 'gemv_coop',
  regblock: 'matmul_regblock',
  tiled: 'matmul_tiled',
};

interface TileShape {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
}

const TILES: Readonly<Record<TiledConfig, TileShape>> = {
  tile32: { BM: 32, BN: 64, BK: 16, TM: 4, TN: 4 },
  tile64: { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  tile128: { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 },
};

/**
 * Register block of the lavapipe matmul: 8 rows of A by 4 columns of B (one gathered vector each) per
 * invocation. Measured on lavapipe (2 cores, AVX-512): 8x4 beat 4x4, 4x8, 8x2, 8x8, 12x4 and 16x4 at
 * 1024^3 f32 and at 257x1408->4224 with f16 weights. With 8-lane subgroups the 8 rows are loaded one
 * per lane and broadcast (ROW_LANES): 2.2x faster at 257x1408->4224 and 41x2560->10240 (f16 weights).
 */
const REGBLOCK = { WG: 64, TM: 8, TN: 4 } as const;
const GEMV_ROWS = { WG: 64, ROWS: 2 } as const;
const GEMV_COOP_WG = 128;

/**
 * With a LayerNorm prologue every workgroup normalises the whole row of A, so the GEMVs take fewer, larger
 * workgroups: gemv-rows 256 invocations (measured on lavapipe at 1x2560->7680, f16 weights: with 64 the prologue
 * cost 3 ms of CPU more than a LayerNorm dispatch, with 256 none), gemv-coop 16 rows of B per workgroup (GPUs:
 * about 500 workgroups at the model's widths; reasoned, not measured here).
 */
const LN_GEMV_ROWS_WG = 256;
const LN_COOP_ROWS = 16;

function gemvRowsWorkgroup(ln: boolean): number {
  return ln ? LN_GEMV_ROWS_WG : GEMV_ROWS.WG;
}

/** Quantized B whose scales come in aligned pairs per row: K a multiple of 64 and an even first scale. */
function qPairs(p: GemmProblem): boolean {
  return p.scales !== null && p.K % 64 === 0 && p.scales.offset % 2 === 0;
}

/** gemv-rows: rows of B per invocation (linear-problem.ts: VariantChoice.rows). */
function gemvRowsPerInvocation(choice: VariantChoice): number {
  const rows = choice.rows ?? GEMV_ROWS.ROWS;
  if (![1, 2, 4].includes(rows)) throw new RangeError(`linear: gemv-rows takes 1, 2 or 4 rows per invocation, got ${rows}`);
  return rows;
}

/** The GEMV kernels are compiled for 1, 2, 4 or 8 rows of A (M up to that), to bound the pipelines. */
function gemvRowBucket(M: number): number {
  return M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8;
}

/** Rows of B per workgroup of gemv-coop: fewer as M grows, to bound the partial sums per invocation. */
function coopRows(M: number, ln = false): number {
  if (ln) return Math.max(2, LN_COOP_ROWS / M);
  return M <= 2 ? 4 : M <= 4 ? 2 : 1;
}

/** Bytes of workgroup memory a tiled configuration needs. */
export function tiledWorkgroupBytes(tile: TiledConfig, f16Math: boolean): number {
  const t = TILES[tile];
  return (t.BK * (t.BM + t.BN)) * (f16Math ? 2 : 4);
}

/** linear_common's flag for "add the output's own contents" (y += ...). */
export const FLAG_RESIDUAL_INPLACE = 16;

/** The epilogue flags of linear_common (bias, activation, residual), chosen at run time. */
export function epilogueFlags(p: GemmProblem): number {
  let f = 0;
  if (p.bias) f |= 1;
  if (p.activation === 'gelu') f |= 2;
  else if (p.activation === 'relu') f |= 4;
  if (p.residual && !p.residualInPlace) f |= 8;
  if (p.residualInPlace) f |= FLAG_RESIDUAL_INPLACE;
  return f;
}

/**
 * Whether every row start and K allow 4-element vector loads (and N too for a [K, N] B; M instead of K for
 * an A stored [K, M], whose vectors run along M). Quantized rows are whole groups of codes, always aligned:
 * A decides for them, and N for one read as [K, N] (the kernels clamp the last vector to N - 4, which must
 * stay a whole word of codes).
 */
export function vecAligned(p: GemmProblem, aOffset: number, bOffset: number): boolean {
  const aligned = (v: number) => v % 4 === 0;
  const ldb = p.bLayout === 'nk' ? p.K : p.N;
  const aRun = p.aLayout === 'km' ? p.M : p.K;
  const bAligned = p.scales !== null ? p.bLayout === 'nk' || aligned(p.N) : aligned(bOffset) && aligned(p.bBatchStride) && aligned(ldb);
  return aligned(aRun) && (p.bLayout === 'kn' || aligned(p.K)) && aligned(aOffset) && aligned(p.aBatchStride) && bAligned;
}

/**
 * Everything `variantDefines` depends on, as a short string: the pipeline cache key, built on every
 * dispatch without building the defines themselves.
 */
export function variantKey(p: GemmProblem, v: ResolvedVariant, rows: number, aUniformVec4s = 0): string {
  const biasType = p.bias?.dtype ?? p.a.dtype;
  const resType = p.residual && !p.residualInPlace ? p.residual.dtype : p.a.dtype;
  const bucket = isGemvKind(v.kind) ? gemvRowBucket(rows) : 0;
  const ln = p.ln ? `|ln${lnRowLength(p.K)}${p.ln.weight.dtype}${p.ln.bias.dtype}` : '';
  return `${v.kind}|${v.vec}|${v.wide}|${v.subgroups}|${v.tile}|${v.f16Math}|${p.a.dtype}|${p.bFormat}|${p.out.dtype}|${biasType}|${resType}|${p.aLayout ?? 'mk'}|${p.bLayout}|${bucket}|${v.gemvRows}|${p.K % 32 === 0}|${qPairs(p)}${ln}|${aUniformVec4s}`;
}

/**
 * Row length the LayerNorm prologue keeps in workgroup memory (its array size is compiled in): K rounded up to
 * 256, then to 512 from 512 on, so that nearby K share a pipeline (each costs a compile, about a second on
 * lavapipe) while a big K wastes at most 511 floats.
 */
function lnRowLength(K: number): number {
  return K <= 256 ? 256 : Math.ceil(K / 512) * 512;
}

/**
 * Whether `v` can run `p`'s LayerNorm as its A-side prologue: the GEMV kernels only, and only while the
 * normalised rows (MR x K floats) and the reduction partials fit the device's workgroup memory next to what
 * the kernel itself keeps there.
 */
export function lnFusable(gpu: Gpu, p: GemmProblem, v: ResolvedVariant, rows: number): boolean {
  if (!p.ln || !isGemvKind(v.kind) || p.batch !== 1) return false;
  if (p.ln.weight.dtype === 'f16' && !gpu.caps.f16) return false;
  const mr = gemvRowBucket(rows);
  const wg = v.kind === 'gemv-rows' ? gemvRowsWorkgroup(true) : GEMV_COOP_WG;
  const own = v.kind === 'gemv-coop' ? mr * coopRows(mr, true) * (v.subgroups ? GEMV_COOP_WG / 4 : GEMV_COOP_WG) * 4 : 0;
  const bytes = (mr * lnRowLength(p.K) + mr * wg + 2 * mr) * 4 + own;
  return bytes <= gpu.caps.maxComputeWorkgroupStorageSize;
}

/**
 * Whether gemv-rows runs `p` in group steps (QGROUPS in gemv_rows.wgsl): quantized B, K whole groups of 32, x shared
 * across an 8-lane subgroup, each lane loading one vec4 of x per group.
 */
export function groupSteps(p: GemmProblem, v: ResolvedVariant): boolean {
  return v.kind === 'gemv-rows' && v.subgroups && p.scales !== null && p.K % 32 === 0;
}

/**
 * Compile-time constants of the shader for `problem` run by `v` on a chunk of `rows` rows of A. `aUniformVec4s` > 0
 * (linear-uniform-a.ts): gemv-rows reads A through a uniform binding of that many vec4s.
 */
export function variantDefines(gpu: Gpu, p: GemmProblem, v: ResolvedVariant, rows: number, aUniformVec4s = 0): Record<string, string | number | boolean> {
  const d: Record<string, string | number | boolean> = {
    A_T: p.a.dtype,
    B_T: p.b.dtype,
    C_T: p.out.dtype,
    // An absent bias or residual is bound to A (never read), so it takes A's type: one pipeline less.
    BIAS_T: p.bias?.dtype ?? p.a.dtype,
    R_T: p.residual && !p.residualInPlace ? p.residual.dtype : p.a.dtype,
    A_F16: p.a.dtype === 'f16',
    ...formatDefines(p),
    B_NK: p.bLayout === 'nk',
    A_KM: p.aLayout === 'km',
    VEC: v.vec,
  };
  // A and B are read as packed u32 pairs when f16, so only f16 math, an f16 output, bias or residual need shader-f16.
  d.F16 = v.f16Math || [p.out, p.bias, p.residual, p.ln?.weight, p.ln?.bias].some((t) => t?.dtype === 'f16');
  if (p.ln) {
    // The LayerNorm bindings follow the epilogue's (bias 4, residual 5).
    Object.assign(d, { LN: true, LN_K: lnRowLength(p.K), LN_T: p.ln.weight.dtype, LN_W_BINDING: p.scales ? 7 : 6, LN_B_BINDING: p.scales ? 8 : 7 });
    if (p.ln.bias.dtype !== p.ln.weight.dtype) throw new Error('linear: the LayerNorm weight and bias must share a dtype');
  }
  switch (v.kind) {
    case 'gemv-rows':
      Object.assign(d, GEMV_ROWS, { ROWS: v.gemvRows, WG: gemvRowsWorkgroup(p.ln !== null), MR: gemvRowBucket(rows), B_WIDE: v.wide, A_LANES: v.subgroups, SUBGROUPS: v.subgroups });
      d.QGROUPS = groupSteps(p, v);
      d.QPAIRS = d.QGROUPS && qPairs(p);
      d.QR2 = v.gemvRows >= 2;
      d.QR4 = v.gemvRows >= 4;
      if (aUniformVec4s > 0) Object.assign(d, { A_UNIFORM: true, AU_VEC4: aUniformVec4s });
      break;
    case 'gemv-coop':
      Object.assign(d, { WG: GEMV_COOP_WG, ROWS: coopRows(gemvRowBucket(rows), p.ln !== null), MR: gemvRowBucket(rows), SUBGROUPS: v.subgroups, B_WIDE: v.wide });
      break;
    case 'regblock':
      Object.assign(d, REGBLOCK, { B_WIDE: v.wide, ROW_LANES: v.subgroups, SUBGROUPS: v.subgroups });
      break;
    case 'tiled':
      Object.assign(d, TILES[v.tile], { F16_MATH: v.f16Math });
      if (v.f16Math) d.F16 = true;
      break;
  }
  if (d.F16 && !gpu.caps.f16) throw new Error('linear: this variant needs shader-f16, which the device lacks');
  return d;
}

/** The one place B's storage format becomes defines: B_F16 (packed pairs), B_Q8 / B_Q4 (with B_QUANT). */
function formatDefines(p: GemmProblem): Record<string, boolean> {
  return { B_F16: p.bFormat === 'f16', B_Q8: p.bFormat === 'q8', B_Q4: p.bFormat === 'q4', B_QUANT: p.scales !== null };
}

export function shaderName(kind: VariantKind): string {
  return SHADER[kind];
}

/** Workgroup grid for a chunk of `rows` x `cols` outputs over `batches` batches (`ln`: with the LayerNorm prologue). */
export function variantWorkgroups(v: ResolvedVariant, rows: number, cols: number, batches: number, ln = false): [number, number, number] {
  switch (v.kind) {
    case 'gemv-rows':
      return [Math.ceil(Math.ceil(cols / v.gemvRows) / gemvRowsWorkgroup(ln)), 1, batches];
    case 'gemv-coop':
      return [Math.ceil(cols / coopRows(gemvRowBucket(rows), ln)), 1, batches];
    case 'regblock':
      return [Math.ceil(Math.ceil(cols / REGBLOCK.TN) / REGBLOCK.WG), Math.ceil(rows / REGBLOCK.TM), batches];
    case 'tiled': {
      const t = TILES[v.tile];
      return [Math.ceil(cols / t.BN), Math.ceil(rows / t.BM), batches];
    }
  }
}

export function isGemvKind(kind: VariantKind): boolean {
  return kind === 'gemv-rows' || kind === 'gemv-coop';
}

/**
 * Whether B can be read 8 elements at a time: f16 rows starting at multiples of 8 elements (16-byte loads of 8
 * halves), or quantized rows (always aligned); K a multiple of 8 either way.
 */
export function wideAligned(p: GemmProblem, bOffset: number): boolean {
  if (p.scales) return p.bLayout === 'nk' && p.K % 8 === 0;
  return p.b.dtype === 'f16' && p.bLayout === 'nk' && p.K % 8 === 0 && bOffset % 8 === 0 && p.bBatchStride % 8 === 0;
}

/**
 * Whether gemv-rows can share A across a subgroup (A_LANES in gemv_rows.wgsl): its broadcasts are
 * unrolled for exactly 8 lanes, the lane count of lavapipe's 256-bit vectors.
 */
function aLanesPossible(gpu: Gpu, p: GemmProblem, wide: boolean): boolean {
  return eightLanes(gpu) && wide && p.a.dtype === 'f32';
}

/** Subgroups of exactly 8 lanes: the lane-sharing kernels unroll their broadcasts for 8. */
function eightLanes(gpu: Gpu): boolean {
  const c = gpu.caps;
  return c.subgroups && c.subgroupMinSize === 8 && c.subgroupMaxSize === 8;
}

/** Fills in what `choice` leaves open. */
export function resolveVariant(gpu: Gpu, p: GemmProblem, choice: VariantChoice, alignedForVec: boolean, alignedForWide = false): ResolvedVariant {
  const vec = choice.vec ?? alignedForVec;
  if (vec && !alignedForVec) throw new Error('linear: vector loads were forced on an unaligned problem');
  const wide = (isGemvKind(choice.kind) || choice.kind === 'regblock') && vec && alignedForWide;
  let subgroups = false;
  if (choice.kind === 'gemv-coop') {
    subgroups = choice.subgroups ?? gpu.caps.subgroups;
    if (subgroups && !gpu.caps.subgroups) throw new Error('linear: subgroups were forced on a device without them');
  } else if (choice.kind === 'gemv-rows') {
    const possible = aLanesPossible(gpu, p, wide);
    subgroups = choice.subgroups ?? possible;
    if (subgroups && !possible) {
      throw new Error('linear: gemv-rows with subgroups needs subgroups of exactly 8 lanes, f32 x and f16 weights (or quantized ones) read 8 at a time');
    }
  } else if (choice.kind === 'regblock') {
    // Lane i loads row i of the block: the block must have as many rows as the subgroup has lanes.
    const possible = eightLanes(gpu) && REGBLOCK.TM === 8 && p.bLayout === 'nk' && vec;
    subgroups = choice.subgroups ?? possible;
    if (subgroups && !possible) throw new Error('linear: regblock with subgroups needs subgroups of exactly 8 lanes, B as [N, K] and vector loads');
  }
  if (p.aLayout === 'km' && choice.kind !== 'tiled') throw new Error(`linear: A stored as [K, M] is read by the tiled kernel only, not ${choice.kind}`);
  const f16Math = choice.kind === 'tiled' && (choice.f16Math ?? false);
  if (f16Math && !gpu.caps.f16) throw new Error('linear: f16 math needs shader-f16');
  const tile = choice.kind === 'tiled' ? (choice.tile ?? 'tile64') : 'tile64';
  if (isGemvKind(choice.kind) && (p.bLayout !== 'nk' || p.M > GEMV_MAX_ROWS)) {
    throw new Error(`linear: ${choice.kind} needs B as [N, K] and at most ${GEMV_MAX_ROWS} rows of A`);
  }
  if (choice.kind === 'tiled' && tiledWorkgroupBytes(tile, f16Math) > gpu.caps.maxComputeWorkgroupStorageSize) {
    throw new Error(`linear: ${tile} needs more workgroup memory than the device has`);
  }
  const gemvRows = choice.kind === 'gemv-rows' ? gemvRowsPerInvocation(choice) : GEMV_ROWS.ROWS;
  const uniformA = choice.kind === 'gemv-rows' && subgroups && (choice.uniformA ?? gpu.caps.isSoftware);
  return { kind: choice.kind, vec, wide, subgroups, tile, f16Math, gemvRows, uniformA };
}
