import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddingCpu } from '../../src/cpu/embedding.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { embedding, embeddingBackward } from '../../src/kernels/embedding.js';
import { Tensor, type DType } from '../../src/tensor.js';
import { randn, rng, roundTo, testGpu, toleranceRatio } from '../helpers.js';

let gpu: Gpu;
let small: Gpu; // a device that pretends its storage binding limit is 4 KiB, to force split tables
beforeAll(async () => {
  gpu = await testGpu();
  small = await testGpu({ maxStorageBufferBindingSize: 4096 });
});
afterAll(() => {
  gpu?.destroy();
  small?.destroy();
});

function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const r = rng(seed);
  const ids = Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
  // Out-of-range ids (documented to give zero rows) and the edge rows.
  const specials = [-1, vocab, -2147483648, 2147483647, 0, vocab - 1];
  for (let i = 0; i < Math.min(n, specials.length); i++) ids[(i * 5) % n] = specials[i]!;
  return ids;
}

// Gathers copy values, so results are exact (f16 -> f32 is exact; f32 -> f16 output rounds as the host does).
async function check(dev: Gpu, vocab: number, d: number, idsShape: number[], tableDtype: DType, outDtype: DType, tableOffsetRows: number): Promise<void> {
  const n = idsShape.reduce((a, b) => a * b, 1);
  const tv = roundTo(tableDtype, randn((vocab + tableOffsetRows) * d, vocab * d));
  const ids = randomIds(n, vocab, n + vocab);
  // ids as a view 2 elements into a bigger tensor
  const idsBase = Tensor.from(dev, [7, 7, ...ids], [n + 2], 'i32');
  const idsView = idsBase.rows(2, n).reshape(idsShape);
  const tableBase = Tensor.from(dev, tv, [vocab + tableOffsetRows, d], tableDtype);
  const table = tableBase.rows(tableOffsetRows, vocab);
  const out = embedding(idsView, table, { outDtype });
  expect(out.shape).toEqual([...idsShape, d]);
  expect(out.dtype).toBe(outDtype);
  const ref = roundTo(outDtype, embeddingCpu(ids, tv.subarray(tableOffsetRows * d), d));
  expect(Array.from(await out.read())).toEqual(Array.from(ref));
  for (const t of [idsBase, idsView, tableBase, table, out]) t.dispose();
}

describe('embedding', () => {
  for (const [vocab, d, idsShape] of [
    [1, 1, [1]],
    [7, 33, [2, 7]],
    [100, 88, [257]],
    [1001, 7, [3, 33]],
  ] as const) {
    it(`f32 table ${vocab}x${d}, ids [${idsShape.join(', ')}]`, async () => {
      await check(gpu, vocab, d, [...idsShape], 'f32', 'f32', 0);
      await check(gpu, vocab, d, [...idsShape], 'f32', 'f32', 3);
    });
    it(`f16 table ${vocab}x${d} to f32 and f16, ids [${idsShape.join(', ')}]`, async (ctx) => {
      if (!gpu.caps.f16) ctx.skip();
      await check(gpu, vocab, d, [...idsShape], 'f16', 'f32', 1);
      await check(gpu, vocab, d, [...idsShape], 'f16', 'f16', 0);
      await check(gpu, vocab, d, [...idsShape], 'f32', 'f16', 0);
    });
  }

  it('splits a table larger than the binding limit into slices of rows (f32 and odd-width f16 rows)', async (ctx) => {
    expect(small.caps.maxStorageBufferBindingSize).toBe(4096);
    // 300 x 33 f32 = 39.6 KB: 11 slices; the view starts mid-buffer at an unaligned row.
    await check(small, 300, 33, [3, 5], 'f32', 'f32', 5);
    // A table whose total binding would be refused outright by tensor.bind().
    const big = Tensor.empty(small, [300, 33]);
    expect(() => big.bind()).toThrow(/binding limit/);
    big.dispose();
    if (!small.caps.f16) ctx.skip();
    await check(small, 513, 35, [20], 'f16', 'f32', 1);
    await check(small, 513, 35, [20], 'f16', 'f16', 0);
  });

  it('rejects a row wider than the binding limit, wrong dtypes and shapes clearly', () => {
    const ids = Tensor.from(small, [0], [1], 'i32');
    const wide = Tensor.empty(small, [2, 1200]);
    expect(() => embedding(ids, wide)).toThrow(/does not fit/);
    const fids = Tensor.empty(small, [1]);
    const t3 = Tensor.empty(small, [2, 2, 2]);
    expect(() => embedding(fids, wide)).toThrow(/ids must be i32/);
    expect(() => embedding(ids, t3)).toThrow(/\[V, D\]/);
    const ids2d = ids.reshape([1, 1]);
    expect(() => embedding(ids, ids2d)).toThrow(/f32 or f16/);
    for (const t of [ids, wide, fids, t3, ids2d]) t.dispose();
  });

  it('leaks no GPU memory', async () => {
    await small.sync();
    const before = small.stats().liveBytes;
    const table = Tensor.from(small, randn(300 * 33, 4), [300, 33]);
    const ids = Tensor.from(small, [1, 299, 150], [3], 'i32');
    for (let i = 0; i < 10; i++) embedding(ids, table).dispose();
    table.dispose();
    ids.dispose();
    await small.sync();
    expect(small.stats().liveBytes).toBe(before);
  });
});

describe('embeddingBackward', () => {
  it('sums the rows of repeated ids into the table gradient and skips ids outside the table', async () => {
    const [V, D] = [5, 37];
    const ids = [3, 0, 3, 7, -1, 3, 4];
    const gv = randn(ids.length * D, 4);
    const tg = randn(V * D, 5);
    const idsT = Tensor.from(gpu, ids, [ids.length], 'i32');
    const g = Tensor.from(gpu, gv, [ids.length, D]);
    const table = Tensor.from(gpu, tg, [V, D]);
    embeddingBackward(idsT, g, table);
    const want = Float64Array.from(tg);
    ids.forEach((id, i) => {
      if (id < 0 || id >= V) return;
      for (let c = 0; c < D; c++) want[id * D + c]! += gv[i * D + c]!;
    });
    expect(toleranceRatio(await table.read(), want, 1e-6, 1e-6)).toBeLessThanOrEqual(1);
    for (const t of [idsT, g, table]) t.dispose();
  });
});
