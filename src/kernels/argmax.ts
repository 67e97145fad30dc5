import type { Binding, Gpu } from '../gpu/gpu.js';
import { uniforms } from '../gpu/uniforms.js';
import { Tensor } from '../tensor.js';
import { newOutput } from './output.js';

/** Row widths above this are reduced in two passes (chunks of CHUNK, then the chunk winners). */
const TWO_PASS_ABOVE = 8192;
const CHUNK = 4096;

/**
 * Index of the largest value of each row: x [R, V] (f32 or f16) -> i32 [R], on the GPU so that decode never
 * reads logits back. As torch.argmax: the first maximum wins (ties -> lowest index), NaN counts as larger than
 * every number (the first NaN wins), -0 equals +0, a row of -Infinity gives 0.
 */
export function argmax(x: Tensor): Tensor {
  // Software adapters run invocations as SIMD lanes: fewer of them per workgroup means fewer barrier rounds.
  return argmaxWith(x.gpu.caps.isSoftware ? 64 : 256, x);
}

/** `argmax` with an explicit workgroup size (a power of two; tests run the GPU variant on any adapter). */
export function argmaxWith(workgroupSize: number, x: Tensor): Tensor {
  if (![32, 64, 128, 256].includes(workgroupSize)) throw new RangeError(`argmax: workgroup size ${workgroupSize} is not 32, 64, 128 or 256`);
  if (x.ndim !== 2) throw new RangeError(`argmax: x must be [R, V], got ${x}`);
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new TypeError(`argmax: x must be f32 or f16, got ${x}`);
  const [rows, width] = x.shape as [number, number];
  if (width === 0) throw new RangeError(`argmax: rows of ${x} are empty`);
  return newOutput(x.gpu, [rows], 'i32', (out) => record(x, out, workgroupSize));
}

function record(x: Tensor, out: Tensor, wg: number): void {
  const gpu = x.gpu;
  const [rows, width] = x.shape as [number, number];
  const bx = x.bind();
  const bo = out.bind();
  const half = x.dtype === 'f16';
  if (width <= TWO_PASS_ABOVE) {
    reduce(gpu, { n: width, chunk: width, chunks: 1, xOff: bx.elementOffset, outOff: bo.elementOffset, rows }, wg, { HALF: half, OUT_INDEX: true }, [bx.binding, bo.binding]);
    return;
  }
  const chunks = Math.ceil(width / CHUNK);
  const cand = Tensor.empty(gpu, [rows * chunks, 2], 'u32');
  try {
    const bc = cand.bind();
    reduce(gpu, { n: width, chunk: CHUNK, chunks, xOff: bx.elementOffset, outOff: 0, rows }, wg, { HALF: half }, [bx.binding, bc.binding]);
    reduce(gpu, { n: chunks, chunk: chunks, chunks: 1, xOff: 0, outOff: bo.elementOffset, rows }, wg, { SOURCE_CAND: true, OUT_INDEX: true }, [bc.binding, bo.binding]);
  } finally {
    // Later dispatches that reuse the buffer run after these ones, in recording order.
    cand.dispose();
  }
}

/**
 * The first pass of argmax alone, in chunks of CHUNK whatever the row width: per row and chunk the winning
 * (order-preserving key, index) pair, u32 [R, chunks, 2]. The decode step finishes the reduction in the same
 * kernel that advances its state (decode_state.wgsl PICK).
 */
export function argmaxCandidates(x: Tensor): { cand: Tensor; chunks: number } {
  if (x.ndim !== 2 || (x.dtype !== 'f32' && x.dtype !== 'f16')) throw new TypeError(`argmaxCandidates: x must be f32 or f16 [R, V], got ${x}`);
  const [rows, width] = x.shape as [number, number];
  if (width === 0) throw new RangeError(`argmaxCandidates: rows of ${x} are empty`);
  const chunks = Math.ceil(width / CHUNK);
  const cand = newOutput(x.gpu, [rows, chunks, 2], 'u32', (c) => {
    const bx = x.bind();
    const wg = x.gpu.caps.isSoftware ? 64 : 256;
    reduce(x.gpu, { n: width, chunk: CHUNK, chunks, xOff: bx.elementOffset, outOff: 0, rows }, wg, { HALF: x.dtype === 'f16' }, [bx.binding, c.bind().binding]);
  });
  return { cand, chunks };
}

interface ReduceParams {
  n: number;
  chunk: number;
  chunks: number;
  xOff: number;
  outOff: number;
  rows: number;
}

function reduce(gpu: Gpu, p: ReduceParams, wg: number, defines: Record<string, boolean>, buffers: Binding[]): void {
  const maxDim = gpu.caps.maxComputeWorkgroupsPerDimension;
  const y = Math.min(p.rows, maxDim);
  gpu.dispatch({
    label: 'argmax',
    pipeline: gpu.pipeline('argmax', { ...defines, WG: wg }),
    uniforms: uniforms().u32(p.n, p.chunk, p.chunks, p.xOff, p.outOff, p.rows, 0, 0).build(),
    buffers,
    workgroups: [p.chunks, y, Math.ceil(p.rows / y)],
  });
}
