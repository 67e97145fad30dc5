/** Optimizer kernels: the global gradient norm with torch's clip coefficient, and one AdamW step (wgsl/adamw.wgsl). */
import type { Gpu } from '../gpu/gpu.js';
import { uniforms } from '../gpu/uniforms.js';
import { Tensor } from '../tensor.js';
import { grid1d } from './grid.js';
import { newOutput } from './output.js';

const NORM_WG = 256;
const NORM_CHUNK = 256 * 32;

function checkF32(op: string, name: string, t: Tensor, gpu: Gpu): void {
  if (t.dtype !== 'f32') throw new TypeError(`${op}: ${name} must be f32, got ${t}`);
  if (t.gpu !== gpu) throw new Error(`${op}: ${name} lives on another device`);
  if (t.disposed) throw new Error(`${op}: ${name} was disposed`);
}

/**
 * The 2-norm of all `grads` together and torch's clip_grad_norm_ coefficient min(1, maxNorm / (norm + 1e-6)),
 * as a [2] f32 tensor (norm, coefficient) on the device; maxNorm <= 0 (or Infinity) means no clipping (coefficient 1).
 */
export function gradNorm(gpu: Gpu, grads: readonly Tensor[], maxNorm: number): Tensor {
  for (const g of grads) checkF32('gradNorm', 'a gradient', g, gpu);
  const counts = grads.map((g) => Math.ceil(g.size / NORM_CHUNK));
  const total = counts.reduce((a, b) => a + b, 0);
  const partials = Tensor.empty(gpu, [Math.max(1, total)]);
  try {
    const bp = partials.bind();
    let slot = 0;
    grads.forEach((g, i) => {
      if (g.size === 0) return;
      const bg = g.bind();
      gpu.dispatch({
        label: 'grad_norm(partial)',
        pipeline: gpu.pipeline('grad_norm', { PARTIAL: true, WG: NORM_WG, CHUNK: NORM_CHUNK }),
        uniforms: uniforms().u32(g.size, bg.elementOffset, bp.elementOffset + slot, 0).f32(0).u32(0, 0, 0).build(),
        buffers: [bg.binding, bp.binding],
        workgroups: [counts[i]!],
      });
      slot += counts[i]!;
    });
    const clip = Number.isFinite(maxNorm) && maxNorm > 0 ? maxNorm : 0;
    return newOutput(gpu, [2], 'f32', (out) => {
      const bo = out.bind();
      gpu.dispatch({
        label: 'grad_norm(finish)',
        pipeline: gpu.pipeline('grad_norm', { FINISH: true, WG: NORM_WG, CHUNK: NORM_CHUNK }),
        uniforms: uniforms().u32(slot, bp.elementOffset, 0, bo.elementOffset).f32(clip).u32(0, 0, 0).build(),
        buffers: [bp.binding, bo.binding],
        workgroups: [1],
      });
    });
  } finally {
    partials.dispose();
  }
}

export interface AdamWScalars {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** The step number after this step (1 for the first), for the bias corrections. */
  step: number;
}

/**
 * One AdamW step in place on `param`, `m` and `v` (f32, same size) from `grad` times the clip coefficient
 * `norm[1]` (gradNorm's output; pass a [2] tensor holding (0, 1) to skip clipping).
 */
export function adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, norm: Tensor, s: AdamWScalars): void {
  const gpu = param.gpu;
  for (const [name, t] of [['param', param], ['grad', grad], ['m', m], ['v', v], ['norm', norm]] as const) checkF32('adamwStep', name, t, gpu);
  for (const [name, t] of [['grad', grad], ['m', m], ['v', v]] as const) {
    if (t.size !== param.size) throw new RangeError(`adamwStep: ${name} ${t} must have the size of param ${param}`);
  }
  if (norm.size !== 2) throw new RangeError(`adamwStep: norm must be [2] (norm, coefficient), got ${norm}`);
  if (!Number.isInteger(s.step) || s.step < 1) throw new RangeError(`adamwStep: step must be a positive integer, got ${s.step}`);
  if (param.size === 0) return;
  // Python floats in torch's AdamW: computed in double, rounded to f32 where a kernel takes them.
  const bc1 = 1 - s.beta1 ** s.step;
  const bc2 = 1 - s.beta2 ** s.step;
  const [bp, bg, bm, bv, bn] = [param.bind(), grad.bind(), m.bind(), v.bind(), norm.bind()];
  const g = grid1d(gpu, param.size, 256);
  gpu.dispatch({
    label: 'adamw',
    pipeline: gpu.pipeline('adamw'),
    uniforms: uniforms()
      .u32(param.size, bp.elementOffset, bg.elementOffset, bm.elementOffset, bv.elementOffset, bn.elementOffset, g.rowStride)
      .f32(1 - s.lr * s.weightDecay, 1 - s.beta1, s.beta2, 1 - s.beta2, -(s.lr / bc1), Math.sqrt(bc2), s.eps)
      .u32(0, 0)
      .build(),
    buffers: [bp.binding, bg.binding, bm.binding, bv.binding, bn.binding],
    workgroups: g.workgroups,
  });
}
