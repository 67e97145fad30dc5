import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layerNormBackwardCpu, layerNormCpu } from '../../src/cpu/layernorm.js';
import { zeros } from '../../src/kernels/fill.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { layerNorm, layerNormBackward, layerNormParamsBackward, layerNormWith, type LayerNormVariant } from '../../src/kernels/layernorm.js';
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

describe('layerNorm backward', () => {
  it('the float64 reference equals central finite differences (with residual)', () => {
    const [rows, d, eps] = [3, 6, 1e-5];
    const x = Float64Array.from(randn(rows * d, 1, 2));
    const r = Float64Array.from(randn(rows * d, 2));
    const w = Float64Array.from(randn(d, 3), (v) => v + 1);
    const b = Float64Array.from(randn(d, 4));
    const g = Float64Array.from(randn(rows * d, 5));
    const f = () => layerNormCpu(x, w, b, eps, r).reduce((s, v, i) => s + v * g[i]!, 0);
    const grads = layerNormBackwardCpu(x, w, eps, g, r);
    const h = 1e-6;
    for (const [arr, grad] of [
      [x, grads.dx],
      [r, grads.dx],
      [w, grads.dw],
      [b, grads.db],
    ] as const) {
      for (let i = 0; i < arr.length; i++) {
        const keep = arr[i]!;
        arr[i] = keep + h;
        const up = f();
        arr[i] = keep - h;
        const down = f();
        arr[i] = keep;
        expect(Math.abs((up - down) / (2 * h) - grad[i]!)).toBeLessThan(1e-7);
      }
    }
  });

  for (const variant of ['workgroup', 'thread'] as const) {
    for (const [rows, d, residual] of [
      [1, 1, false],
      [5, 33, true],
      [3, 1001, false],
    ] as const) {
      it(`${variant} ${rows}x${d}${residual ? ' + residual' : ''}: saved statistics, dx, dw and db`, async () => {
        const eps = 1e-12;
        const n = rows * d;
        const xv = Float32Array.from(randn(n, n, 2), (v, i) => v + (Math.floor(i / d) % 2 ? 5 : 0));
        const rv = randn(n, n + 1);
        const wv = randn(d, d + 2).map((v) => v + 1);
        const bv = randn(d, d + 3);
        const gv = randn(n, d + 4);
        const x = Tensor.from(gpu, xv, [rows, d]);
        const r = residual ? Tensor.from(gpu, rv, [rows, d]) : undefined;
        const w = Tensor.from(gpu, wv, [d]);
        const b = Tensor.from(gpu, bv, [d]);
        const dy = Tensor.from(gpu, gv, [rows, d]);
        const stats = Tensor.empty(gpu, [rows, 2]);
        const y = layerNormWith(variant, x, w, b, eps, r, stats);
        const ref = layerNormBackwardCpu(xv, wv, eps, gv, residual ? rv : undefined);
        // The forward is unchanged by saving statistics.
        expect(toleranceRatio(await y.read(), layerNormCpu(xv, wv, bv, eps, residual ? rv : undefined), 2e-5, 2e-5)).toBeLessThanOrEqual(1);
        const dx = layerNormBackward(dy, x, w, stats, { residual: r, variant });
        // dx: f32 statistics and sums over d terms of unit size, scaled by rstd (about 1): 2e-5 + 2e-6 sqrt(d).
        expect(toleranceRatio(await dx.read(), ref.dx, 2e-5 + 2e-6 * Math.sqrt(d), 1e-5)).toBeLessThanOrEqual(1);
        const dw = zeros(gpu, [d]);
        const db = Tensor.from(gpu, new Float32Array(d).fill(1), [d]);
        layerNormParamsBackward(dy, x, stats, dw, db, { residual: r });
        expect(toleranceRatio(await dw.read(), ref.dw, 2e-5 * Math.sqrt(rows), 1e-5)).toBeLessThanOrEqual(1);
        expect(toleranceRatio(await db.read(), ref.db.map((v) => v + 1), 2e-6 * Math.sqrt(rows), 1e-6)).toBeLessThanOrEqual(1);
        for (const t of [x, r, w, b, dy, stats, y, dx, dw, db]) t?.dispose();
      });
    }
  }

  it('rejects statistics of the wrong size', () => {
    const x = Tensor.empty(gpu, [4, 6]);
    const w = Tensor.empty(gpu, [6]);
    const s = Tensor.empty(gpu, [4]);
    expect(() => layerNorm(x, w, w, 1e-5, { stats: s })).toThrow(/stats must be f32 \[4, 2\]/);
    expect(() => layerNormBackward(x, x, w, s)).toThrow(/stats must be f32 \[4, 2\]/);
    for (const t of [x, w, s]) t.dispose();
  });
});
