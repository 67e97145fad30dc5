/**
 * decode_embed against a host gather-and-add: token table rows (f32 and f16, bound in slices when the binding limit
 * is small) plus position rows, ids read from the decode state; ids outside the tables read zeros; more slices
 * than the kernel binds returns null (the caller gathers instead).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/gpu.js';
import { decodeEmbeddings } from '../../src/kernels/decode-embed.js';
import { DecodeState } from '../../src/kernels/decode-state.js';
import { Tensor, type DType } from '../../src/tensor.js';
import { randn, roundTo } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  // A 4 KiB binding limit: a 97 x 20 f32 table takes 3 slices, f16 2.
  gpu = await Gpu.create({ maxStorageBufferBindingSize: 4096 });
});
afterAll(() => gpu?.destroy());

async function check(dtype: DType, fed: number[], positions: number[]): Promise<void> {
  const V = 97;
  const D = 20;
  const P = 9;
  const tok = roundTo(dtype, randn(V * D, 1));
  const pos = randn(P * D, 2);
  const state = DecodeState.create(gpu, { rows: fed.length, capacity: 4, histWidth: 1, hidden: D, heads: 1, headDim: D, scale: 1 });
  state.setRows(fed.map((f, r) => ({ ids: [], mask: [], position: positions[r]!, length: 0, fed: f })));
  const t = Tensor.from(gpu, tok, [V, D], dtype);
  const p = Tensor.from(gpu, pos, [P, D]);
  const out = decodeEmbeddings(state, t, p);
  expect(out).not.toBeNull();
  const want = new Float32Array(fed.length * D);
  fed.forEach((f, r) => {
    for (let c = 0; c < D; c++) {
      const a = f >= 0 && f < V ? tok[f * D + c]! : 0;
      const b = positions[r]! >= 0 && positions[r]! < P ? pos[positions[r]! * D + c]! : 0;
      want[r * D + c] = Math.fround(a + b);
    }
  });
  expect(Array.from(await out!.read())).toEqual(Array.from(want));
  for (const x of [t, p, out!]) x.dispose();
  state.dispose();
}

describe('decode embeddings', () => {
  it('token rows from every slice plus position rows, f32 and f16 tables', async () => {
    const fed = [0, 20, 21, 42, 43, 96, 60, -1, 97];
    const positions = [0, 8, 3, 2, 1, 5, 7, 4, 9];
    await check('f32', fed, positions);
    if (gpu.caps.f16) await check('f16', fed, positions);
  });

  it('returns null when the table needs more than 4 slices', () => {
    const state = DecodeState.create(gpu, { rows: 1, capacity: 4, histWidth: 1, hidden: 64, heads: 1, headDim: 64, scale: 1 });
    const t = Tensor.empty(gpu, [100, 64]); // 25.6 KB in 4 KB bindings
    const p = Tensor.empty(gpu, [4, 64]);
    expect(decodeEmbeddings(state, t, p)).toBeNull();
    for (const x of [t, p]) x.dispose();
    state.dispose();
  });
});
