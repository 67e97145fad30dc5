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
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number, options: { residual?: Tensor } = {}): Tensor {
  return layerNormWith(defaultVariant(x.gpu), x, weight, bias, eps, options.residual);
}

function defaultVariant(gpu: Gpu): LayerNormVariant {
  return gpu.caps.isSoftware ? 'thread' : 'workgroup';
}

/** `layerNorm` with an explicit kernel variant (tests run both on any adapter). */
export function layerNormWith(variant: LayerNormVariant, x: Tensor, weight: Tensor, bias: Tensor, eps: number, residual?: Tensor): Tensor {
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

  return newOutput(x.gpu, x.shape, x.dtype, (y) => record(variant, x, weight, bias, eps, residual, y));
}

function record(variant: LayerNormVariant, x: Tensor, weight: Tensor, bias: Tensor, eps: number, residual: Tensor | undefined, y: Tensor): void {
  const gpu = x.gpu;
  const d = x.dim(-1);
  const rows = x.size / d;
  const bx = x.bind();
  const bw = weight.bind();
  const bb = bias.bind();
  const br = residual?.bind();
  const by = y.bind();
  const defines = {
    X: x.dtype,
    R: residual?.dtype ?? 'f32',
    W: weight.dtype,
    BT: bias.dtype,
    Y: y.dtype,
    RESIDUAL: residual !== undefined,
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
    uniforms: uniforms().u32(...offsets).f32(eps).u32(stride, 0, 0, 0).build(),
    buffers: [bx.binding, bw.binding, bb.binding, ...(br ? [br.binding] : []), by.binding],
    workgroups,
  });
}
