import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repetitionPenaltyCpu, scaleCpu, setLogitsCpu } from '../../src/cpu/logits.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { repetitionPenalty, scaleInPlace, setLogits } from '../../src/kernels/logits.js';
import { Tensor } from '../../src/tensor.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/util/half.js';
import { randn, rng, testGpu, toleranceRatio } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

/** Token lists with repeats, -1 padding and out-of-range ids (skipped by contract). */
function idLists(rows: number, n: number, width: number, seed: number): Int32Array {
  const r = rng(seed);
  const ids = Int32Array.from({ length: rows * n }, () => Math.floor(r() * Math.min(width, 40)));
  for (let row = 0; row < rows; row++) {
    if (n >= 4) ids.set([-1, width, ids[row * n]!], row * n + n - 3); // padding, out of range, a repeat
  }
  return ids;
}

/** Logits with negative, positive, -Infinity and zero scores at the listed ids. */
function scores(rows: number, width: number, seed: number): Float32Array {
  const x = randn(rows * width, seed, 3);
  for (let i = 0; i < x.length; i += 17) x[i] = -Infinity;
  for (let i = 5; i < x.length; i += 23) x[i] = 0;
  return x;
}

/** Infinities and NaN must match exactly, finite values within rtol. */
function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, rtol: number): void {
  expect(got.length).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    const [g, r] = [got[i]!, ref[i]!];
    if (Number.isFinite(r)) {
      if (!(Math.abs(g - r) <= rtol * Math.abs(r))) expect.fail(`element ${i}: got ${g}, expected ${r} (rtol ${rtol})`);
    } else expect(g).toBe(r);
  }
}

// Tolerances: multiplication is exact (one correctly rounded op, compared with the rounded reference); WGSL's
// f32 division is accurate to 2.5 ulp, so penalised positive scores get rtol 3e-7.
describe('repetitionPenalty / setLogits', () => {
  for (const width of [1, 7, 33, 88, 257, 1001, 50304]) {
    it(`rows of ${width}`, async () => {
      const rows = 3;
      const n = width === 1 ? 2 : 12;
      const lv = scores(rows, width, width);
      const ids = idLists(rows, n, width, width + 1);
      // logits as a view at an odd offset, ids as a view too
      const base = Tensor.from(gpu, [1, 2, 3, ...lv], [3 + lv.length]);
      const logits = base.rows(3, lv.length).reshape([rows, width]);
      const idsBase = Tensor.from(gpu, [9, ...ids], [1 + ids.length], 'i32');
      const idsView = idsBase.rows(1, ids.length).reshape([rows, n]);
      repetitionPenalty(logits, idsView, 1.3);
      const ref = repetitionPenaltyCpu(lv, rows, ids, Math.fround(1.3));
      expectClose(await logits.read(), ref, 3e-7);

      logits.write(lv);
      setLogits(logits, idsView, -Infinity);
      expect(Array.from(await logits.read())).toEqual(Array.from(setLogitsCpu(lv, rows, ids, -Infinity)));
      setLogits(logits, idsView, 2.5);
      expect(Array.from(await logits.read())).toEqual(Array.from(setLogitsCpu(lv, rows, ids, 2.5)));
      for (const t of [base, logits, idsBase, idsView]) t.dispose();
    });
  }

  it('penalises each distinct id once, however often it repeats', async () => {
    const logits = Tensor.from(gpu, [2, -2, 4, 8], [1, 4]);
    const ids = Tensor.from(gpu, [0, 1, 0, 0, 1, -1, 2, 2], [1, 8], 'i32');
    repetitionPenalty(logits, ids, 2);
    expect(Array.from(await logits.read())).toEqual([1, -4, 2, 8]);
    logits.dispose();
    ids.dispose();
  });

  it('handles long lists (a 600-token history with repeats) and empty lists', async () => {
    const width = 1001;
    const lv = scores(2, width, 5);
    const ids = Int32Array.from({ length: 2 * 600 }, (_, i) => (i * 7919) % 700);
    const logits = Tensor.from(gpu, lv, [2, width]);
    const idsT = Tensor.from(gpu, ids, [2, 600], 'i32');
    repetitionPenalty(logits, idsT, 1.5);
    const ref = repetitionPenaltyCpu(lv, 2, ids, 1.5);
    const got = await logits.read();
    expectClose(got, ref, 3e-7);
    const none = Tensor.empty(gpu, [2, 0], 'i32');
    repetitionPenalty(logits, none, 1.5);
    expect(Array.from(await logits.read())).toEqual(Array.from(got));
    for (const t of [logits, idsT, none]) t.dispose();
  });

  it('rejects bad input clearly', () => {
    const logits = Tensor.empty(gpu, [2, 10]);
    const ids = Tensor.from(gpu, [0, 1, 2, 3], [2, 2], 'i32');
    const ids3 = Tensor.from(gpu, [0, 1, 2], [3, 1], 'i32');
    const fids = Tensor.empty(gpu, [2, 2]);
    expect(() => repetitionPenalty(logits, ids, 0)).toThrow(/penalty/);
    expect(() => repetitionPenalty(logits, ids, NaN)).toThrow(/penalty/);
    expect(() => repetitionPenalty(logits, ids3, 1.2)).toThrow(/one row per logits row/);
    expect(() => setLogits(logits, fids, 0)).toThrow(/i32/);
    const flat = logits.reshape([20]);
    expect(() => setLogits(flat, ids, 0)).toThrow(/f32 \[R, V\]/);
    for (const t of [logits, ids, ids3, fids, flat]) t.dispose();
  });
});

describe('scaleInPlace', () => {
  for (const n of [1, 7, 33, 88, 257, 1001, 50304]) {
    it(`f32 and f16, ${n} elements`, async (ctx) => {
      const xv = scores(1, n, n);
      const x = Tensor.from(gpu, xv, [1, n]);
      scaleInPlace(x, 1 / 0.7);
      // One correctly rounded f32 multiplication: exact against the rounded reference.
      expect(Array.from(await x.read())).toEqual(Array.from(scaleCpu(xv, Math.fround(1 / 0.7)), Math.fround));
      x.dispose();
      if (!gpu.caps.f16) ctx.skip();
      const hv = Float32Array.from(xv, (v) => f16BitsToF32(f32ToF16Bits(v)));
      const h = Tensor.from(gpu, hv, [n], 'f16');
      const view = h.rows(n > 1 ? 1 : 0, n > 1 ? n - 1 : 1);
      scaleInPlace(view, 0.5);
      const got = await h.read();
      // Scaling by 0.5 is exact in f16 except where it underflows into subnormals (rounding: 1 f16 ulp).
      const ref = Float32Array.from(hv, (v, i) => (i >= (n > 1 ? 1 : 0) ? v * 0.5 : v));
      expect(toleranceRatio(got.filter(Number.isFinite), ref.filter(Number.isFinite), 6e-8, 0)).toBeLessThanOrEqual(1);
      h.dispose();
      view.dispose();
    });
  }
});
