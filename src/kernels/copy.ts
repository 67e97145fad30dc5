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
