import type { Gpu } from '../gpu/gpu.js';
import { uniforms } from '../gpu/uniforms.js';
import { Tensor, type DType } from '../tensor.js';
import { grid1d } from './grid.js';

const WG = 256;
const bitsOf = new DataView(new ArrayBuffer(4));

/** Sets every element of `t` (f32, i32 or u32; any view) to `value`, as a recorded kernel. */
export function fill(t: Tensor, value: number): Tensor {
  if (t.dtype === 'f16') throw new TypeError(`fill: f16 tensors are not supported, got ${t}`);
  if (t.size === 0) return t;
  if (t.dtype === 'f32') bitsOf.setFloat32(0, value, true);
  else if (t.dtype === 'i32') bitsOf.setInt32(0, value, true);
  else bitsOf.setUint32(0, value, true);
  const gpu = t.gpu;
  const b = t.bind();
  const g = grid1d(gpu, t.size, WG);
  gpu.dispatch({
    label: 'fill',
    pipeline: gpu.pipeline('fill', { T: t.dtype }),
    uniforms: uniforms().u32(t.size, b.elementOffset, g.rowStride, bitsOf.getUint32(0, true)).build(),
    buffers: [b.binding],
    workgroups: g.workgroups,
  });
  return t;
}

/** A new tensor of zeros. */
export function zeros(gpu: Gpu, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  const t = Tensor.empty(gpu, shape, dtype);
  try {
    return fill(t, 0);
  } catch (e) {
    t.dispose();
    throw e;
  }
}
