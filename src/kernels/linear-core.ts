import type { Binding, Gpu } from '../gpu/gpu.js';
import { uniforms } from '../gpu/uniforms.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor.js';
import { layerNorm } from './layernorm.js';
import { codesPerWord } from '../quant/format.js';
import { bindRange, worstCaseBindingBytes } from './linear-bind.js';
import { uniformAVec4s } from './linear-uniform-a.js';
import type { GemmProblem, VariantChoice } from './linear-problem.js';
import { pickVariant } from './tuning.js';
import {
  epilogueFlags,
  FLAG_RESIDUAL_INPLACE,
  lnFusable,
  resolveVariant,
  shaderName,
  variantDefines,
  variantKey,
  variantWorkgroups,
  vecAligned,
  wideAligned,
  type ResolvedVariant,
} from './linear-variants.js';

const pipelineCaches = new WeakMap<Gpu, Map<string, GPUComputePipeline>>();

/**
 * Compiled pipelines, cached under `variantKey`: the defines are only built on a miss, which keeps the
 * per-dispatch cost of a decode step's many small linears low.
 */
function pipelineFor(gpu: Gpu, p: GemmProblem, v: ResolvedVariant, rows: number, aUniformVec4s: number): GPUComputePipeline {
  let cache = pipelineCaches.get(gpu);
  if (!cache) pipelineCaches.set(gpu, (cache = new Map()));
  const key = variantKey(p, v, rows, aUniformVec4s);
  let pipeline = cache.get(key);
  if (!pipeline) {
    const defines = variantDefines(gpu, p, v, rows, aUniformVec4s);
    pipeline = gpu.pipeline(shaderName(v.kind), defines);
    cache.set(key, pipeline);
  }
  return pipeline;
}

/** How the operands are cut so that every binding fits the device's storage binding limit. */
interface ChunkPlan {
  batchChunk: number;
  rowChunk: number;
  colChunk: number;
  /**
   * Rows of a [K, N] B per dispatch: a B too large to bind is cut along K and the partial products are summed
   * into the output (the later chunks add to it in place), which is how dX = dY W runs for OPT's 257 MB tied
   * embedding (the LM head's input gradient).
   */
  kChunk: number;
}

/** Elements of A one binding of `rows` rows (and all of K) spans. */
function aSpan(p: GemmProblem, rows: number): number {
  return p.aLayout === 'km' ? (p.K - 1) * p.M + rows : rows * p.K;
}

/** Elements of b's storage per row of B (codes words for quantized B), and kernel elements (codes) per storage element. */
function bRow(p: GemmProblem): { len: number; unit: number } {
  if (p.scales) return { len: p.b.dim(1), unit: codesPerWord(p.bFormat as 'q8' | 'q4') };
  return { len: p.bLayout === 'nk' ? p.K : p.N, unit: 1 };
}

function planChunks(gpu: Gpu, p: GemmProblem): ChunkPlan {
  const limit = gpu.caps.maxStorageBufferBindingSize;
  const fits = (t: Tensor, count: number) => worstCaseBindingBytes(t, count) <= limit;
  const outputs = [p.out, ...(p.residual && !p.residualInPlace ? [p.residual] : [])];
  const bRowLen = bRow(p).len;
  const bCount = (p.bLayout === 'nk' ? p.N : p.K) * bRowLen;
  const whole = (batches: number) =>
    fits(p.a, (batches - 1) * p.aBatchStride + aSpan(p, p.M)) &&
    fits(p.b, (batches - 1) * p.bBatchStride + bCount) &&
    (!p.scales || fits(p.scales, p.scales.size)) &&
    outputs.every((t) => fits(t, (batches - 1) * p.cBatchStride + p.M * p.N)) &&
    (!p.bias || fits(p.bias, p.N));
  const maxZ = gpu.caps.maxComputeWorkgroupsPerDimension;
  if (p.batch > 1 || whole(1)) {
    if (!whole(1)) {
      throw new RangeError(`linear: one batch of ${p.a} x ${p.b} does not fit the storage binding limit (${limit} bytes)`);
    }
    // Largest batch count whose bindings fit (binary search: the sizes grow with the count).
    let lo = 1;
    let hi = Math.min(p.batch, maxZ);
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (whole(mid)) lo = mid;
      else hi = mid - 1;
    }
    return { batchChunk: lo, rowChunk: p.M, colChunk: p.N, kChunk: p.K };
  }
  // One batch that is too large: split rows of A (and of the output) and rows of an [N, K] B.
  const per = (t: Tensor, rowLen: number) => {
    const usable = limit - gpu.caps.minStorageBufferOffsetAlignment - 16;
    return Math.floor(usable / (rowLen * BYTES_PER_ELEMENT[t.dtype]));
  };
  if (p.aLayout === 'km' && !fits(p.a, aSpan(p, p.M))) {
    throw new RangeError(`linear: ${p.a} stored as [K, M] exceeds the storage binding limit (${limit} bytes)`);
  }
  let rowChunk = Math.min(p.M, p.aLayout === 'km' ? p.M : per(p.a, p.K), ...outputs.map((t) => per(t, p.N)));
  let colChunk = p.N;
  let kChunk = p.K;
  if (!fits(p.b, bCount) || (p.scales && !fits(p.scales, p.scales.size))) {
    if (p.bLayout === 'nk') {
      colChunk = Math.min(p.N, per(p.b, bRowLen), ...(p.scales ? [per(p.scales, p.scales.dim(1))] : []));
    } else {
      // Summing partial products over K leaves no room for an activation between them.
      if (p.activation !== 'none') {
        throw new RangeError(`linear: ${p.b} in [K, N] layout exceeds the storage binding limit (${limit} bytes) and an activation cannot be split over K`);
      }
      kChunk = Math.min(p.K, per(p.b, bRowLen), ...(p.scales ? [per(p.scales, p.scales.dim(1))] : []));
      if (kChunk < p.K && kChunk >= 128) kChunk -= kChunk % 128;
      else if (kChunk < p.K) kChunk -= kChunk % 4;
    }
  }
  // Whole tiles per chunk keep the edge handling to the last chunk.
  if (colChunk < p.N && colChunk >= 128) colChunk -= colChunk % 128;
  if (rowChunk < p.M && rowChunk >= 128) rowChunk -= rowChunk % 128;
  if (rowChunk < 1 || colChunk < 1 || kChunk < 1) {
    throw new RangeError(`linear: a single row of ${p.a}, ${p.b} or the output exceeds the storage binding limit (${limit} bytes)`);
  }
  return { batchChunk: 1, rowChunk, colChunk, kChunk };
}

/**
 * Records the dispatches of one validated problem: picks the variant (unless `choice` forces one),
 * splits operands that exceed the binding limit, and launches one kernel per chunk.
 */
export function runGemm(p: GemmProblem, choice?: VariantChoice): void {
  const gpu = p.out.gpu;
  if (p.M === 0 || p.N === 0 || p.batch === 0) return;
  const aligned = vecAligned(p, p.a.offset, p.b.offset);
  const variant: ResolvedVariant = resolveVariant(gpu, p, choice ?? pickVariant(gpu, p), aligned, wideAligned(p, p.b.offset));
  const plan = planChunks(gpu, p);
  const fuse = () => choice?.fuseLayerNorm ?? lnPays(gpu, variant, variantWorkgroups(variant, p.M, plan.colChunk, 1, true));
  if (p.ln && (plan.rowChunk < p.M || plan.kChunk < p.K || !lnFusable(gpu, p, variant, p.M) || !fuse())) {
    // The prologue does not fit this kernel, or would cost more than it saves: the LayerNorm runs first.
    const ln = p.ln;
    const normed = layerNorm(p.a, ln.weight, ln.bias, ln.eps);
    try {
      runGemm({ ...p, a: normed, ln: null }, choice);
    } finally {
      normed.dispose(); // its buffer is reused only by work recorded after this product
    }
    return;
  }
  for (let z0 = 0; z0 < p.batch; z0 += plan.batchChunk) {
    const zc = Math.min(plan.batchChunk, p.batch - z0);
    for (let m0 = 0; m0 < p.M; m0 += plan.rowChunk) {
      const mc = Math.min(plan.rowChunk, p.M - m0);
      for (let k0 = 0; k0 < p.K; k0 += plan.kChunk) {
        const kc = Math.min(plan.kChunk, p.K - k0);
        for (let n0 = 0; n0 < p.N; n0 += plan.colChunk) {
          const nc = Math.min(plan.colChunk, p.N - n0);
          const { buffers, uniforms: u, aUniformVec4s } = chunkBindings(p, { z0, zc, m0, mc, n0, nc, k0, kc }, variant);
          const pipeline = pipelineFor(gpu, p, variant, mc, aUniformVec4s);
          gpu.dispatch({
            label: `linear:${variant.kind}${p.ln ? '+ln' : ''}`,
            pipeline,
            uniforms: u,
            buffers,
            workgroups: variantWorkgroups(variant, mc, nc, zc, p.ln !== null),
          });
        }
      }
    }
  }
}

/**
 * Every workgroup of a LayerNorm-prologue GEMV normalises the whole row. On GPUs the prologue reads the row from
 * cache and is always fused. On software adapters (lavapipe, where a dispatch's fixed cost is about 0.1 ms):
 * - gemv-rows runs the LayerNorm as its own dispatch. Its prologue needs workgroups of 256 (fewer repeats of the
 *   prologue), and the GEMV then runs as 4x fewer, larger workgroups that two cores balance worse; without it the
 *   GEMV reads the normalised row from storage, or for quantized weights through a uniform binding
 *   (linear-uniform-a.ts). Measured at OPT-2.7B's decode widths (`bench/gemv-weights.ts --storage-x`, 25
 *   interleaved rounds, CPU-time medians, LayerNorm dispatch included): q/k/v 2560 -> 7680 f16 13.4 -> 12.3 ms,
 *   q8 10.1 -> 8.6, q4 7.8 -> 6.9; fc1 2560 -> 10240 f16 17.8 -> 16.3, q8 13.3 -> 11.4, q4 10.0 -> 9.0.
 * - gemv-coop fuses only grids of a couple of dozen workgroups (measured at 1x2560->7680, f16 weights: 15
 *   workgroups cost no more than a LayerNorm dispatch, 60 cost 3 ms more).
 */
function lnPays(gpu: Gpu, variant: ResolvedVariant, workgroups: readonly number[]): boolean {
  if (!gpu.caps.isSoftware) return true;
  if (variant.kind === 'gemv-rows') return false;
  return workgroups.reduce((a, b) => a * b, 1) <= 24;
}

/**
 * A chunk of a problem: batches z0 .. z0+zc, rows m0 .. m0+mc of A and the output, columns n0 .. n0+nc, and
 * k0 .. k0+kc of the reduction (a [K, N] B too large to bind is cut along K; chunks after the first add their
 * partial product to the output in place, without bias or residual). k0/kc default to the whole of K.
 */
export interface GemmChunk {
  z0: number;
  zc: number;
  m0: number;
  mc: number;
  n0: number;
  nc: number;
  k0?: number;
  kc?: number;
}

/**
 * The bindings (a, b, c, bias, residual, then quantized B's scales, then the LayerNorm's weight and bias with `ln`) and the Params block of
 * linear_common for one chunk. Kernels outside the family that include linear_common (decode_attention) bind
 * their operands through it too. With `variant`, `aUniformVec4s` says whether (> 0) and over how many vec4s that
 * variant reads A's binding as a uniform buffer (linear-uniform-a.ts).
 */
export function chunkBindings(p: GemmProblem, ch: GemmChunk, variant?: ResolvedVariant): { buffers: Binding[]; uniforms: Uint32Array; aUniformVec4s: number } {
  const { z0, zc, m0, mc, n0, nc } = ch;
  const { len: bRowLen, unit: bUnit } = bRow(p);
  const k0 = ch.k0 ?? 0;
  const kc = ch.kc ?? p.K;
  const first = k0 === 0;
  const km = p.aLayout === 'km';
  const lda = km ? p.M : p.K;
  const aStart = z0 * p.aBatchStride + (km ? k0 * lda + m0 : m0 * lda + k0);
  const aB = bindRange(p.a, aStart, (zc - 1) * p.aBatchStride + (km ? (kc - 1) * lda + mc : (mc - 1) * lda + kc));
  const cCount = (zc - 1) * p.cBatchStride + mc * p.N;
  const cB = bindRange(p.out, z0 * p.cBatchStride + m0 * p.N, cCount);
  const rB = first && p.residual && !p.residualInPlace ? bindRange(p.residual, z0 * p.cBatchStride + m0 * p.N, cCount) : null;
  const bB =
    p.bLayout === 'nk'
      ? bindRange(p.b, z0 * p.bBatchStride + n0 * bRowLen, (zc - 1) * p.bBatchStride + nc * bRowLen)
      : bindRange(p.b, z0 * p.bBatchStride + k0 * bRowLen, (zc - 1) * p.bBatchStride + kc * bRowLen);
  // Quantized B's scales follow its rows: rows n0.. of an [N, K] B, rows k0.. of one read as [K, N].
  const sRow0 = p.bLayout === 'nk' ? n0 : k0;
  const sRows = p.bLayout === 'nk' ? nc : kc;
  const sB = p.scales ? bindRange(p.scales, sRow0 * p.scales.dim(1), sRows * p.scales.dim(1)) : null;
  const biasB = first && p.bias ? bindRange(p.bias, n0, nc) : null;
  const lnW = p.ln ? p.ln.weight.bind() : null;
  const lnB = p.ln ? p.ln.bias.bind() : null;
  const buffers = [
    aB.binding,
    bB.binding,
    cB.binding,
    biasB?.binding ?? aB.binding,
    rB?.binding ?? aB.binding,
    ...(sB ? [sB.binding] : []),
    ...(lnW && lnB ? [lnW.binding, lnB.binding] : []),
  ];
  const aUniformVec4s = variant ? uniformAVec4s(p.a.gpu, p, variant, aB) : 0;
  const u = uniforms()
    .u32(mc, nc, kc)
    // The output and residual bindings start at row m0; column chunks add n0 to their offsets.
    .u32(aB.elementOffset, bB.elementOffset * bUnit, cB.elementOffset + n0, biasB?.elementOffset ?? 0, rB ? rB.elementOffset + n0 : 0)
    .u32(p.aBatchStride, p.bBatchStride, p.cBatchStride, lda, bRowLen * bUnit, p.N)
    .f32(p.alpha)
    .u32(first ? epilogueFlags(p) : FLAG_RESIDUAL_INPLACE)
    .u32(lnW?.elementOffset ?? 0, lnB?.elementOffset ?? 0)
    .f32(p.ln?.eps ?? 0)
    .u32(sB?.elementOffset ?? 0)
    .build();
  return { buffers, uniforms: u, aUniformVec4s };
}
