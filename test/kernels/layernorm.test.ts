import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layerNormCpu } from '../../src/cpu/layernorm.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { layerNorm, layerNormWith, type LayerNormVariant } from '../../src/kernels/layernorm.js';
import { Tensor, type DType } from '../../src/tensor.js';
import { randn, roundTo, testGpu, toleranceRatio } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

// Tolerances against the float64 reference (computed from the same rounded inputs):
// f32 output: atol 2e-5, rtol 2e-5 (f32 statistics over rows of up to 2560, rows with mean offset 10 included);
// f16 output: its final rounding (rtol 2^-10) plus the f32 part (atol 1e-4).
const TOL: Record<DType, { atol: number; rtol: number }> = {
  f32: { atol: 2e-5, rtol: 2e-5 },
  f16: { atol: 1e-4, rtol: 2 ** -10 },
  i32: { atol: 0, rtol: 0 },
  u32: { atol: 0, rtol: 0 },
};

interface Case {
  rows: number;
  d: number;
  eps: number;
  dtype: DType;
  paramDtype: DType;
  residual: boolean;
  variant: LayerNormVariant;
}

async function check(c: Case): Promise<void> {
  const n = c.rows * c.d;
  const seed = c.rows * 7 + c.d;
  // Rows with a large common offset test the two-pass variance.
  const xv = roundTo(c.dtype, Float32Array.from(randn(n, seed, 2), (v, i) => v + (Math.floor(i / c.d) % 3 === 1 ? 10 : 0)));
  const rv = roundTo(c.dtype, randn(n, seed + 1));
  const wv = roundTo(c.paramDtype, randn(c.d, seed + 2, 0.5).map((v) => v + 1));
  const bv = roundTo(c.paramDtype, randn(c.d, seed + 3, 0.2));
  // x is an offset view (3 elements in) so that the element-offset path is exercised.
  const xBase = Tensor.from(gpu, [0, 0, 0, ...xv], [n + 3], c.dtype);
  const x = xBase.rows(3, n).reshape([c.rows, c.d]);
  const w = Tensor.from(gpu, wv, [c.d], c.paramDtype);
  const b = Tensor.from(gpu, bv, [c.d], c.paramDtype);
  const r = c.residual ? Tensor.from(gpu, rv, [c.rows, c.d], c.dtype) : undefined;
  const y = layerNormWith(c.variant, x, w, b, c.eps, r);
  expect(y.dtype).toBe(c.dtype);
  expect(y.shape).toEqual([c.rows, c.d]);
  const ref = layerNormCpu(xv, wv, bv, c.eps, c.residual ? rv : undefined);
  const { atol, rtol } = TOL[c.dtype];
  expect(toleranceRatio(await y.read(), ref, atol, rtol)).toBeLessThanOrEqual(1);
  for (const t of [xBase, x, w, b, r, y]) t?.dispose();
}

describe('layerNorm', () => {
  for (const variant of ['workgroup', 'thread'] as const) {
    for (const [rows, d] of [
      [1, 1],
      [3, 7],
      [5, 33],
      [2, 88],
      [257, 96],
      [4, 1001],
      [2, 1408],
      [3, 2560],
    ] as const) {
      for (const eps of [1e-5, 1e-6, 1e-12]) {
        it(`${variant} f32 ${rows}x${d} eps ${eps}`, async () => {
          await check({ rows, d, eps, dtype: 'f32', paramDtype: 'f32', residual: eps === 1e-12, variant });
        });
      }
    }
    it(`${variant} f16 activations, f16 and f32 params, with and without residual`, async (ctx) => {
      if (!gpu.caps.f16) ctx.skip();
      for (const [rows, d] of [
        [3, 7],
        [5, 768],
        [2, 1001],
      ] as const) {
        await check({ rows, d, eps: 1e-5, dtype: 'f16', paramDtype: 'f16', residual: false, variant });
        await check({ rows, d, eps: 1e-6, dtype: 'f16', paramDtype: 'f32', residual: true, variant });
        await check({ rows, d, eps: 1e-12, dtype: 'f32', paramDtype: 'f16', residual: true, variant });
      }
    });
  }

  it('uses eps: a constant row normalises to the bias, and eps changes the scale of a tiny-variance row', async () => {
    const d = 8;
    const x = Tensor.from(gpu, [...new Array<number>(d).fill(3), ...Array.from({ length: d }, (_, i) => (i % 2 ? 1e-3 : -1e-3))], [2, d]);
    const w = Tensor.from(gpu, new Array<number>(d).fill(1), [d]);
    const b = Tensor.from(gpu, new Array<number>(d).fill(0.25), [d]);
    const [t5, t12] = [layerNorm(x, w, b, 1e-5), layerNorm(x, w, b, 1e-12)];
    const y5 = await t5.read();
    const y12 = await t12.read();
    expect(Array.from(y5.subarray(0, d))).toEqual(new Array<number>(d).fill(0.25));
    // variance 1e-6: eps 1e-5 shrinks the output to 1e-3/sqrt(1.1e-5) + 0.25; eps 1e-12 gives +-1 + 0.25.
    expect(y5[d]).toBeCloseTo(0.25 - 1e-3 / Math.sqrt(1.1e-5), 5);
    expect(y12[d]).toBeCloseTo(-0.75, 5);
    for (const t of [x, w, b, t5, t12]) t.dispose();
  });

  it('rejects mismatched shapes, dtypes and eps clearly', () => {
    const x = Tensor.empty(gpu, [4, 6]);
    const w = Tensor.empty(gpu, [6]);
    const w5 = Tensor.empty(gpu, [5]);
    const r = Tensor.empty(gpu, [4, 5]);
    const i = Tensor.empty(gpu, [4, 6], 'i32');
    expect(() => layerNorm(x, w5, w, 1e-5)).toThrow(/must have 6 elements/);
    expect(() => layerNorm(x, w, w, 1e-5, { residual: r })).toThrow(/residual/);
    expect(() => layerNorm(i, w, w, 1e-5)).toThrow(/f32 or f16/);
    expect(() => layerNorm(x, w, w, -1)).toThrow(/eps/);
    for (const t of [x, w, w5, r, i]) t.dispose();
  });
});
