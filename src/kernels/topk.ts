import type { Binding, Gpu } from '../gpu/gpu.js';
import { uniforms } from '../gpu/uniforms.js';
import { Tensor } from '../tensor.js';

/** The largest k the kernel keeps in workgroup memory. */
export const TOPK_MAX_K = 256;
/** Rows wider than this are split into chunks of CHUNK whose winners are selected in a second pass. */
const TWO_PASS_ABOVE = 8192;
const CHUNK = 4096;

export interface TopK {
  /** f32 [R, k], largest first. */
  values: Tensor;
  /** i32 [R, k]. */
  indices: Tensor;
}

/**
 * The k largest entries of each row of x [R, V] (f32 or f16), sorted descending; equal values come in
 * ascending index order; NaN counts as larger than every number (as torch.topk), -0 equals +0. Values are
 * returned as f32 with their exact bits. 1 <= k <= min(V, 256). For beam search call it on a [1, beams*V]
 * view (k = 2*beams); for top-k sampling with k = 50 (HF's default).
 */
export function topk(x: Tensor, k: number): TopK {
  if (x.ndim !== 2) throw new RangeError(`topk: x must be [R, V], got ${x}`);
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new TypeError(`topk: x must be f32 or f16, got ${x}`);
  const [rows, width] = x.shape as [number, number];
  if (!Number.isInteger(k) || k < 1 || k > width || k > TOPK_MAX_K) {
    throw new RangeError(`topk: k must be an integer in 1..min(V, ${TOPK_MAX_K}) = ${Math.min(width, TOPK_MAX_K)}, got ${k}`);
  }
  const gpu = x.gpu;
  const values = Tensor.empty(gpu, [rows, k], 'f32');
  const indices = Tensor.empty(gpu, [rows, k], 'i32');
  try {
    if (rows > 0) record(x, k, values, indices);
  } catch (e) {
    values.dispose();
    indices.dispose();
    throw e;
  }
  return { values, indices };
}

function record(x: Tensor, k: number, values: Tensor, indices: Tensor): void {
  const gpu = x.gpu;
  const [rows, width] = x.shape as [number, number];
  const bx = x.bind();
  const bv = values.bind();
  const bi = indices.bind();
  const common = { k, xOff: bx.elementOffset, width, valsOff: bv.elementOffset, idxOff: bi.elementOffset, rows };
  const half = x.dtype === 'f16';
  const kmax = 2 ** Math.ceil(Math.log2(Math.max(k, 16)));
  if (width <= TWO_PASS_ABOVE) {
    select(gpu, { ...common, n: width, chunk: width, chunks: 1 }, { HALF: half, KMAX: kmax }, [bx.binding, bv.binding, bi.binding]);
    return;
  }
  const chunks = Math.ceil(width / CHUNK);
  const cand = Tensor.empty(gpu, [rows * chunks * k, 2], 'u32');
  try {
    const bc = cand.bind();
    select(gpu, { ...common, n: width, chunk: CHUNK, chunks }, { HALF: half, OUT_CAND: true, KMAX: kmax }, [bx.binding, bc.binding]);
    select(gpu, { ...common, n: chunks * k, chunk: chunks * k, chunks: 1 }, { HALF: half, SOURCE_CAND: true, KMAX: kmax }, [
      bx.binding,
      bc.binding,
      bv.binding,
      bi.binding,
    ]);
  } finally {
    // Later dispatches that reuse the buffer run after these ones, in recording order.
    cand.dispose();
  }
}

interface SelectParams {
  n: number;
  chunk: number;
  chunks: number;
  k: number;
  xOff: number;
  width: number;
  valsOff: number;
  idxOff: number;
  rows: number;
}

function select(gpu: Gpu, p: SelectParams, defines: Record<string, boolean | number>, buffers: Binding[]): void {
  const y = Math.min(p.rows, gpu.caps.maxComputeWorkgroupsPerDimension);
  gpu.dispatch({
    label: 'topk',
    pipeline: gpu.pipeline('topk', defines),
    uniforms: uniforms().u32(p.n, p.chunk, p.chunks, p.k, p.xOff, p.width, p.valsOff, p.idxOff, p.rows, 0, 0, 0).build(),
    buffers,
    workgroups: [p.chunks, y, Math.ceil(p.rows / y)],
  });
}
