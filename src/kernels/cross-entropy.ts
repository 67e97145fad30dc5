/**
 * Softmax cross-entropy with integer targets (wgsl/cross_entropy.wgsl), torch's F.cross_entropy with
 * reduction 'mean' and an ignore index, forward and backward: the language-modelling loss of BLIP-2's
 * fine-tuning (shiftLabels makes HF's targets from `labels`).
 */
import type { Gpu } from '../gpu/gpu.js';
import { uniforms } from '../gpu/uniforms.js';
import { Tensor } from '../tensor.js';
import { dtypeDefines } from './dtype.js';
import { grid1d } from './grid.js';
import { newOutput } from './output.js';

export const IGNORE_INDEX = -100;

export interface CrossEntropyOutput {
  /** The mean loss over counted rows, [1] f32. */
  loss: Tensor;
  /** Per row: log-sum-exp of its logits and its loss (0 when ignored), [rows, 2] f32; the backward pass reads it. */
  stats: Tensor;
  /** Rows whose target is not ignored. */
  count: number;
}

function rowsOf(logits: Tensor): number {
  return logits.size / logits.dim(-1);
}

function workgroup(gpu: Gpu): number {
  return gpu.caps.isSoftware ? 8 : 256;
}

/**
 * HF's causal-LM targets: each position predicts the next token's label, the last predicts nothing
 * (labels shifted left, padded with the ignore index), flattened row after row.
 */
export function shiftLabels(labels: readonly (readonly number[])[], ignoreIndex = IGNORE_INDEX): Int32Array {
  const L = labels[0]?.length ?? 0;
  const out = new Int32Array(labels.length * L);
  labels.forEach((row, b) => {
    if (row.length !== L) throw new RangeError('labels rows differ in length');
    for (let t = 0; t < L; t++) out[b * L + t] = t + 1 < L ? row[t + 1]! : ignoreIndex;
  });
  return out;
}

/**
 * Mean cross-entropy of logits [..., V] (f32 or f16) against targets (i32, one per row; `ignoreIndex` skips a
 * row). `targetsHost` are the same targets on the host: they are checked against the vocabulary and counted
 * there, which the mean needs and which must not wait for the device.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, targetsHost: Int32Array, ignoreIndex = IGNORE_INDEX): CrossEntropyOutput {
  if (logits.dtype !== 'f32' && logits.dtype !== 'f16') throw new TypeError(`crossEntropy: logits must be f32 or f16, got ${logits}`);
  if (targets.dtype !== 'i32') throw new TypeError(`crossEntropy: targets must be i32, got ${targets}`);
  const V = logits.dim(-1);
  const rows = rowsOf(logits);
  if (targets.size !== rows || targetsHost.length !== rows) throw new RangeError(`crossEntropy: ${rows} rows of logits but ${targets.size} targets`);
  let count = 0;
  for (const t of targetsHost) {
    if (t === ignoreIndex) continue;
    if (!Number.isInteger(t) || t < 0 || t >= V) throw new RangeError(`crossEntropy: target ${t} outside the vocabulary (${V}) and not the ignore index ${ignoreIndex}`);
    count++;
  }
  if (count === 0) throw new RangeError('crossEntropy: every target is ignored, so the mean loss is undefined (torch returns NaN)');
  const gpu = logits.gpu;
  const stats = Tensor.empty(gpu, [rows, 2]);
  try {
    const wg = workgroup(gpu);
    const [bx, bt, ba] = [logits.bind(), targets.bind(), stats.bind()];
    const g = grid1d(gpu, rows, 1);
    gpu.dispatch({
      label: 'cross_entropy(rows)',
      pipeline: gpu.pipeline('cross_entropy', { T: logits.dtype, WG: wg, ROWS: true, ...dtypeDefines(logits.dtype) }),
      uniforms: params(rows, V, bx.elementOffset, bt.elementOffset, ba.elementOffset, 0, 0, ignoreIndex, 1 / count, g.workgroups[0]),
      buffers: [bx.binding, bt.binding, ba.binding],
      workgroups: g.workgroups,
    });
    const loss = newOutput(gpu, [1], 'f32', (out) => {
      const bo = out.bind();
      gpu.dispatch({
        label: 'cross_entropy(mean)',
        pipeline: gpu.pipeline('cross_entropy', { T: 'f32', WG: 64, MEAN: true }),
        uniforms: params(rows, V, 0, 0, ba.elementOffset, bo.elementOffset, 0, ignoreIndex, 1 / count, 0),
        buffers: [ba.binding, bo.binding],
        workgroups: [1],
      });
    });
    return { loss, stats, count };
  } catch (e) {
    stats.dispose();
    throw e;
  }
}

/** dLogits [..., V] f32 of crossEntropy given the loss's gradient `grad` ([1] f32 on the device). */
export function crossEntropyBackward(logits: Tensor, targets: Tensor, out: CrossEntropyOutput, grad: Tensor, ignoreIndex = IGNORE_INDEX): Tensor {
  if (grad.dtype !== 'f32' || grad.size !== 1) throw new RangeError(`crossEntropyBackward: grad must be one f32, got ${grad}`);
  const V = logits.dim(-1);
  const rows = rowsOf(logits);
  const gpu = logits.gpu;
  return newOutput(gpu, logits.shape, 'f32', (dx) => {
    const [bx, bt, ba, bg, bd] = [logits.bind(), targets.bind(), out.stats.bind(), grad.bind(), dx.bind()];
    const g = grid1d(gpu, rows * V, 256);
    gpu.dispatch({
      label: 'cross_entropy(backward)',
      pipeline: gpu.pipeline('cross_entropy', { T: logits.dtype, WG: 256, BACKWARD: true, ...dtypeDefines(logits.dtype) }),
      uniforms: params(rows, V, bx.elementOffset, bt.elementOffset, ba.elementOffset, bd.elementOffset, bg.elementOffset, ignoreIndex, 1 / out.count, g.rowStride),
      buffers: [bx.binding, bt.binding, ba.binding, bg.binding, bd.binding],
      workgroups: g.workgroups,
    });
  });
}

function params(rows: number, V: number, x: number, t: number, aux: number, o: number, g: number, ignore: number, invCount: number, stride: number): Uint32Array {
  return uniforms().u32(rows, V, x, t, aux, o, g).i32(ignore).f32(invCount).u32(stride, 0, 0).build();
}
