import { uniforms } from '../gpu/uniforms.js';
import type { DType, Tensor } from '../tensor.js';
import { grid1d } from './grid.js';
import { newOutput } from './output.js';

/**
 * Conventions shared with attention: the statistics run in f32 over values clamped at -3e38, so
 * -Infinity (or float32's lowest value) means "masked": a fully masked row comes out uniform, not NaN,
 * and log-softmax keeps -Infinity for -Infinity inputs.
 */

export interface SoftmaxOptions {
  /**
   * Additive mask [..., V] broadcast over the leading rows of x: its rows repeat, row r of x uses mask
   * row r % maskRows (so [V], or any trailing part of x's leading shape, e.g. [Lq, V] for [B, H, Lq, V]).
   */
  mask?: Tensor;
}

const FLOAT_TYPES: readonly DType[] = ['f32', 'f16'];

function checkInput(fn: string, x: Tensor): void {
  if (x.disposed) throw new Error(`${fn}: x is a disposed tensor`);
  if (!FLOAT_TYPES.includes(x.dtype)) throw new TypeError(`${fn}: x must be f32 or f16, got ${x.dtype}`);
  if (x.ndim === 0) throw new RangeError(`${fn}: x must have at least one dimension`);
}

/** Rows of the mask, after checking that its shape is a trailing part of x's (leading 1s allowed). */
function maskRows(fn: string, x: Tensor, mask: Tensor): number {
  if (mask.disposed) throw new Error(`${fn}: mask is a disposed tensor`);
  if (mask.gpu !== x.gpu) throw new Error(`${fn}: x and mask live on different devices`);
  if (!FLOAT_TYPES.includes(mask.dtype)) throw new TypeError(`${fn}: mask must be f32 or f16, got ${mask.dtype}`);
  const m = [...mask.shape];
  while (m.length > 1 && m[0] === 1) m.shift();
  const tail = x.shape.slice(x.ndim - m.length);
  if (m.length > x.ndim || m.some((d, i) => d !== tail[i])) {
    throw new RangeError(`${fn}: mask [${mask.shape.join(', ')}] must match the trailing dimensions of x [${x.shape.join(', ')}]`);
  }
  return Math.max(1, mask.size / x.dim(-1));
}

/** Threads per row: enough for wide rows, few for narrow ones (idle threads still cost on a CPU adapter). */
function workgroupSize(width: number, software: boolean): number {
  const cap = software ? 64 : 256;
  let wg = 32;
  while (wg < cap && wg * 4 < width) wg *= 2;
  return wg;
}

function run(fn: string, x: Tensor, outType: DType, log: boolean, mask: Tensor | undefined): Tensor {
  checkInput(fn, x);
  const rowsOfMask = mask ? maskRows(fn, x, mask) : 1;
  const gpu = x.gpu;
  return newOutput(gpu, x.shape, outType, (out) => {
    const width = x.dim(-1);
    const rows = x.size / width;
    const bx = x.bind();
    const bm = mask?.bind();
    const bo = out.bind();
    const g = grid1d(gpu, rows, 1);
    const wg = workgroupSize(width, gpu.caps.isSoftware);
    const types = [x.dtype, outType, ...(mask ? [mask.dtype] : [])];
    const defines = { T: x.dtype, OT: outType, WG: wg, LOG: log, MASK: mask !== undefined, MT: mask?.dtype ?? 'f32', F16: types.includes('f16') };
    gpu.dispatch({
      label: fn,
      pipeline: gpu.pipeline('softmax', defines),
      uniforms: uniforms().u32(rows, width, bx.elementOffset, bo.elementOffset, bm?.elementOffset ?? 0, rowsOfMask, g.rowStride).build(),
      buffers: bm ? [bx.binding, bm.binding, bo.binding] : [bx.binding, bo.binding],
      workgroups: g.workgroups,
    });
  });
}

/** Row-wise stable softmax over the last dim (output has x's dtype), optional additive mask. */
export function softmax(x: Tensor, options: SoftmaxOptions = {}): Tensor {
  return run('softmax', x, x.dtype, false, options.mask);
}

/** log(softmax(x)) over the last dim, f32 output (beam search scores). */
export function logSoftmax(x: Tensor): Tensor {
  return run('logSoftmax', x, 'f32', true, undefined);
}
