import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scatterRowsCpu } from '../../src/cpu/scatter.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { scatterRows } from '../../src/kernels/scatter.js';
import { Tensor } from '../../src/tensor.js';
import { randn, rng, roundTo, testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

/** Distinct random rows of [0, n), plus out-of-range ones (skipped by contract) when `withInvalid`. */
function pickRows(m: number, n: number, seed: number, withInvalid: boolean): Int32Array {
  const r = rng(seed);
  const all = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  const rows = Int32Array.from(all.slice(0, m));
  if (withInvalid && m >= 3) rows.set([-1, n, 2147483647], 0);
  return rows;
}

// Copies are exact: f32 -> f16 conversion rounds as the host does, f16 -> f32 is exact.
describe('scatterRows', () => {
  for (const [n, m, d] of [
    [1, 1, 1],
    [7, 3, 33],
    [40, 32, 88],
    [300, 32, 257],
    [33, 33, 7],
  ] as const) {
    for (const [dstType, srcType] of [
      ['f32', 'f32'],
      ['f16', 'f32'],
      ['f32', 'f16'],
    ] as const) {
      it(`dst ${dstType} [${n}, ${d}] <- src ${srcType} [${m}, ${d}]`, async (ctx) => {
        if ((dstType === 'f16' || srcType === 'f16') && !gpu.caps.f16) ctx.skip();
        const dv = roundTo(dstType, randn(n * d, n + d));
        const sv = roundTo(srcType, randn(m * d, m + d + 1));
        const rows = pickRows(m, n, n * m, m > 3);
        // dst as a view one row into a bigger tensor; src and rows at odd element offsets
        const dstBase = Tensor.from(gpu, [...new Array<number>(d).fill(9), ...dv], [n + 1, d], dstType);
        const dst = dstBase.rows(1, n);
        const srcBase = Tensor.from(gpu, [1, ...sv], [m * d + 1], srcType);
        const src = srcBase.rows(1, m * d).reshape([m, d]);
        const rowsBase = Tensor.from(gpu, [5, ...rows], [m + 1], 'i32');
        const rowsView = rowsBase.rows(1, m);
        scatterRows(dst, src, rowsView);
        const ref = roundTo(dstType, scatterRowsCpu(dv, sv, rows, d));
        expect(Array.from(await dst.read())).toEqual(Array.from(ref));
        // The row before the view is untouched.
        expect(Array.from(await dstBase.rows(0, 1).read())).toEqual(new Array<number>(d).fill(9));
        for (const t of [dstBase, dst, srcBase, src, rowsBase, rowsView]) t.dispose();
      });
    }
  }

  it('rejects mismatched shapes, dtypes and aliasing clearly', () => {
    const dst = Tensor.empty(gpu, [4, 6]);
    const src = Tensor.empty(gpu, [2, 6]);
    const src5 = Tensor.empty(gpu, [2, 5]);
    const rows = Tensor.from(gpu, [0, 1], [2], 'i32');
    const rows3 = Tensor.from(gpu, [0, 1, 2], [3], 'i32');
    const frows = Tensor.empty(gpu, [2]);
    expect(() => scatterRows(dst, src5, rows)).toThrow(/width/);
    expect(() => scatterRows(dst, src, rows3)).toThrow(/one index per src row/);
    expect(() => scatterRows(dst, src, frows)).toThrow(/i32/);
    const flat = dst.reshape([24]);
    const alias = dst.rows(0, 2);
    expect(() => scatterRows(flat, src, rows)).toThrow(/2-D/);
    expect(() => scatterRows(dst, alias, rows)).toThrow(/share storage/);
    for (const t of [dst, src, src5, rows, rows3, frows, flat, alias]) t.dispose();
  });
});
