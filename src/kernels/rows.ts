import { uniforms } from '../gpu/uniforms.js';
import { Tensor, type DType } from '../tensor.js';
import { dtypeDefines } from './dtype.js';
import { grid1d } from './grid.js';
import { newOutput } from './output.js';

const WG = 256;

const isFloat = (d: DType) => d === 'f32' || d === 'f16';

/**
 * KV-cache append: dst[b, start+i, :] = src[b, i, :] for dst [B, T, D], src [B, L, D], start + L <= T.
 * Float types convert (an f32 step into an f16 cache); integer tensors must match dst's dtype.
 */
export function writeRows(dst: Tensor, src: Tensor, start: number): void {
  check('writeRows', dst, src);
  const [b, t, d] = dst.shape as [number, number, number];
  const l = src.dim(1);
  if (!Number.isInteger(start) || start < 0 || start + l > t) {
    throw new RangeError(`writeRows: rows ${start}..${start + l - 1} do not fit dst ${dst} (T = ${t})`);
  }
  if (src.buffer === dst.buffer) {
    throw new Error('writeRows: src must not share storage with dst (WebGPU forbids binding a buffer as both read and write)');
  }
  if (b * l * d === 0) return;
  const gpu = dst.gpu;
  const bs = src.bind();
  const bd = dst.bind();
  const g = grid1d(gpu, src.size, WG);
  gpu.dispatch({
    label: 'writeRows',
    pipeline: gpu.pipeline('rows', { SRC: src.dtype, DST: dst.dtype, ...dtypeDefines(src.dtype, dst.dtype) }),
    uniforms: uniforms().u32(src.size, l, d, t, start, bs.elementOffset, bd.elementOffset, g.rowStride).build(),
    buffers: [bs.binding, bd.binding],
    workgroups: g.workgroups,
  });
}

/** [B, L1, D] ++ [B, L2, D] along dim 1, in a's dtype (b converts if it is the other float type). */
export function concatRows(a: Tensor, b: Tensor): Tensor {
  check('concatRows', a, b);
  const [batch, l1, d] = a.shape as [number, number, number];
  return newOutput(a.gpu, [batch, l1 + b.dim(1), d], a.dtype, (out) => {
    writeRows(out, a, 0);
    writeRows(out, b, l1);
  });
}

function check(name: string, dst: Tensor, src: Tensor): void {
  if (dst.ndim !== 3 || src.ndim !== 3) throw new RangeError(`${name}: tensors must be [B, rows, D], got ${dst} and ${src}`);
  if (dst.dim(0) !== src.dim(0) || dst.dim(2) !== src.dim(2)) {
    throw new RangeError(`${name}: ${dst} and ${src} differ in batch or width`);
  }
  if (dst.dtype !== src.dtype && !(isFloat(dst.dtype) && isFloat(src.dtype))) {
    throw new TypeError(`${name}: cannot convert ${src.dtype} to ${dst.dtype}`);
  }
  if (dst.gpu !== src.gpu) throw new Error(`${name}: tensors live on different devices`);
}
