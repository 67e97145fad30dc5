import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { concatRowsCpu, writeRowsCpu } from '../../src/cpu/rows.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { concatRows, writeRows } from '../../src/kernels/rows.js';
import { Tensor, type DType } from '../../src/tensor.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/util/half.js';
import { randn, roundTo, testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

// Row copies are exact (f32 -> f16 rounds as the host does).
describe('writeRows', () => {
  for (const [b, t, l, d, start] of [
    [1, 1, 1, 1, 0],
    [1, 20, 1, 80, 13], // one decode step into a cache
    [5, 33, 7, 88, 26], // beams, the last rows
    [2, 257, 32, 33, 0],
  ] as const) {
    const pairs: [DType, DType][] = [
      ['f32', 'f32'],
      ['f16', 'f32'],
      ['f16', 'f16'],
    ];
    for (const [dstType, srcType] of pairs) {
      it(`${srcType} [${b}, ${l}, ${d}] into ${dstType} [${b}, ${t}, ${d}] at ${start}`, async (ctx) => {
        if ((dstType === 'f16' || srcType === 'f16') && !gpu.caps.f16) ctx.skip();
        const dv = roundTo(dstType, randn(b * t * d, t + d));
        const sv = roundTo(srcType, randn(b * l * d, l + d));
        const dst = Tensor.from(gpu, dv, [b, t, d], dstType);
        const srcBase = Tensor.from(gpu, [1, 2, 3, ...sv], [b * l * d + 3], srcType);
        const src = srcBase.rows(3, b * l * d).reshape([b, l, d]);
        writeRows(dst, src, start);
        expect(Array.from(await dst.read())).toEqual(Array.from(roundTo(dstType, writeRowsCpu(dv, [b, t, d], sv, l, start))));
        for (const x of [dst, srcBase, src]) x.dispose();
      });
    }
  }

  it('copies i32 rows and refuses to convert between integer and float', async () => {
    const dst = Tensor.from(gpu, [0, 0, 0, 0, 0, 0], [1, 3, 2], 'i32');
    const src = Tensor.from(gpu, [-7, 2147483647], [1, 1, 2], 'i32');
    writeRows(dst, src, 1);
    expect(Array.from(await dst.read())).toEqual([0, 0, -7, 2147483647, 0, 0]);
    const f = Tensor.empty(gpu, [1, 1, 2]);
    expect(() => writeRows(dst, f, 0)).toThrow(/convert/);
    for (const x of [dst, src, f]) x.dispose();
  });

  it('rejects rows that do not fit, mismatched shapes and aliasing clearly', () => {
    const dst = Tensor.empty(gpu, [2, 10, 4]);
    const src = Tensor.empty(gpu, [2, 3, 4]);
    expect(() => writeRows(dst, src, 8)).toThrow(/do not fit/);
    expect(() => writeRows(dst, src, -1)).toThrow(/do not fit/);
    const other = Tensor.empty(gpu, [1, 3, 4]);
    const flat = src.reshape([6, 4]);
    const aliasRows = dst.reshape([20, 4]);
    const aliasView = aliasRows.rows(0, 6);
    const alias3 = aliasView.reshape([2, 3, 4]);
    expect(() => writeRows(dst, other, 0)).toThrow(/batch or width/);
    expect(() => writeRows(dst, flat, 0)).toThrow(/\[B, rows, D\]/);
    expect(() => writeRows(dst, alias3, 0)).toThrow(/share storage/);
    for (const t of [dst, src, other, flat, aliasRows, aliasView, alias3]) t.dispose();
  });
});

describe('concatRows', () => {
  for (const [b, l1, l2, d] of [
    [1, 1, 256, 88], // class token ++ patches
    [2, 32, 7, 33], // query embeddings ++ text embeddings
    [3, 0, 5, 7],
  ] as const) {
    it(`[${b}, ${l1}, ${d}] ++ [${b}, ${l2}, ${d}]`, async () => {
      const av = randn(b * l1 * d, 1 + l1);
      const bv = randn(b * l2 * d, 2 + l2);
      const a = Tensor.from(gpu, av, [b, l1, d]);
      const bt = Tensor.from(gpu, bv, [b, l2, d]);
      const c = concatRows(a, bt);
      expect(c.shape).toEqual([b, l1 + l2, d]);
      expect(Array.from(await c.read())).toEqual(Array.from(roundTo('f32', concatRowsCpu(av, bv, b, d))));
      for (const x of [a, bt, c]) x.dispose();
    });
  }

  it('converts f16 b into f32 a', async (ctx) => {
    if (!gpu.caps.f16) ctx.skip();
    const a = Tensor.from(gpu, [1, 2], [1, 1, 2]);
    const b = Tensor.from(gpu, [0.1, 3], [1, 1, 2], 'f16');
    const c = concatRows(a, b);
    expect(c.dtype).toBe('f32');
    expect(Array.from(await c.read())).toEqual([1, 2, f16BitsToF32(f32ToF16Bits(0.1)), 3]);
    for (const x of [a, b, c]) x.dispose();
  });
});
