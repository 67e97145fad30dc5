/**
 * Linear gradients: the float64 reference against central finite differences, then the kernels (dX through a
 * [K, N]-layout weight, dW through an A stored [K, M], db as column sums) against it at awkward shapes, every
 * layout-capable variant forced, f32 and f16 weights, accumulation, and a weight too large to bind whole.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { linearBackwardRef, linearRef, matmulRef } from '../../src/cpu/linear.js';
import { linearBiasGrad, linearInputGrad, linearWeightGrad } from '../../src/kernels/linear-backward.js';
import { matmulWithVariant } from '../../src/kernels/linear.js';
import type { Activation, VariantChoice } from '../../src/kernels/linear-problem.js';
import { Tensor, type DType } from '../../src/tensor.js';
import { randn, roundTo, testGpu, toleranceRatio } from '../helpers.js';

// f32 math over sums of K (dX) or M (dW, db) products of unit-sized values: |err| <= 1e-4 * sqrt(terms).
const ATOL = 1e-4;

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

/** sum(y * g) for y = linear(x, w, b) with activation: the scalar whose gradient linearBackwardRef gives for dY = g. */
function objective(x: Float64Array, w: Float64Array, b: Float64Array, g: Float64Array, M: number, K: number, N: number, activation: Activation): number {
  const y = linearRef(x, w, M, K, N, { bias: b, activation });
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i]! * g[i]!;
  return s;
}

describe('linear backward reference', () => {
  for (const activation of ['none', 'gelu', 'relu'] as const) {
    it(`equals central finite differences (${activation})`, () => {
      const [M, K, N] = [3, 5, 4];
      const x = Float64Array.from(randn(M * K, 1));
      const w = Float64Array.from(randn(N * K, 2));
      // ReLU's kink: keep pre-activations away from 0 so that the differences are smooth.
      const b = Float64Array.from(randn(N, 3), (v) => (activation === 'relu' ? v + Math.sign(v) * 0.5 : v));
      const g = Float64Array.from(randn(M * N, 4));
      const grads = linearBackwardRef(x, w, g, M, K, N, { bias: b, activation });
      const h = 1e-6;
      const numeric = (arr: Float64Array, i: number): number => {
        const keep = arr[i]!;
        arr[i] = keep + h;
        const up = objective(x, w, b, g, M, K, N, activation);
        arr[i] = keep - h;
        const down = objective(x, w, b, g, M, K, N, activation);
        arr[i] = keep;
        return (up - down) / (2 * h);
      };
      for (const [arr, grad] of [
        [x, grads.dx],
        [w, grads.dw],
        [b, grads.db],
      ] as const) {
        for (let i = 0; i < arr.length; i++) expect(Math.abs(numeric(arr, i) - grad[i]!)).toBeLessThan(1e-7);
      }
    });
  }
});

describe('linear backward kernels match the reference', () => {
  // Each (dtype, alignment) compiles pipelines, which lavapipe takes seconds for: a few shapes that cover
  // one row, unaligned tails, vector loads and more rows than one tile.
  const shapes: [number, number, number, DType][] = [
    [1, 1, 1, 'f32'],
    [33, 88, 37, 'f16'],
    [8, 64, 128, 'f32'], // aligned: vector loads along M for dW, along N for dX
    [8, 64, 128, 'f16'],
    [130, 12, 20, 'f32'],
  ];
  for (const [M, K, N, wType] of shapes) {
    {
      it(`${M}x${K} -> ${N}, ${wType} weight: dX, dW, db, and dW/db accumulated`, async () => {
        const xs = randn(M * K, M + K);
        const ws = roundTo(wType, randn(N * K, N));
        const gs = randn(M * N, M * N);
        const ref = linearBackwardRef(xs, ws, gs, M, K, N);
        const x = Tensor.from(gpu, xs, [M, K]);
        const w = Tensor.from(gpu, ws, [N, K], wType);
        // dY with a leading batch dim, as the model passes it.
        const dy = Tensor.from(gpu, gs, [1, M, N]);
        const dx = linearInputGrad(dy, w);
        expect(dx.shape).toEqual([1, M, K]);
        expect(toleranceRatio(await dx.read(), ref.dx, ATOL * Math.sqrt(N), 0)).toBeLessThanOrEqual(1);
        const dw = linearWeightGrad(dy, x);
        expect(dw.shape).toEqual([N, K]);
        expect(toleranceRatio(await dw.read(), ref.dw, ATOL * Math.sqrt(M), 0)).toBeLessThanOrEqual(1);
        const db = linearBiasGrad(dy);
        expect(toleranceRatio(await db.read(), ref.db, ATOL * Math.sqrt(M), 0)).toBeLessThanOrEqual(1);
        // A second call adds to the same tensors.
        expect(linearWeightGrad(dy, x, dw)).toBe(dw);
        expect(linearBiasGrad(dy, db)).toBe(db);
        expect(toleranceRatio(await dw.read(), ref.dw.map((v) => 2 * v), 2 * ATOL * Math.sqrt(M), 0)).toBeLessThanOrEqual(1);
        expect(toleranceRatio(await db.read(), ref.db.map((v) => 2 * v), 2 * ATOL * Math.sqrt(M), 0)).toBeLessThanOrEqual(1);
        for (const t of [x, w, dy, dx, dw, db]) t.dispose();
      });
    }
  }

  it('transposed A runs in every tile configuration, with scalar and vector loads, batched', async () => {
    const choices: VariantChoice[] = [
      { kind: 'tiled', tile: 'tile32' },
      { kind: 'tiled', tile: 'tile64' },
      { kind: 'tiled', tile: 'tile128' },
      { kind: 'tiled', tile: 'tile64', vec: false },
    ];
    for (const [batch, M, K, N] of [
      [2, 12, 9, 20],
      [1, 37, 70, 5],
    ] as const) {
      const as = randn(batch * K * M, M);
      const bs = randn(batch * K * N, N);
      const a = Tensor.from(gpu, as, [batch, K, M]);
      const b = Tensor.from(gpu, bs, [batch, K, N]);
      const want = matmulRef(as, bs, batch, M, K, N, { transposeA: true });
      for (const choice of choices) {
        if (choice.vec === false && M % 4 !== 0) continue;
        const c = matmulWithVariant(choice, a, b, { transposeA: true });
        expect(c.shape).toEqual([batch, M, N]);
        expect(toleranceRatio(await c.read(), want, ATOL * Math.sqrt(K), 0), JSON.stringify(choice)).toBeLessThanOrEqual(1);
        c.dispose();
      }
      expect(() => matmulWithVariant({ kind: 'regblock' }, a, b, { transposeA: true })).toThrow(/tiled kernel only/);
      a.dispose();
      b.dispose();
    }
  });
});

describe('a [K, N] weight over the storage binding limit', () => {
  let small: Gpu;
  beforeAll(async () => {
    small = await testGpu({ maxStorageBufferBindingSize: 4096 });
  });
  afterAll(() => small?.destroy());

  it('is cut along K and the partial products are summed (dX of a large tied embedding)', async () => {
    // W [N = 700, K = 24] f16: 33.6 KB, eight times the binding limit; dX = dY W reads it as [K, N] = [700, 24].
    const [M, K, N] = [5, 24, 700];
    const ws = roundTo('f16', randn(N * K, 1));
    const gs = randn(M * N, 2);
    const w = Tensor.from(small, ws, [N, K], 'f16');
    const dy = Tensor.from(small, gs, [M, N]);
    for (const choice of [{ kind: 'regblock' }, { kind: 'tiled', tile: 'tile32' }] as VariantChoice[]) {
      const dx = matmulWithVariant(choice, dy, w);
      const want = linearBackwardRef(new Float64Array(M * K), ws, gs, M, K, N).dx;
      expect(toleranceRatio(await dx.read(), want, ATOL * Math.sqrt(N), 0), JSON.stringify(choice)).toBeLessThanOrEqual(1);
      dx.dispose();
    }
    w.dispose();
    dy.dispose();
  });
});
