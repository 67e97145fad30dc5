import { uniforms } from '../gpu/uniforms.js';
import type { Tensor } from '../tensor.js';
import { grid1d } from './grid.js';
import { newOutput } from './output.js';

/**
 * Dropout: each element of x (f32) is zeroed with probability p and the others scaled by 1 / (1 - p), by a
 * mask that is a pure function of (element index, seed): the same seed gives the same mask, which is how the
 * backward pass applies it to the gradient without storing it. `seed` is a 53-bit integer.
 */
export function dropout(x: Tensor, p: number, seed: number): Tensor {
  if (x.dtype !== 'f32') throw new TypeError(`dropout: x must be f32, got ${x}`);
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: p must be in [0, 1), got ${p}`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`dropout: seed must be a non-negative safe integer, got ${seed}`);
  const gpu = x.gpu;
  return newOutput(gpu, x.shape, 'f32', (y) => {
    const [bx, by] = [x.bind(), y.bind()];
    const g = grid1d(gpu, x.size, 256);
    const threshold = Math.min(0xffffffff, Math.round(p * 2 ** 32));
    gpu.dispatch({
      label: 'dropout',
      pipeline: gpu.pipeline('dropout'),
      uniforms: uniforms()
        .u32(x.size, bx.elementOffset, by.elementOffset, g.rowStride, seed % 2 ** 32, Math.floor(seed / 2 ** 32), threshold)
        .f32(1 / (1 - p))
        .build(),
      buffers: [bx.binding, by.binding],
      workgroups: g.workgroups,
    });
  });
}
