import type { Binding } from '../gpu/gpu.js';
import type { Weight } from '../quant/quantized-tensor.js';
import { Tensor, type DType } from '../tensor.js';
import { chunkBindings } from './linear-core.js';
import type { GemmProblem, LayerNormPrologue } from './linear-problem.js';
import { resolveVariant, variantDefines, vecAligned, wideAligned } from './linear-variants.js';
import { linear, weightOperand } from './linear.js';
import { newOutput } from './output.js';

/**
 * 'fused': LayerNorm + the head's q/k/v rows of the projection + attention in one dispatch (software adapters, float weights);
 * 'separate': the projection as a linear (with its LayerNorm prologue), then the attention kernel (GPUs).
 */
export type DecodeAttentionKernel = 'fused' | 'separate';

export interface DecodeAttentionArgs {
  /** The decode state buffer (i32 words, header and per-row arrays of wgsl/decode_common.wgsl). */
  state: Tensor;
  /** Hidden states of the step, [R, D] f32. */
  x: Tensor;
  /** The fused [k; v; q] projection, [3D, D] (float or quantized), and its bias [3D] (or null). */
  weight: Weight;
  bias: Tensor | null;
  /** A LayerNorm applied to x first (pre-LN models), or null. */
  ln: LayerNormPrologue | null;
  /** The layer's cache, [R, C, 3D]: rows [key | value | query]; the step's key and value are appended at row len. */
  cache: Tensor;
  heads: number;
  headDim: number;
  kernel?: DecodeAttentionKernel;
  /** fused: share each step's x values across 8-lane subgroups (default: where the device allows; tests force both). */
  laneSharing?: boolean;
  /** Merge the key splits with subgroup operations (default: where the device has subgroups) or through workgroup memory. */
  subgroupMerge?: boolean;
}

/** Output dims merged per round of the workgroup reduction. */
const MERGE_DIMS = 16;
/** Invocations per head in the attention. */
const GS = 64;
/**
 * Workgroups per row the fused kernel aims at: each repeats the LayerNorm prologue, so fewer is cheaper, but
 * lavapipe runs a workgroup on one of its 16 threads (8 per core), and 8 workgroups of 4 heads left the second core
 * idle part of the time in A/B runs at the full size (OPT-2.7B: 16 workgroups of 2 heads).
 */
const FUSED_WORKGROUPS_PER_ROW = 16;

/**
 * One decode step's self-attention for every row: the projection of x, the new key and value appended to the
 * cache at each row's length (read from the state buffer), softmax(q K^T * scale + mask) V over the row's
 * len + 1 keys. Returns [R, D] f32. Every parameter that changes between steps is read from `state`, so the
 * dispatches can be captured once and replayed (src/gpu/program.ts).
 */
export function decodeAttention(args: DecodeAttentionArgs): Tensor {
  const { x, cache, heads, headDim } = args;
  const gpu = x.gpu;
  if (x.ndim !== 2 || x.dtype !== 'f32') throw new TypeError(`decodeAttention: x must be f32 [R, D], got ${x}`);
  const [R, D] = x.shape as [number, number];
  if (heads * headDim !== D) throw new RangeError(`decodeAttention: ${heads} heads of ${headDim} do not make D = ${D}`);
  if (cache.ndim !== 3 || cache.dim(0) !== R || cache.dim(2) !== 3 * D) throw new RangeError(`decodeAttention: cache must be [${R}, C, ${3 * D}], got ${cache}`);
  if (args.weight.ndim !== 2 || args.weight.dim(0) !== 3 * D || args.weight.dim(1) !== D) throw new RangeError(`decodeAttention: weight must be [${3 * D}, ${D}], got ${args.weight}`);
  for (const t of [args.state, cache]) if (t.bind().elementOffset !== 0) throw new RangeError(`decodeAttention: ${t} must start at its binding`);
  if (args.state.dtype !== 'i32') throw new TypeError(`decodeAttention: state must be i32 words, got ${args.state}`);
  const kernel = args.kernel ?? (gpu.caps.isSoftware && !quantizedWeight(args) && fusedPossible(args) ? 'fused' : 'separate');
  if (kernel === 'fused' && !fusedPossible(args)) throw new Error('decodeAttention: the fused kernel does not fit this device (bindings or workgroup memory); use separate');
  return newOutput(gpu, [R, D], 'f32', (out) => (kernel === 'fused' ? recordFused(args, out) : recordSeparate(args, out)));
}

/**
 * Quantized q/k/v weights take the separate path by default (a LayerNorm-prologue GEMV, then the attention), though
 * the fused kernel runs them too, with the same group steps as gemv_rows. Measured at OPT-2.7B's widths on lavapipe
 * (bench/decode-kernels.ts --weights q4|q8, minima over 8 interleaved rounds of 3 calls, CPU / wall ms per call):
 * q4 fused 9.0 / 7.2, separate 8.1 / 4.6; q8 fused 11.0 / 6.5, separate 8.6 / 4.7. (Fused with every code decoded
 * through ld_b8 instead of group steps: q4 21.7, q8 25.2 ms CPU.)
 */
function quantizedWeight(args: DecodeAttentionArgs): boolean {
  return weightOperand(args.weight).scales !== null;
}

/** How a dispatch is laid out: heads per workgroup, invocations, and the merge. */
interface Layout {
  hpw: number;
  wg: number;
  sg: boolean;
  /** The most subgroups a workgroup can have (subgroup merge). */
  nsg: number;
}

/**
 * The subgroup merge wherever the device has subgroups (no larger than a head's 64 invocations). The fused kernel
 * takes several heads per workgroup (FUSED_WORKGROUPS_PER_ROW); the merge through workgroup memory handles one head
 * per workgroup.
 */
function layout(args: DecodeAttentionArgs, fused: boolean): Layout {
  const caps = args.x.gpu.caps;
  const sgPossible = caps.subgroups && caps.subgroupMaxSize <= GS && caps.subgroupMinSize >= 4;
  const sg = args.subgroupMerge ?? sgPossible;
  if (sg && !sgPossible) throw new Error('decodeAttention: a subgroup merge needs subgroups of 4 to 64 invocations');
  let hpw = 1;
  if (fused && sg) while (args.heads % (hpw * 2) === 0 && args.heads / (hpw * 2) >= FUSED_WORKGROUPS_PER_ROW) hpw *= 2;
  const wg = GS * hpw;
  return { hpw, wg, sg, nsg: sg ? wg / Math.max(4, caps.subgroupMinSize) : 0 };
}

function attentionDefines(args: DecodeAttentionArgs, l: Layout): Record<string, string | number | boolean> {
  const kt = args.cache.dtype;
  // Whole vec4s of the cache: head_dim and D multiples of 4 (row starts and head columns then are too).
  const vec4 = args.headDim % 4 === 0 && args.x.dim(1) % 4 === 0;
  return { KT: kt, VEC4: vec4, HD: args.headDim, HPW: l.hpw, CH: Math.min(MERGE_DIMS, args.headDim), WG: l.wg, F16: kt === 'f16', SG_MERGE: l.sg, NSG: l.nsg, SUBGROUPS: l.sg };
}

/** Bytes of workgroup memory the attention part keeps (new tokens, partials, merge buffers). */
function attentionWorkgroupBytes(args: DecodeAttentionArgs, l: Layout): number {
  const hd = args.headDim;
  return (3 * hd * l.hpw + (l.sg ? l.nsg * (hd + 2) : l.wg + l.wg * Math.min(MERGE_DIMS, hd))) * 4;
}

function recordSeparate(args: DecodeAttentionArgs, out: Tensor): void {
  const { x, cache, heads } = args;
  const gpu = x.gpu;
  const l = layout(args, false);
  const qkv = linear(x, args.weight, args.bias, args.ln ? { layerNorm: args.ln } : {});
  try {
    gpu.dispatch({
      label: 'decode_attention',
      pipeline: gpu.pipeline('decode_attention', { ...attentionDefines(args, l), FUSED: false }),
      buffers: [args.state.bind().binding, qkv.bind().binding, cache.bind().binding, out.bind().binding],
      workgroups: [heads, x.dim(0), 1],
    });
  } finally {
    qkv.dispose();
  }
}

/** The projection as a linear_common problem: rows of x as batches (one row of A each), all 3D outputs. */
function projectionProblem(args: DecodeAttentionArgs, out: Tensor): GemmProblem {
  const [R, D] = args.x.shape as [number, number];
  return {
    a: args.x,
    ...weightOperand(args.weight),
    out,
    bLayout: 'nk',
    batch: R,
    M: 1,
    N: 3 * D,
    K: D,
    aBatchStride: D,
    bBatchStride: 0,
    cBatchStride: D,
    alpha: 1,
    bias: args.bias,
    activation: 'none',
    residual: null,
    residualInPlace: false,
    ln: args.ln,
  };
}

function fusedPossible(args: DecodeAttentionArgs): boolean {
  const gpu = args.x.gpu;
  const caps = gpu.caps;
  const D = args.x.dim(1);
  const storage = 5 + (quantizedWeight(args) ? 1 : 0) + (args.ln ? 2 : 0) + 2; // a, b, c, bias, (scales), (LayerNorm), state, cache
  if (storage > caps.maxStorageBuffersPerShaderStage) return false;
  if (args.ln && args.ln.weight.dtype === 'f16' && !caps.f16) return false;
  if (args.bias && args.bias.dtype !== 'f32') return false;
  const l = layout(args, true);
  const lnBytes = args.ln ? (Math.ceil(D / 512) * 512 + l.wg + 2) * 4 : 0;
  return lnBytes + attentionWorkgroupBytes(args, l) <= caps.maxComputeWorkgroupStorageSize;
}

function recordFused(args: DecodeAttentionArgs, out: Tensor): void {
  const gpu = args.x.gpu;
  const R = args.x.dim(0);
  const p = projectionProblem(args, out);
  const v = resolveVariant(gpu, p, { kind: 'gemv-rows', subgroups: args.laneSharing }, vecAligned(p, p.a.offset, p.b.offset), wideAligned(p, p.b.offset));
  const common = variantDefines(gpu, p, v, 1);
  delete common.ROWS;
  // Quantized rows take gemv_rows' group steps (QGROUPS) one row at a time: no row unrolling or scale pairs here.
  for (const name of ['QPAIRS', 'QR2', 'QR4']) delete common[name];
  const firstFree = 6 + (p.scales ? 1 : 0) + (args.ln ? 2 : 0);
  const l = layout(args, true);
  const attn = attentionDefines(args, l);
  const defines = {
    ...common,
    ...attn,
    F16: common.F16 === true || args.cache.dtype === 'f16',
    SUBGROUPS: common.SUBGROUPS === true || attn.SUBGROUPS === true,
    FUSED: true,
    RP: Math.ceil((3 * args.headDim * l.hpw) / l.wg),
    ST_BINDING: firstFree,
    CACHE_BINDING: firstFree + 1,
  };
  const { buffers, uniforms } = chunkBindings(p, { z0: 0, zc: R, m0: 0, mc: 1, n0: 0, nc: p.N });
  const bound: (Binding | null)[] = [...buffers];
  bound[4] = null; // linear_common's residual: unused here
  bound.push(args.state.bind().binding, args.cache.bind().binding);
  gpu.dispatch({
    label: `decode_attention:fused${args.ln ? '+ln' : ''}`,
    pipeline: gpu.pipeline('decode_attention', defines),
    uniforms,
    buffers: bound,
    workgroups: [args.heads / l.hpw, R, 1],
  });
}
