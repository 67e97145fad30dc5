import { uniforms } from '../gpu/uniforms.js';
import { Tensor } from '../tensor.js';
import { dtypeDefines } from './dtype.js';
import { newOutput } from './output.js';

const WG = 64;

/**
 * Column sums: x [..., C] (f32 or f16) reduced over every leading dim to [C] f32, summed row after row.
 * With `accumulate` ([C] f32) the sums are added to it in place and it is returned: how bias gradients and
 * the gradients of broadcast operands accumulate.
 */
export function sumRows(x: Tensor, accumulate?: Tensor): Tensor {
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new TypeError(`sumRows: x must be f32 or f16, got ${x}`);
  if (x.ndim < 1) throw new RangeError(`sumRows: x must have at least one dim, got ${x}`);
  const cols = x.dim(-1);
  const rows = cols === 0 ? 0 : x.size / cols;
  const run = (out: Tensor): void => {
    if (cols === 0) return;
    const gpu = x.gpu;
    const bx = x.bind();
    const bo = out.bind();
    gpu.dispatch({
      label: 'sumRows',
      pipeline: gpu.pipeline('reduce_rows', { X: x.dtype, ACCUMULATE: accumulate !== undefined, ...dtypeDefines(x.dtype) }),
      uniforms: uniforms().u32(rows, cols, bx.elementOffset, bo.elementOffset).build(),
      buffers: [bx.binding, bo.binding],
      workgroups: [Math.ceil(cols / WG)],
    });
  };
  if (accumulate) {
    if (accumulate.dtype !== 'f32' || accumulate.size !== cols) throw new RangeError(`sumRows: accumulate must be f32 with ${cols} elements, got ${accumulate}`);
    if (accumulate.gpu !== x.gpu) throw new Error('sumRows: accumulate lives on another device');
    if (accumulate.buffer === x.buffer) throw new Error('sumRows: accumulate must not share storage with x');
    run(accumulate);
    return accumulate;
  }
  return newOutput(x.gpu, [cols], 'f32', run);
}
