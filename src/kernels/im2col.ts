import { uniforms } from '../gpu/uniforms.js';
import { Tensor } from '../tensor.js';
import { dtypeDefines } from './dtype.js';
import { grid1d } from './grid.js';
import { newOutput } from './output.js';

const WG = 256;

/**
 * For the vision patch embedding (Conv2d p x p, stride p, as im2col + linear):
 * pixels [B, C, H, W] (f32 or f16) -> [B, (H/p)*(W/p), C*p*p] with column order (c, ky, kx), so that the conv
 * weight [O, C, p, p] reshaped to [O, C*p*p] is the linear weight; patches in row-major (py, px) order.
 * Like the convolution (no padding), pixels past the last whole patch are ignored.
 */
export function im2col(pixels: Tensor, patch: number): Tensor {
  if (pixels.ndim !== 4) throw new RangeError(`im2col: pixels must be [B, C, H, W], got ${pixels}`);
  if (pixels.dtype !== 'f32' && pixels.dtype !== 'f16') throw new TypeError(`im2col: pixels must be f32 or f16, got ${pixels}`);
  const [b, c, h, w] = pixels.shape as [number, number, number, number];
  if (!Number.isInteger(patch) || patch < 1 || patch > h || patch > w) {
    throw new RangeError(`im2col: patch must be an integer in 1..min(H, W) = ${Math.min(h, w)}, got ${patch}`);
  }
  const ph = Math.floor(h / patch);
  const pw = Math.floor(w / patch);
  const gpu = pixels.gpu;
  return newOutput(gpu, [b, ph * pw, c * patch * patch], pixels.dtype, (out) => {
    const bi = pixels.bind();
    const bo = out.bind();
    const g = grid1d(gpu, out.size, WG);
    gpu.dispatch({
      label: 'im2col',
      pipeline: gpu.pipeline('im2col', { T: pixels.dtype, ...dtypeDefines(pixels.dtype) }),
      uniforms: uniforms().u32(out.size, c, h, w, patch, ph, pw, bi.elementOffset, bo.elementOffset, g.rowStride, 0, 0).build(),
      buffers: [bi.binding, bo.binding],
      workgroups: g.workgroups,
    });
  });
}
