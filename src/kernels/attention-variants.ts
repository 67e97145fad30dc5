import type { Binding, Gpu } from '../gpu/gpu.js';
import { uniforms } from '../gpu/uniforms.js';
import { Tensor, type DType } from '../tensor.js';
import { bindAttention, operandDefines, type AttentionKernel, type AttentionPlan, type BoundAttention } from './attention-plan.js';
import { grid1d } from './grid.js';

/** Threads that share one query row in the tiled kernel (scores: keys; output: dims). */
const TILED_THREADS_PER_ROW = 8;
/** Keys per block, and threads, of the GPU split-KV kernel. */
const DECODE_WG = 64;
const COMBINE_WG = 32;
/** Queries up to which the GPU takes the split-KV kernel: beyond, the tiled kernel reuses K/V tiles across queries. */
const DECODE_MAX_QUERIES = 4;

const roundUp = (x: number, m: number): number => Math.ceil(x / m) * m;

/** The kernel a plan runs with by default: by adapter class, number of queries and alignment. */
export function chooseAttentionKernel(plan: AttentionPlan): AttentionKernel {
  // Only the one-pass kernels save the log-sum-exp (training).
  const fewQueries = plan.lq <= DECODE_MAX_QUERIES && !plan.lse;
  if (plan.gpu.caps.isSoftware) {
    if (fewQueries) return plan.kvLength >= 512 ? 'rows-split' : 'rows';
    // Lanes past lq repeat the last query: below a subgroup's worth of queries they would mostly idle.
    return plan.lq >= LANES && lanesPossible(plan, bindAttention(plan)) ? 'lanes' : 'rows';
  }
  return fewQueries ? 'split' : 'tiled';
}

/** Subgroup lanes of the `lanes` kernel (its broadcasts are unrolled for exactly 8). */
const LANES = 8;
const LANES_WG = 32;

function lanesPossible(plan: AttentionPlan, b: BoundAttention): boolean {
  const c = plan.gpu.caps;
  return c.subgroups && c.subgroupMinSize === LANES && c.subgroupMaxSize === LANES && vec4Aligned(plan, b);
}

/**
 * Keys per split: enough splits that batch x queries x heads x splits fills the device (about 64
 * invocations for a CPU rasteriser's few cores, 512 workgroups for a GPU), in whole blocks of 64 keys.
 */
export function splitChunk(plan: AttentionPlan, forced: number | undefined): number {
  if (forced !== undefined) {
    if (!Number.isInteger(forced) || forced < 1) throw new RangeError(`attention: splitChunk must be a positive integer, got ${forced}`);
    return forced;
  }
  const target = plan.gpu.caps.isSoftware ? 64 : 512;
  const wantedSplits = Math.max(1, Math.ceil(target / (plan.batch * plan.lq * plan.heads)));
  return Math.max(64, roundUp(Math.ceil(plan.kvLength / wantedSplits), 64));
}

interface Launch {
  chunk: number;
  splits: number;
  gridStride: number;
  outOffset: number;
}

/** The Params block of attention_common (attention_rows, flash_attention, attention_decode, attention_probs). */
function attentionUniforms(plan: AttentionPlan, b: BoundAttention, launch: Launch): Uint32Array {
  const { q, k, v } = plan;
  return uniforms()
    .u32(plan.batch, plan.lq, plan.kvLength, plan.heads, plan.headDim, plan.causal ? 1 : 0)
    .f32(plan.scale)
    .u32(launch.chunk, launch.splits, launch.gridStride)
    .u32(b.q.elementOffset + q.column, q.rowStride, q.length * q.rowStride)
    .u32(b.k.elementOffset + k.column, k.rowStride, k.length * k.rowStride)
    .u32(b.v && v ? b.v.elementOffset + v.column : 0, v?.rowStride ?? 0, v ? v.length * v.rowStride : 0)
    .u32(b.mask?.elementOffset ?? 0, plan.mask?.batchStride ?? 0, launch.outOffset)
    .u32(b.lse?.elementOffset ?? 0, 0, 0, 0)
    .build();
}

function storageBindings(b: BoundAttention, out: Tensor): Binding[] {
  const list = [b.q.binding, b.k.binding];
  if (b.v) list.push(b.v.binding);
  if (b.mask) list.push(b.mask.binding);
  return [...list, out.bind().binding, ...(b.lse ? [b.lse.binding] : [])];
}

/** Runs the fused attention of `plan` with `kernel`, into `out` ([B, Lq, heads*headDim]). */
export function runAttention(plan: AttentionPlan, kernel: AttentionKernel, out: Tensor, forcedChunk: number | undefined): void {
  switch (kernel) {
    case 'rows':
      return runRows(plan, out, null);
    case 'tiled':
      return runTiled(plan, out);
    case 'rows-split':
    case 'split':
      if (plan.lse) throw new Error(`attention: the ${kernel} kernel does not save the log-sum-exp; use rows, lanes or tiled`);
      return runSplit(plan, kernel, out, splitChunk(plan, forcedChunk));
    case 'lanes':
      return runLanes(plan, out);
    default:
      throw new RangeError(`attention: unknown kernel '${String(kernel)}' (rows, rows-split, lanes, tiled or split)`);
  }
}

/** Whether every q/k/v offset, row stride and head_dim is a multiple of 4 elements (vec4 loads). */
function vec4Aligned(plan: AttentionPlan, b: BoundAttention): boolean {
  const values = [plan.headDim, b.q.elementOffset + plan.q.column, plan.q.rowStride, b.k.elementOffset + plan.k.column, plan.k.rowStride];
  if (plan.v && b.v) values.push(b.v.elementOffset + plan.v.column, plan.v.rowStride);
  return values.every((x) => x % 4 === 0);
}

function runRows(plan: AttentionPlan, out: Tensor, split: { chunk: number; splits: number } | null): void {
  const gpu = plan.gpu;
  const wg = gpu.caps.isSoftware ? 32 : 64;
  const b = bindAttention(plan);
  const g = grid1d(gpu, plan.batch * plan.lq * plan.heads * (split?.splits ?? 1), wg);
  const defines = { ...operandDefines(plan), OT: out.dtype, DP: roundUp(plan.headDim, 8), WG: wg, SPLIT: split !== null, VEC4: vec4Aligned(plan, b) };
  const o = out.bind();
  gpu.dispatch({
    label: 'attention_rows',
    pipeline: gpu.pipeline('attention_rows', defines),
    uniforms: attentionUniforms(plan, b, { chunk: split?.chunk ?? plan.kvLength, splits: split?.splits ?? 1, gridStride: g.rowStride, outOffset: o.elementOffset }),
    buffers: storageBindings(b, out),
    workgroups: g.workgroups,
  });
}

function runLanes(plan: AttentionPlan, out: Tensor): void {
  const b = bindAttention(plan);
  if (!lanesPossible(plan, b)) {
    throw new Error('attention: the lanes kernel needs subgroups of exactly 8 lanes and q/k/v offsets, row strides and head_dim that are multiples of 4');
  }
  const defines = { ...operandDefines(plan), OT: out.dtype, VEC4: true, WG: LANES_WG, NC: Math.ceil(plan.headDim / (4 * LANES)), SUBGROUPS: true };
  dispatchPerQueryBlock(plan, b, out, 'attention_lanes', defines, LANES_WG);
}

/** One pass over all keys, a workgroup per block of `queriesPerWorkgroup` queries of one head (lanes, tiled). */
function dispatchPerQueryBlock(plan: AttentionPlan, b: BoundAttention, out: Tensor, shader: string, defines: Record<string, string | number | boolean>, queriesPerWorkgroup: number): void {
  const o = out.bind();
  plan.gpu.dispatch({
    label: shader,
    pipeline: plan.gpu.pipeline(shader, defines),
    uniforms: attentionUniforms(plan, b, { chunk: plan.kvLength, splits: 1, gridStride: 0, outOffset: o.elementOffset }),
    buffers: storageBindings(b, out),
    workgroups: [Math.ceil(plan.lq / queriesPerWorkgroup), plan.heads, plan.batch],
  });
}

/** Workgroup tile sizes (queries, keys) that fit the device's workgroup memory, largest first. */
function tiledTiles(gpu: Gpu, dp: number, kBytes: number, vBytes: number): { bq: number; bk: number } {
  for (const [bq, bk] of [[16, 32], [16, 16], [8, 16], [8, 8]] as const) {
    const bytes = bq * (dp + 1) * 4 + bk * (dp + 1) * kBytes + bk * dp * vBytes + bq * (bk + 1) * 4;
    if (bytes <= gpu.caps.maxComputeWorkgroupStorageSize) return { bq, bk };
  }
  throw new RangeError(`attention: head_dim ${dp} does not fit this device's workgroup memory; use the 'rows' kernel`);
}

function runTiled(plan: AttentionPlan, out: Tensor): void {
  const gpu = plan.gpu;
  const dp = roundUp(plan.headDim, TILED_THREADS_PER_ROW);
  const elementBytes = (t: DType): number => (t === 'f16' ? 2 : 4);
  const { bq, bk } = tiledTiles(gpu, dp, elementBytes(plan.k.tensor.dtype), elementBytes(plan.v!.tensor.dtype));
  const defines = { ...operandDefines(plan), OT: out.dtype, DP: dp, BQ: bq, BK: bk, TPR: TILED_THREADS_PER_ROW };
  dispatchPerQueryBlock(plan, bindAttention(plan), out, 'flash_attention', defines, bq);
}

function runSplit(plan: AttentionPlan, kernel: 'rows-split' | 'split', out: Tensor, chunk: number): void {
  const gpu = plan.gpu;
  const splits = Math.ceil(plan.kvLength / chunk);
  const rowHeads = plan.batch * plan.lq * plan.heads;
  const part = Tensor.empty(gpu, [rowHeads * splits * (plan.headDim + 2)], 'f32');
  try {
    if (kernel === 'rows-split') {
      runRows(plan, part, { chunk, splits });
    } else {
      const b = bindAttention(plan);
      const p = part.bind();
      const defines = { ...operandDefines(plan), OT: part.dtype, DP: roundUp(plan.headDim, DECODE_WG), WG: DECODE_WG };
      gpu.dispatch({
        label: 'attention_decode',
        pipeline: gpu.pipeline('attention_decode', defines),
        uniforms: attentionUniforms(plan, b, { chunk, splits, gridStride: 0, outOffset: p.elementOffset }),
        buffers: storageBindings(b, part),
        workgroups: [splits, plan.heads, plan.batch * plan.lq],
      });
    }
    combine(gpu, part, rowHeads, splits, plan.headDim, out);
  } finally {
    // Safe while the dispatches above are still pending: a pooled buffer is only rewritten after them.
    part.dispose();
  }
}

function combine(gpu: Gpu, part: Tensor, rowHeads: number, splits: number, headDim: number, out: Tensor): void {
  const g = grid1d(gpu, rowHeads, 1);
  const p = part.bind();
  const o = out.bind();
  if (p.elementOffset !== 0) throw new Error('attention: split partials must start at their binding');
  gpu.dispatch({
    label: 'attention_combine',
    pipeline: gpu.pipeline('attention_combine', { OT: out.dtype, WG: COMBINE_WG, F16: out.dtype === 'f16' }),
    uniforms: uniforms().u32(rowHeads, splits, headDim, o.elementOffset, g.rowStride).build(),
    buffers: [p.binding, o.binding],
    workgroups: g.workgroups,
  });
}

/** Writes the probabilities of `plan` (no v) into `out` ([B, heads, Lq, kvLength] f32). */
export function runAttentionProbs(plan: AttentionPlan, out: Tensor): void {
  const gpu = plan.gpu;
  const wg = gpu.caps.isSoftware ? 16 : 64;
  const g = grid1d(gpu, plan.batch * plan.heads * plan.lq, 1);
  const b = bindAttention(plan);
  const o = out.bind();
  gpu.dispatch({
    label: 'attention_probs',
    pipeline: gpu.pipeline('attention_probs', { ...operandDefines(plan), OT: out.dtype, DP: roundUp(plan.headDim, 8), WG: wg }),
    uniforms: attentionUniforms(plan, b, { chunk: plan.kvLength, splits: 1, gridStride: g.rowStride, outOffset: o.elementOffset }),
    buffers: storageBindings(b, out),
    workgroups: g.workgroups,
  });
}
