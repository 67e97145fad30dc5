import { uniforms } from '../gpu/uniforms.js';
import type { Tensor } from '../tensor.js';
import { dtypeDefines } from './dtype.js';
import { grid1d } from './grid.js';

const WG = 256;

/**
 * dst[rows[i], :] = src[i, :] in place (BLIP-2's masked_scatter of the projected query outputs into the
 * <image> token rows of inputs_embeds). dst [N, D] and src [M, D] are f32 or f16 (converted as needed),
 * rows i32 [M]. Rows outside [0, N) are skipped; when a row repeats, which source row lands is unspecified.
 */
export function scatterRows(dst: Tensor, src: Tensor, rows: Tensor): void {
  for (const [role, t] of [['dst', dst], ['src', src]] as const) {
    if (t.ndim !== 2) throw new RangeError(`scatterRows: ${role} must be 2-D [rows, D], got ${t}`);
    if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new TypeError(`scatterRows: ${role} must be f32 or f16, got ${t}`);
  }
  if (rows.dtype !== 'i32') throw new TypeError(`scatterRows: rows must be i32, got ${rows}`);
  const [n, d] = dst.shape as [number, number];
  const [m, ds] = src.shape as [number, number];
  if (ds !== d) throw new RangeError(`scatterRows: src ${src} and dst ${dst} differ in width`);
  if (rows.size !== m) throw new RangeError(`scatterRows: rows ${rows} must hold one index per src row (${m})`);
  if (src.gpu !== dst.gpu || rows.gpu !== dst.gpu) throw new Error('scatterRows: tensors live on different devices');
  if (src.buffer === dst.buffer || rows.buffer === dst.buffer) {
    throw new Error('scatterRows: src and rows must not share storage with dst (WebGPU forbids binding a buffer as both read and write)');
  }
  if (m === 0 || d === 0 || n === 0) return;
  const gpu = dst.gpu;
  const bs = src.bind();
  const br = rows.bind();
  const bd = dst.bind();
  const g = grid1d(gpu, m * d, WG);
  gpu.dispatch({
    label: 'scatterRows',
    pipeline: gpu.pipeline('scatter', { SRC: src.dtype, DST: dst.dtype, ...dtypeDefines(src.dtype, dst.dtype) }),
    uniforms: uniforms().u32(m * d, d, bs.elementOffset, br.elementOffset, bd.elementOffset, n, g.rowStride, 0).build(),
    buffers: [bs.binding, br.binding, bd.binding],
    workgroups: g.workgroups,
  });
}
