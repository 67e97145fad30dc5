import { uniforms } from '../gpu/uniforms.js';
import { Tensor, type DType } from '../tensor.js';
import { dtypeDefines } from './dtype.js';
import { grid1d } from './grid.js';

const WG = 256;

/** Copies `x` into `out` (same size and dtype), or into a new contiguous tensor. */
export function copy(x: Tensor, out?: Tensor): Tensor {
  const y = out ?? Tensor.empty(x.gpu, x.shape, x.dtype);
  if (y.size !== x.size || y.dtype !== x.dtype) {
    throw new RangeError(`copy: ${x} into ${y}`);
  }
  if (x.size === 0) return y;
  const gpu = x.gpu;
  const bx = x.bind();
  const by = y.bind();
  const g = grid1d(gpu, x.size, WG);
  gpu.dispatch({
    label: 'copy',
    pipeline: gpu.pipeline('copy', { T: x.dtype, ...dtypeDefines(x.dtype) }),
    uniforms: uniforms().u32(x.size, bx.elementOffset, by.elementOffset, g.rowStride).build(),
    buffers: [bx.binding, by.binding],
    workgroups: g.workgroups,
  });
  return y;
}

/** `x` converted to `dtype` (a new tensor; a copy when the dtype is the same). */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (dtype === x.dtype) return copy(x);
  const gpu = x.gpu;
  const y = Tensor.empty(gpu, x.shape, dtype);
  if (x.size === 0) return y;
  const bx = x.bind();
  const by = y.bind();
  const g = grid1d(gpu, x.size, WG);
  gpu.dispatch({
    label: 'cast',
    pipeline: gpu.pipeline('cast', { IN: x.dtype, OUT: dtype, ...dtypeDefines(x.dtype, dtype) }),
    uniforms: uniforms().u32(x.size, bx.elementOffset, by.elementOffset, g.rowStride).build(),
    buffers: [bx.binding, by.binding],
    workgroups: g.workgroups,
  });
  return y;
}

/**
 * Writes the first `count` f32 values of `x` as f16 bits into `buffer` from byte `byteOffset`, packed in pairs
 * with pack2x16float, so no shader-f16 is needed (weight loading converts on the GPU with it). `count` must be
 * even and `byteOffset` a multiple of 4.
 */
export function packF16Into(x: Tensor, count: number, buffer: GPUBuffer, byteOffset: number): void {
  if (x.dtype !== 'f32') throw new TypeError(`packF16Into: x must be f32, got ${x}`);
  if (!Number.isInteger(count) || count < 0 || count % 2 !== 0 || count > x.size) throw new RangeError(`packF16Into: count ${count} must be even and at most ${x.size}`);
  if (byteOffset % 4 !== 0 || byteOffset + count * 2 > buffer.size) throw new RangeError(`packF16Into: ${count} halves at byte ${byteOffset} do not fit 4-byte steps of a ${buffer.size}-byte buffer`);
  if (count === 0) return;
  const gpu = x.gpu;
  const start = byteOffset - (byteOffset % gpu.caps.minStorageBufferOffsetAlignment);
  const bx = x.bind();
  const g = grid1d(gpu, count / 2, WG);
  gpu.dispatch({
    label: 'pack_f16',
    pipeline: gpu.pipeline('cast', { PACK_F16: true }),
    uniforms: uniforms().u32(count / 2, bx.elementOffset, (byteOffset - start) / 4, g.rowStride).build(),
    buffers: [bx.binding, { buffer, offset: start, size: byteOffset - start + count * 2 }],
    workgroups: g.workgroups,
  });
}
