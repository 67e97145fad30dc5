import type { Gpu } from '../gpu/gpu.js';
import { uniforms } from '../gpu/uniforms.js';
import type { Tensor } from '../tensor.js';
import { dtypeDefines } from './dtype.js';
import { grid1d } from './grid.js';
import { newOutput } from './output.js';

/** 'workgroup': a workgroup per row with tree reductions (GPUs); 'thread': an invocation per row (software adapters). */
export type LayerNormVariant = 'workgroup' | 'thread';

/**
 * LayerNorm over the last dim: LayerNorm(x + residual) when residual is given (BERT/Q-Former post-LN is
 * LN(dense(x) + input)); the sum is formed in f32 and not rounded to x's dtype first. Statistics in f32;
 * weight/bias f32 or f16; returns x's dtype.
 */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number, options: LayerNormOptions = {}): Tensor {
  return layerNormWith(defaultVariant(x.gpu), x, weight, bias, eps, options.residual, options.stats);
}

export interface LayerNormOptions {
  residual?: Tensor;
  /** Also writes each row's mean and 1/sqrt(var + eps) here ([rows, 2] f32): what layerNormBackward needs. */
  stats?: Tensor;
}

function defaultVariant(gpu: Gpu): LayerNormVariant {
  return gpu.caps.isSoftware ? 'thread' : 'workgroup';
}

/** `layerNorm` with an explicit kernel variant (tests run both on any adapter). */
export function layerNormWith(variant: LayerNormVariant, x: Tensor, weight: Tensor, bias: Tensor, eps: number, residual?: Tensor, stats?: Tensor): Tensor {
  for (const [role, t] of [['x', x], ['weight', weight], ['bias', bias], ['residual', residual]] as const) {
    if (t && t.dtype !== 'f32' && t.dtype !== 'f16') throw new TypeError(`layerNorm: ${role} must be f32 or f16, got ${t}`);
    if (t && t.gpu !== x.gpu) throw new Error(`layerNorm: ${role} lives on another device`);
  }
  if (x.ndim === 0) throw new RangeError(`layerNorm: x must have at least one dim, got ${x}`);
  const d = x.dim(-1);
  if (weight.size !== d || bias.size !== d) {
    throw new RangeError(`layerNorm: weight ${weight} and bias ${bias} must have ${d} elements (x is ${x})`);
  }
  if (residual && (residual.ndim !== x.ndim || residual.shape.some((s, i) => s !== x.shape[i]))) {
    throw new RangeError(`layerNorm: residual ${residual} must have x's shape ${x}`);
  }
  if (!Number.isFinite(eps) || eps < 0) throw new RangeError(`layerNorm: eps must be a finite number >= 0, got ${eps}`);
  if (stats) checkStats('layerNorm', stats, x);

  return newOutput(x.gpu, x.shape, x.dtype, (y) => record(variant, x, weight, bias, eps, residual, y, stats));
}

function checkStats(op: string, stats: Tensor, x: Tensor): void {
  const rows = x.size / x.dim(-1);
  if (stats.dtype !== 'f32' || stats.size !== 2 * rows) throw new RangeError(`${op}: stats must be f32 [${rows}, 2] (mean, rstd per row), got ${stats}`);
  if (stats.gpu !== x.gpu) throw new Error(`${op}: stats live on another device`);
}

function record(variant: LayerNormVariant, x: Tensor, weight: Tensor, bias: Tensor, eps: number, residual: Tensor | undefined, y: Tensor, stats?: Tensor): void {
  const gpu = x.gpu;
  const d = x.dim(-1);
  const rows = x.size / d;
  const bx = x.bind();
  const bw = weight.bind();
  const bb = bias.bind();
  const br = residual?.bind();
  const by = y.bind();
  const bs = stats?.bind();
  const defines = {
    X: x.dtype,
    R: residual?.dtype ?? 'f32',
    W: weight.dtype,
    BT: bias.dtype,
    Y: y.dtype,
    RESIDUAL: residual !== undefined,
    STATS: stats !== undefined,
    ...dtypeDefines(x.dtype, weight.dtype, bias.dtype, residual?.dtype ?? 'f32'),
  };
  const offsets = [rows, d, bx.elementOffset, br?.elementOffset ?? 0, bw.elementOffset, bb.elementOffset, by.elementOffset] as const;
  let workgroups: [number, number];
  let stride: number;
  let pipeline: GPUComputePipeline;
  if (variant === 'thread') {
    const g = grid1d(gpu, rows, 8);
    workgroups = g.workgroups;
    stride = g.rowStride;
    pipeline = gpu.pipeline('layernorm_thread', defines);
  } else {
    // Enough threads for about four elements each, 32 to 256.
    const wg = Math.min(256, Math.max(32, 2 ** Math.ceil(Math.log2(Math.ceil(d / 4)))));
    const g = grid1d(gpu, rows, 1);
    workgroups = g.workgroups;
    stride = g.workgroups[0];
    pipeline = gpu.pipeline('layernorm', { ...defines, WG: wg });
  }
  gpu.dispatch({
    label: `layernorm(${variant})`,
    pipeline,
    uniforms: uniforms().u32(...offsets).f32(eps).u32(stride, bs?.elementOffset ?? 0, 0, 0).build(),
    buffers: [bx.binding, bw.binding, bb.binding, ...(br ? [br.binding] : []), by.binding, ...(bs ? [bs.binding] : [])],
    workgroups,
  });
}

export interface LayerNormBackwardOptions {
  /** The forward's residual (h = x + residual): its gradient is the returned dx as well. */
  residual?: Tensor;
  /** Kernel variant for dx (tests force both); default by adapter class, as the forward. */
  variant?: LayerNormVariant;
}

function checkBackward(op: string, dy: Tensor, x: Tensor, stats: Tensor, residual: Tensor | undefined): void {
  for (const [role, t] of [['dy', dy], ['x', x], ['residual', residual]] as const) {
    if (t && t.dtype !== 'f32' && t.dtype !== 'f16') throw new TypeError(`${op}: ${role} must be f32 or f16, got ${t}`);
    if (t && t.gpu !== x.gpu) throw new Error(`${op}: ${role} lives on another device`);
    if (t && t.size !== x.size) throw new RangeError(`${op}: ${role} ${t} must have x's size (${x})`);
  }
  checkStats(op, stats, x);
}

/**
 * dx of LayerNorm(x [+ residual]) from dy and the statistics its forward saved: rstd * (g - mean(g) - xhat *
 * mean(g xhat)) with g = dy * weight, per row, f32 (torch's layer_norm_backward). Returns [x.shape] f32.
 */
export function layerNormBackward(dy: Tensor, x: Tensor, weight: Tensor, stats: Tensor, options: LayerNormBackwardOptions = {}): Tensor {
  checkBackward('layerNormBackward', dy, x, stats, options.residual);
  const d = x.dim(-1);
  if (weight.size !== d) throw new RangeError(`layerNormBackward: weight ${weight} must have ${d} elements`);
  const variant = options.variant ?? defaultVariant(x.gpu);
  return newOutput(x.gpu, x.shape, 'f32', (dx) => {
    const gpu = x.gpu;
    const rows = x.size / d;
    const thread = variant === 'thread';
    const wg = thread ? 8 : Math.min(256, Math.max(32, 2 ** Math.ceil(Math.log2(Math.ceil(d / 4)))));
    const g = grid1d(gpu, rows, thread ? 8 : 1);
    const [bx, bs, bg, bw, bo] = [x.bind(), stats.bind(), dy.bind(), weight.bind(), dx.bind()];
    const br = options.residual?.bind();
    gpu.dispatch({
      label: `layernorm_backward(${variant})`,
      pipeline: gpu.pipeline('layernorm_backward', backwardDefines(x, dy, options.residual, { W: weight.dtype, THREAD: thread, WG: wg, PARAMS: false })),
      uniforms: uniforms()
        .u32(rows, d, bx.elementOffset, br?.elementOffset ?? 0, bw.elementOffset, bs.elementOffset, bg.elementOffset, bo.elementOffset, 0)
        .u32(thread ? g.rowStride : g.workgroups[0], 0, 0)
        .build(),
      buffers: [bx.binding, bs.binding, bg.binding, bw.binding, bo.binding, ...(br ? [br.binding] : [])],
      workgroups: g.workgroups,
    });
  });
}

/** Adds LayerNorm's weight and bias gradients (sum over rows of dy * xhat, and of dy) to dw and db ([d] f32). */
export function layerNormParamsBackward(dy: Tensor, x: Tensor, stats: Tensor, dw: Tensor, db: Tensor, options: { residual?: Tensor } = {}): void {
  checkBackward('layerNormParamsBackward', dy, x, stats, options.residual);
  const d = x.dim(-1);
  for (const [role, t] of [['dw', dw], ['db', db]] as const) {
    if (t.dtype !== 'f32' || t.size !== d) throw new RangeError(`layerNormParamsBackward: ${role} must be f32 [${d}], got ${t}`);
  }
  if (dw.buffer === db.buffer) throw new Error('layerNormParamsBackward: dw and db must not share storage');
  const gpu = x.gpu;
  const [bx, bs, bg, bw, bb] = [x.bind(), stats.bind(), dy.bind(), dw.bind(), db.bind()];
  const br = options.residual?.bind();
  gpu.dispatch({
    label: 'layernorm_backward(params)',
    pipeline: gpu.pipeline('layernorm_backward', backwardDefines(x, dy, options.residual, { PARAMS: true })),
    uniforms: uniforms()
      .u32(x.size / d, d, bx.elementOffset, br?.elementOffset ?? 0, 0, bs.elementOffset, bg.elementOffset, bw.elementOffset, bb.elementOffset)
      .u32(0, 0, 0)
      .build(),
    buffers: [bx.binding, bs.binding, bg.binding, bw.binding, bb.binding, ...(br ? [br.binding] : [])],
    workgroups: [Math.ceil(d / 64)],
  });
}

function backwardDefines(x: Tensor, dy: Tensor, residual: Tensor | undefined, extra: Record<string, string | number | boolean>): Record<string, string | number | boolean> {
  return {
    X: x.dtype,
    R: residual?.dtype ?? 'f32',
    G: dy.dtype,
    W: 'f32',
    RESIDUAL: residual !== undefined,
    ...extra,
    ...dtypeDefines(x.dtype, dy.dtype, residual?.dtype ?? 'f32', (extra.W as 'f32' | 'f16' | undefined) ?? 'f32'),
  };
}
