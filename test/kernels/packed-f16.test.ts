/**
 * f16 weights on a device without shader-f16 (headless Chromium's SwiftShader, NVIDIA through Dawn's Vulkan
 * back-end): linear and embedding read them as packed u32 pairs, so the model keeps half-size weights there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { copy, packF16Into } from '../../src/kernels/copy.js';
import { embedding } from '../../src/kernels/embedding.js';
import type { VariantKind } from '../../src/kernels/linear-problem.js';
import { linearWithVariant } from '../../src/kernels/linear.js';
import { embeddingCpu } from '../../src/cpu/embedding.js';
import { linearRef } from '../../src/cpu/linear.js';
import { Tensor } from '../../src/tensor.js';
import { f16BitsToF32, f32ArrayToF16, f32ToF16Bits } from '../../src/util/half.js';
import { randn, testGpu, toleranceRatio } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ disableF16: true });
});
afterAll(() => gpu?.destroy());

/** Values exactly representable in f16, so the reference sees the weights the GPU sees. */
function halfValues(n: number, seed: number): Float32Array {
  return randn(n, seed).map((v) => f16BitsToF32(f32ToF16Bits(v)));
}

describe('f16 weights without shader-f16', () => {
  it('the device really lacks the feature, and f16 arithmetic kernels say so clearly', () => {
    expect(gpu.caps.f16).toBe(false);
    const t = Tensor.from(gpu, [1, 2, 3], [3], 'f16');
    expect(() => copy(t)).toThrow(/shader-f16/);
    t.dispose();
  });

  const kinds: VariantKind[] = ['gemv-rows', 'gemv-coop', 'regblock', 'tiled'];
  for (const kind of kinds) {
    for (const [M, K, N] of [
      [1, 88, 33],
      [7, 33, 17], // K not a multiple of 4: the scalar (non-vector) path
      [8, 64, 40], // GEMV kinds take at most 8 rows
    ] as const) {
      it(`linear ${kind} ${M}x${K}->${N} with f16 weights matches the reference`, async () => {
        const x = randn(M * K, 1);
        const w = halfValues(N * K, 2);
        const b = randn(N, 3);
        const tx = Tensor.from(gpu, x, [M, K]);
        const tw = Tensor.from(gpu, w, [N, K], 'f16');
        const tb = Tensor.from(gpu, b, [N]);
        const y = linearWithVariant({ kind }, tx, tw, tb, { activation: 'gelu' });
        const ref = linearRef(x, w, M, K, N, { bias: b, activation: 'gelu' });
        // f32 accumulation over K products: 1e-4 * sqrt(K) relative to unit-scale values.
        expect(toleranceRatio(await y.read(), ref, 1e-4 * Math.sqrt(K), 1e-5)).toBeLessThanOrEqual(1);
        for (const t of [tx, tw, tb, y]) t.dispose();
      });
    }
  }

  it('packs f32 into f16 bits on the GPU exactly as the host rounds them (weight loading)', async () => {
    // Ties to even both ways, just above and below ties, subnormals, the largest half, overflow to infinity, -0.
    const edge = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20, 1 - 2 ** -12, 2 ** -24, 3 * 2 ** -26, 2 ** -25, 65504, 65519, 65520, -1e6, -0, 0.1, -7.25];
    const values = Float32Array.from([...edge, ...randn(1000, 3).map((v) => v * 0.02)]);
    const x = Tensor.from(gpu, values, [values.length]);
    const y = Tensor.empty(gpu, [values.length + 10], 'f16');
    y.write(new Uint16Array(values.length + 10).fill(0x7777));
    // Into the middle of y, at a 4-byte but not 256-byte aligned offset; the halves around it stay untouched.
    packF16Into(x, values.length, y.buffer, y.byteOffset + 6 * 2);
    const got = await y.readF16Bits();
    expect(Array.from(got.subarray(6, 6 + values.length))).toEqual(Array.from(f32ArrayToF16(values)));
    expect(Array.from(got.subarray(0, 6)).every((h) => h === 0x7777)).toBe(true);
    expect(Array.from(got.subarray(6 + values.length)).every((h) => h === 0x7777)).toBe(true);
    expect(() => packF16Into(x, 3, y.buffer, y.byteOffset)).toThrow(/even/);
    expect(() => packF16Into(x, 2, y.buffer, y.byteOffset + 2)).toThrow(/4-byte/);
    x.dispose();
    y.dispose();
  });

  it('embedding gathers rows of an f16 table into f32, exactly, also across split bindings', async () => {
    const small = await testGpu({ disableF16: true, maxStorageBufferBindingSize: 4096 });
    for (const g of [gpu, small]) {
      const V = 301;
      const D = 33;
      const table = halfValues(V * D, 4);
      const idsHost = [0, 300, 7, -1, 150, 301, 33];
      const ids = Tensor.from(g, idsHost, [idsHost.length], 'i32');
      const tt = Tensor.from(g, table, [V, D], 'f16');
      const out = embedding(ids, tt);
      expect(Array.from(await out.read())).toEqual(Array.from(embeddingCpu(idsHost.map((i) => (i >= 0 && i < V ? i : -1)), table, D)));
      for (const t of [ids, tt, out]) t.dispose();
    }
    small.destroy();
  });
});
