import { uniforms } from '../gpu/uniforms.js';
import type { Tensor } from '../tensor.js';
import { dtypeDefines } from './dtype.js';
import { grid1d } from './grid.js';

/**
 * HF RepetitionPenaltyLogitsProcessor, in place on f32 logits [R, V]: for each distinct token id in row r's list
 * (ids i32 [R, n], -1 = unused slot; any id outside [0, V) is skipped): s = logits[r, id];
 * logits[r, id] = s < 0 ? s * penalty : s / penalty. -Infinity stays -Infinity; NaN stays NaN.
 */
export function repetitionPenalty(logits: Tensor, ids: Tensor, penalty: number): void {
  if (!Number.isFinite(penalty) || penalty <= 0) throw new RangeError(`repetitionPenalty: penalty must be a finite number > 0, got ${penalty}`);
  byIds('repetitionPenalty', logits, ids, penalty, true);
}

/** logits[r, ids[r, j]] = value for every j (ids i32 [R, n], -1 skipped): banned n-grams, min_new_tokens' eos ban. */
export function setLogits(logits: Tensor, ids: Tensor, value: number): void {
  byIds('setLogits', logits, ids, value, false);
}

/**
 * x *= factor in place (f32 or f16; f32 math): logits / temperature as scaleInPlace(x, 1 / temperature).
 * The product can differ from HF's division by one rounding.
 */
export function scaleInPlace(x: Tensor, factor: number): void {
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new TypeError(`scaleInPlace: x must be f32 or f16, got ${x}`);
  if (x.size === 0) return;
  const gpu = x.gpu;
  const bx = x.bind();
  const g = grid1d(gpu, x.size, 256);
  gpu.dispatch({
    label: 'scaleInPlace',
    pipeline: gpu.pipeline('logits_scale', { T: x.dtype, ...dtypeDefines(x.dtype) }),
    uniforms: uniforms().u32(x.size, bx.elementOffset, g.rowStride).f32(factor).build(),
    buffers: [bx.binding],
    workgroups: g.workgroups,
  });
}

function byIds(name: string, logits: Tensor, ids: Tensor, value: number, penalty: boolean): void {
  if (logits.ndim !== 2 || logits.dtype !== 'f32') throw new TypeError(`${name}: logits must be f32 [R, V], got ${logits}`);
  if (ids.ndim !== 2 || ids.dtype !== 'i32') throw new TypeError(`${name}: ids must be i32 [R, n], got ${ids}`);
  const [rows, width] = logits.shape as [number, number];
  const n = ids.dim(1);
  if (ids.dim(0) !== rows) throw new RangeError(`${name}: ids ${ids} must have one row per logits row (${rows})`);
  if (ids.gpu !== logits.gpu) throw new Error(`${name}: tensors live on different devices`);
  if (ids.buffer === logits.buffer) throw new Error(`${name}: ids must not share storage with logits`);
  if (rows * n === 0 || width === 0) return;
  const gpu = logits.gpu;
  const bl = logits.bind();
  const bi = ids.bind();
  const g = grid1d(gpu, rows * n, 64);
  gpu.dispatch({
    label: name,
    pipeline: gpu.pipeline('logits_ids', { PENALTY: penalty }),
    uniforms: uniforms().u32(rows * n, n, width, bl.elementOffset, bi.elementOffset, g.rowStride).f32(value).u32(0).build(),
    buffers: [bi.binding, bl.binding],
    workgroups: g.workgroups,
  });
}
