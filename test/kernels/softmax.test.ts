import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logSoftmaxReference, softmaxReference } from '../../src/cpu/softmax.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { logSoftmax, softmax } from '../../src/kernels/softmax.js';
import { Tensor, type DType } from '../../src/tensor.js';
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/util/half.js';
import { randn, testGpu, toleranceRatio } from '../helpers.js';

/*
 * Against the f64 reference in src/cpu/softmax.ts, fed with the values the GPU sees (f16 inputs rounded
 * on the host). Tolerances, as |gpu - ref| <= atol + rtol * |ref|:
 * - softmax, f32 output: atol 1e-9, rtol 2e-5 (exp and an f32 sum over up to 50304 terms);
 * - softmax, f16 output: atol 1e-7, rtol 1e-3 (one f16 rounding; subnormals below 6e-5 have 6e-8 steps);
 * - logSoftmax (f32 output): atol 2e-5, rtol 1e-6 (outputs reach about -20; log of an f32 sum).
 */
const SOFTMAX_TOL: Record<'f32' | 'f16', [number, number]> = { f32: [1e-9, 2e-5], f16: [1e-7, 1e-3] };
const LOG_TOL: [number, number] = [2e-5, 1e-6];
/** float32's lowest value: what HF puts into additive masks. */
const F32_MIN = -3.4028234663852886e38;

let gpu: Gpu;
let baselineLiveBytes = 0;
beforeAll(async () => {
  gpu = await testGpu();
  await gpu.sync();
  baselineLiveBytes = gpu.stats().liveBytes;
});
afterAll(() => gpu?.destroy());

function asStored(x: Float32Array, dtype: DType): Float32Array {
  return dtype === 'f16' ? f16ArrayToF32(f32ArrayToF16(x)) : x;
}

/** Random rows (scale 4, so rows are far from uniform) with `specials` written at the start of row 0. */
function rowsOf(shape: readonly number[], seed: number, specials: readonly number[] = []): Float32Array {
  const x = randn(shape.reduce((a, b) => a * b, 1), seed, 4);
  x.set(specials.slice(0, x.length));
  return x;
}

describe('softmax', () => {
  const shapes: (readonly number[])[] = [[5, 1], [2, 3, 7], [3, 1001], [2, 50304], [1001]];
  for (const dtype of ['f32', 'f16'] as const) {
    it(`matches the reference over awkward widths (${dtype})`, async () => {
      for (const [n, shape] of shapes.entries()) {
        const host = asStored(rowsOf(shape, 10 + n), dtype);
        const x = Tensor.from(gpu, host, shape, dtype);
        const y = softmax(x);
        expect(y.shape).toEqual(shape);
        expect(y.dtype).toBe(dtype);
        const ref = softmaxReference(host, shape[shape.length - 1]!);
        expect(toleranceRatio(await y.read(), ref, ...SOFTMAX_TOL[dtype]), `[${shape.join(', ')}]`).toBeLessThanOrEqual(1);
        x.dispose();
        y.dispose();
      }
    });
  }

  it('broadcasts masks over leading rows: [V], [1, V], trailing [Lq, V] and f16 masks', async () => {
    const shape = [2, 3, 1001];
    const host = rowsOf(shape, 20);
    const x = Tensor.from(gpu, host, shape);
    const maskShapes: (readonly number[])[] = [[1001], [1, 1001], [3, 1001], [2, 3, 1001], [1, 1, 3, 1001]];
    for (const [n, mshape] of maskShapes.entries()) {
      for (const mdtype of ['f32', 'f16'] as const) {
        const mhost = asStored(randn(mshape.reduce((a, b) => a * b, 1), 30 + n, 2), mdtype);
        for (let j = 0; j < mhost.length; j += 7) mhost[j] = mdtype === 'f16' ? -Infinity : F32_MIN; // masked columns
        const mask = Tensor.from(gpu, mhost, mshape, mdtype);
        const y = softmax(x, { mask });
        const ref = softmaxReference(host, 1001, mhost);
        expect(toleranceRatio(await y.read(), ref, ...SOFTMAX_TOL.f32), `mask [${mshape.join(', ')}] ${mdtype}`).toBeLessThanOrEqual(1);
        for (let j = 0; j < 1001; j += 7) expect(ref[j]).toBe(0);
        mask.dispose();
        y.dispose();
      }
    }
    x.dispose();
  });

  it('handles -Infinity, huge values and fully masked rows without NaN', async () => {
    const width = 7;
    const host = new Float32Array([
      ...[-Infinity, 0, 1, -Infinity, 2, 3, -Infinity], // some -inf: exactly 0 there
      ...[3e38, -3e38, 1e30, -1e30, 0, 3e38, 1], // huge values: two equal maxima share the mass
      ...[-Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity], // all masked: uniform
      ...[F32_MIN, F32_MIN, F32_MIN, F32_MIN, F32_MIN, F32_MIN, F32_MIN], // HF's mask value: uniform too
      ...[-1e4, -2e4, -1e4, -3e4, -1e4, -5e4, -1e4], // large finite negatives stay ordinary scores
    ]);
    const x = Tensor.from(gpu, host, [5, width]);
    const probs = softmax(x);
    const y = await probs.read();
    probs.dispose();
    expect(y.every(Number.isFinite)).toBe(true);
    expect(toleranceRatio(y, softmaxReference(host, width), ...SOFTMAX_TOL.f32)).toBeLessThanOrEqual(1);
    expect([y[0], y[3], y[6]]).toEqual([0, 0, 0]);
    expect(y[7]).toBeCloseTo(0.5, 6);
    expect(y[12]).toBeCloseTo(0.5, 6);
    for (let j = 14; j < 28; j++) expect(y[j]).toBeCloseTo(1 / 7, 6);
    expect(y[28]).toBeCloseTo(0.25, 6);

    const ls = logSoftmax(x);
    const l = await ls.read();
    expect(ls.dtype).toBe('f32');
    expect([l[0], l[3], l[6], l[14], l[20]]).toEqual([-Infinity, -Infinity, -Infinity, -Infinity, -Infinity]);
    expect(l[7]).toBeCloseTo(-Math.log(2), 5);
    x.dispose();
    ls.dispose();
    await gpu.sync();
  });

  it('rejects bad input and masks clearly, leaks nothing, and returns empty tensors for empty input', async () => {
    await gpu.sync();
    const before = gpu.stats().liveBytes;
    const x = Tensor.empty(gpu, [2, 3, 7]);
    const wrong = Tensor.empty(gpu, [2, 7]);
    const wider = Tensor.empty(gpu, [8]);
    const ints = Tensor.empty(gpu, [3, 7], 'i32');
    const scalar = Tensor.empty(gpu, []);
    expect(() => softmax(x, { mask: wrong })).toThrow(/mask \[2, 7\] must match the trailing dimensions of x \[2, 3, 7\]/);
    expect(() => softmax(x, { mask: wider })).toThrow(/must match the trailing dimensions/);
    expect(() => softmax(x, { mask: ints })).toThrow(/mask must be f32 or f16, got i32/);
    expect(() => softmax(ints)).toThrow(/x must be f32 or f16, got i32/);
    expect(() => logSoftmax(scalar)).toThrow(/at least one dimension/);
    const empty = Tensor.empty(gpu, [0, 7]);
    const e = softmax(empty);
    expect(e.shape).toEqual([0, 7]);
    for (const t of [x, wrong, wider, ints, scalar, empty, e]) t.dispose();
    await gpu.sync();
    expect(gpu.stats().liveBytes).toBe(before);
  });
});

describe('logSoftmax', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    it(`matches the reference with f32 output (${dtype} input)`, async () => {
      for (const [n, shape] of ([[4, 1], [3, 7], [2, 1001], [2, 50304]] as const).entries()) {
        const host = asStored(rowsOf(shape, 40 + n, [-Infinity]), dtype);
        const x = Tensor.from(gpu, host, shape, dtype);
        const y = logSoftmax(x);
        expect(y.dtype).toBe('f32');
        const got = await y.read();
        expect(got[0]).toBe(-Infinity);
        expect(toleranceRatio(got.subarray(1), logSoftmaxReference(host, shape[1]).subarray(1), ...LOG_TOL), `[${shape.join(', ')}]`).toBeLessThanOrEqual(1);
        x.dispose();
        y.dispose();
      }
    });
  }
});

describe('softmax memory', () => {
  it('returns to the baseline of live GPU bytes', async () => {
    await gpu.sync();
    expect(gpu.stats().liveBytes).toBe(baselineLiveBytes);
  });
});
