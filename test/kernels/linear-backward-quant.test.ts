/**
 * Input gradients through frozen quantized weights: dX = dY W' with W' = q * f32(s), the kernels reading the
 * [N, K] codes as a [K, N]-layout B (down the columns, each group's scale per element), against the float64
 * reference on the CPU-dequantized weight. Awkward groups (K not a multiple of 32 so every row ends in a short
 * group, an all-zero group and an all-zero row, codes at +-qmax), both schemes, every [K, N]-capable variant
 * with scalar and vector loads, a row view, accumulation, a weight cut along K over the binding limit, and no
 * buffer left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sizeClass } from '../../src/gpu/buffer-pool.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { linearBackwardRef } from '../../src/cpu/linear.js';
import { dequantizeRef, quantizeRef, unpackCodes } from '../../src/cpu/quantize.js';
import { linearInputGrad } from '../../src/kernels/linear-backward.js';
import { matmul, matmulWithVariant } from '../../src/kernels/linear.js';
import type { VariantChoice } from '../../src/kernels/linear-problem.js';
import { QMAX, QUANT_SCHEMES, type QuantScheme } from '../../src/quant/format.js';
import { QuantizedTensor } from '../../src/quant/quantized-tensor.js';
import { Tensor } from '../../src/tensor.js';
import { randn, testGpu, toleranceRatio } from '../helpers.js';
import { awkwardWeight } from '../support/awkward-weight.js';

// Exact weights (W' is representable), so only f32 accumulation over N terms differs from float64.
const ATOL = 1e-4;

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

function dxRef(dy: Float32Array, wq: Float32Array, M: number, K: number, N: number): Float64Array {
  return linearBackwardRef(new Float64Array(M * K), wq, dy, M, K, N).dx;
}

describe('dX through a quantized weight', () => {
  // [N (dY's width, W's rows), K (W's row length)]: K below one group, K = 33 (a one-element last group),
  // K = 72 (vector loads along K, a short last group), K = 96 (whole groups), N past a 64-wide tile.
  const shapes: [number, number, number][] = [
    [3, 5, 7],
    [9, 33, 70],
    [20, 72, 11],
    [130, 96, 64],
  ];
  const choices: VariantChoice[] = [
    { kind: 'regblock' },
    { kind: 'regblock', vec: false },
    { kind: 'tiled', tile: 'tile32' },
    { kind: 'tiled', tile: 'tile64', vec: false },
  ];
  for (const scheme of QUANT_SCHEMES) {
    it(`${scheme}: every [K, N] variant at awkward shapes, codes at +-qmax and zero groups included`, async () => {
      for (const [M, K, N] of shapes) {
        const q = quantizeRef(awkwardWeight(N, K, M + K), N, K, scheme);
        const codes = unpackCodes(q);
        // The weight really has what this test is for: codes at both ends of the range and a zero group.
        expect(codes.subarray(K, K + Math.min(K, 32)).every((c) => Math.abs(c) === QMAX[scheme])).toBe(true);
        const wq = dequantizeRef(q);
        const w = QuantizedTensor.from(gpu, q);
        const gs = randn(M * N, 11 + N);
        const dy = Tensor.from(gpu, gs, [M, N]);
        const want = dxRef(gs, wq, M, K, N);
        for (const choice of choices) {
          if (choice.vec !== false && K % 4 !== 0) continue; // vector loads need K (B's N here) a multiple of 4
          const dx = matmulWithVariant(choice, dy, w);
          expect(dx.shape).toEqual([M, K]);
          expect(toleranceRatio(await dx.read(), want, ATOL * Math.sqrt(N), 0), `${scheme} ${M}x${N}->${K} ${JSON.stringify(choice)}`).toBeLessThanOrEqual(1);
          dx.dispose();
        }
        // The default choice, through the backward helper, with dY's leading batch dim.
        const dy3 = dy.reshape([1, M, N]);
        const dx = linearInputGrad(dy3, w);
        expect(dx.shape).toEqual([1, M, K]);
        expect(toleranceRatio(await dx.read(), want, ATOL * Math.sqrt(N), 0)).toBeLessThanOrEqual(1);
        for (const t of [dx, dy3, dy, w]) t.dispose();
      }
    });
  }

  it('reads a row view of a quantized weight (fused q/k/v parts) and accumulates into a given tensor', async () => {
    const [M, K, N, start] = [6, 40, 9, 5];
    const all = quantizeRef(awkwardWeight(N + start + 3, K, 3), N + start + 3, K, 'q4');
    const whole = QuantizedTensor.from(gpu, all);
    const w = whole.rows(start, N);
    const wq = dequantizeRef(all).subarray(start * K, (start + N) * K);
    const gs = randn(M * N, 5);
    const dy = Tensor.from(gpu, gs, [M, N]);
    const want = dxRef(gs, wq, M, K, N);
    const acc = Tensor.from(gpu, Float32Array.from(want, (v) => -v), [M, K]);
    expect(matmul(dy, w, { accumulate: acc })).toBe(acc);
    // -want + want: what is left is the accumulation error alone.
    expect(toleranceRatio(await acc.read(), new Float64Array(M * K), ATOL * Math.sqrt(N), 0)).toBeLessThanOrEqual(1);
    for (const t of [acc, dy, w, whole]) t.dispose();
  });

  it('leaves no buffer behind: the product reads the codes in place, with no scratch copy', async () => {
    const q = quantizeRef(awkwardWeight(64, 96, 1), 64, 96, 'q8');
    const w = QuantizedTensor.from(gpu, q);
    const dy = Tensor.from(gpu, randn(8 * 64, 2), [8, 64]);
    linearInputGrad(dy, w).dispose(); // compile and warm every cache first
    await gpu.sync();
    const before = gpu.stats();
    for (let i = 0; i < 3; i++) linearInputGrad(dy, w).dispose();
    await gpu.sync();
    const after = gpu.stats();
    expect(after.liveBytes).toBe(before.liveBytes);
    expect(after.liveBuffers).toBe(before.liveBuffers);
    // At no point more than the output itself (dX [8, 96] f32) was live on top: a dequantized copy of W would be 24 KB.
    expect(after.peakLiveBytes).toBeLessThanOrEqual(Math.max(before.peakLiveBytes, before.liveBytes + sizeClass(8 * 96 * 4)));
    for (const t of [dy, w]) t.dispose();
  });
});

describe('a quantized [K, N] weight over the storage binding limit', () => {
  let small: Gpu;
  beforeAll(async () => {
    small = await testGpu({ maxStorageBufferBindingSize: 4096 });
  });
  afterAll(() => small?.destroy());

  for (const scheme of ['q8', 'q4'] as QuantScheme[]) {
    it(`${scheme}: is cut along its rows, codes and scales alike, and the partial products are summed`, async () => {
      // W [N = 600, K = 40]: q8 rows are 64 bytes (38 KB of codes), q4 32 bytes; scales 4 bytes a row.
      const [M, K, N] = [5, 40, 600];
      const q = quantizeRef(awkwardWeight(N, K, 9), N, K, scheme);
      const w = QuantizedTensor.from(small, q);
      const gs = randn(M * N, 2);
      const dy = Tensor.from(small, gs, [M, N]);
      const want = dxRef(gs, dequantizeRef(q), M, K, N);
      for (const choice of [{ kind: 'regblock' }, { kind: 'tiled', tile: 'tile32' }] as VariantChoice[]) {
        const dx = matmulWithVariant(choice, dy, w);
        expect(toleranceRatio(await dx.read(), want, ATOL * Math.sqrt(N), 0), JSON.stringify(choice)).toBeLessThanOrEqual(1);
        dx.dispose();
      }
      w.dispose();
      dy.dispose();
    });
  }
});
