import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topkCpu } from '../../src/cpu/topk.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { topk } from '../../src/kernels/topk.js';
import { Tensor, type DType } from '../../src/tensor.js';
import { randn, rng, roundTo, testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

/** Random rows with planted ties (a value repeated across the row), -Infinity runs and a row of -Infinity. */
function logits(rows: number, width: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = randn(rows * width, seed, 4);
  for (let row = 0; row < rows; row++) {
    const at = (i: number) => row * width + i;
    if (row % 4 === 1) for (let j = 0; j < Math.min(width, 70); j++) x[at(Math.floor(r() * width))] = 9; // many equal maxima
    if (row % 4 === 2) for (let i = 0; i < width; i += 3) x[at(i)] = -Infinity;
    if (row % 4 === 3) for (let i = 0; i < width; i++) x[at(i)] = -Infinity;
  }
  return x;
}

/** topk is exact: same indices as the reference, values bit-equal to the (rounded) inputs. */
async function check(rows: number, width: number, k: number, dtype: DType, offset: number): Promise<void> {
  const xv = roundTo(dtype, logits(rows, width, width * 31 + k));
  const base = Tensor.from(gpu, [...new Array<number>(offset).fill(1e4), ...xv], [offset + rows * width], dtype);
  const x = base.rows(offset, rows * width).reshape([rows, width]);
  const { values, indices } = topk(x, k);
  expect(values.shape).toEqual([rows, k]);
  expect(values.dtype).toBe('f32');
  expect(indices.dtype).toBe('i32');
  const ref = topkCpu(xv, rows, k);
  expect(Array.from(await indices.read())).toEqual(Array.from(ref.indices));
  expect(Array.from(await values.read())).toEqual(Array.from(ref.values));
  for (const t of [base, x, values, indices]) t.dispose();
}

describe('topk', () => {
  for (const [width, ks] of [
    [1, [1]],
    [7, [1, 3, 7]],
    [33, [5, 33]],
    [88, [10, 50, 64]],
    [257, [50, 256]],
    [1001, [1, 50, 64]],
    [8193, [10, 50]],
    [50304, [50, 64]],
  ] as const) {
    for (const k of ks) {
      for (const dtype of ['f32', 'f16'] as const) {
        it(`${dtype} rows of ${width}, k = ${k}`, async (ctx) => {
          if (dtype === 'f16' && !gpu.caps.f16) ctx.skip();
          await check(width > 10000 ? 4 : 5, width, k, dtype, width % 3);
        });
      }
    }
  }

  it('beam search: k = 10 over a [1, 5*50304] view', async () => {
    await check(1, 5 * 50304, 10, 'f32', 7);
  });

  it('orders NaN first, then +Infinity, ties by index, -0 equal to +0, and returns exact bits', async () => {
    const width = 20000;
    const x = new Float32Array(width).fill(-5);
    x[15000] = NaN;
    x[30] = Infinity;
    x[19999] = 3;
    x[5] = 3;
    x[12000] = 3;
    x[100] = -0;
    x[50] = 0;
    x[8000] = 1e-45; // the smallest subnormal beats both zeros
    const t = Tensor.from(gpu, x, [1, width]);
    const { values, indices } = topk(t, 8);
    expect(Array.from(await indices.read())).toEqual([15000, 30, 5, 12000, 19999, 8000, 50, 100]);
    const v = await values.read();
    expect(Number.isNaN(v[0])).toBe(true);
    expect(Array.from(v.subarray(1))).toEqual([Infinity, 3, 3, 3, Math.fround(1e-45), 0, -0]);
    expect(Object.is(v[7], -0)).toBe(true);
    for (const y of [t, values, indices]) y.dispose();
    if (!gpu.caps.f16) return;
    // In f16 the subnormal 1e-45 flushes to +0, which then ties with +0 and -0 by index.
    const h = Tensor.from(gpu, x, [1, width], 'f16');
    const rh = topk(h, 8);
    expect(Array.from(await rh.indices.read())).toEqual([15000, 30, 5, 12000, 19999, 50, 100, 8000]);
    const vh = await rh.values.read();
    expect(Number.isNaN(vh[0])).toBe(true);
    expect(Array.from(vh.subarray(1))).toEqual([Infinity, 3, 3, 3, 0, -0, 0]);
    for (const y of [h, rh.values, rh.indices]) y.dispose();
  });

  it('rejects bad k and shapes clearly, and leaks nothing', async () => {
    const x = Tensor.empty(gpu, [2, 100]);
    expect(() => topk(x, 0)).toThrow(/k must be/);
    expect(() => topk(x, 101)).toThrow(/k must be/);
    const wide = Tensor.empty(gpu, [2, 1000]);
    const flat = x.reshape([200]);
    expect(() => topk(wide, 257)).toThrow(/k must be/);
    expect(() => topk(flat, 5)).toThrow(/\[R, V\]/);
    for (const t of [x, wide, flat]) t.dispose();
    await gpu.sync();
    const before = gpu.stats().liveBytes;
    const y = Tensor.from(gpu, randn(20000, 3), [1, 20000]);
    for (let i = 0; i < 5; i++) {
      const r = topk(y, 50);
      r.values.dispose();
      r.indices.dispose();
    }
    y.dispose();
    expect(() => topk(y, 5)).toThrow(/disposed/);
    await gpu.sync();
    expect(gpu.stats().liveBytes).toBe(before);
  });
});
