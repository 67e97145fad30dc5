import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { argmaxCpu } from '../../src/cpu/argmax.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { argmax, argmaxWith } from '../../src/kernels/argmax.js';
import { Tensor } from '../../src/tensor.js';
import { randn, rng, roundTo, testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

/** Random rows with planted trouble: the maximum repeated (ties), -Infinity runs, a row of -Infinity. */
function logits(rows: number, width: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = randn(rows * width, seed, 4);
  for (let row = 0; row < rows; row++) {
    const at = (i: number) => row * width + i;
    if (row % 4 === 1 && width > 1) {
      // Ties: the same maximum at several places, the first one somewhere in the middle.
      const first = Math.floor(r() * (width - 1));
      for (const i of [first, width - 1, Math.floor((first + width) / 2)]) x[at(i)] = 50;
    }
    if (row % 4 === 2) for (let i = 0; i < width; i += 3) x[at(i)] = -Infinity;
    if (row % 4 === 3) for (let i = 0; i < width; i++) x[at(i)] = -Infinity;
  }
  return x;
}

// Argmax is exact: indices must equal the reference's.
describe('argmax', () => {
  for (const width of [1, 7, 33, 88, 257, 1001, 8192, 8193, 50304]) {
    for (const dtype of ['f32', 'f16'] as const) {
      it(`${dtype} rows of ${width}`, async (ctx) => {
        if (dtype === 'f16' && !gpu.caps.f16) ctx.skip();
        const rows = width > 10000 ? 4 : 9;
        const xv = roundTo(dtype, logits(rows, width, width));
        // A view that starts one row and one element into its buffer.
        const base = Tensor.from(gpu, [0, ...new Array<number>(width).fill(1e4), ...xv], [1 + (rows + 1) * width], dtype);
        const x = base.rows(1 + width, rows * width).reshape([rows, width]);
        // The default variant of this adapter, then both workgroup sizes explicitly (GPUs use 256, lavapipe 64).
        for (const idx of [argmax(x), argmaxWith(64, x), argmaxWith(256, x)]) {
          expect(idx.dtype).toBe('i32');
          expect(idx.shape).toEqual([rows]);
          expect(Array.from(await idx.read())).toEqual(Array.from(argmaxCpu(xv, rows)));
          idx.dispose();
        }
        for (const t of [base, x]) t.dispose();
      });
    }
  }

  it('finds the first of ties across chunks, NaN as the largest value, -0 equal to +0', async () => {
    const width = 50304;
    const rows: number[][] = [];
    const row = (f: (x: Float32Array) => void) => {
      const x = new Float32Array(width).fill(-1);
      f(x);
      rows.push(Array.from(x));
    };
    row((x) => {
      x[40000] = 7;
      x[4097] = 7; // in the second chunk of the two-pass reduction
      x[50303] = 7;
    });
    row((x) => {
      x[30000] = NaN;
      x[20000] = Infinity;
      x[31000] = NaN;
    });
    row((x) => {
      x.fill(-0);
      x[12345] = 0; // +0 ties with -0: the first element wins
    });
    row((x) => x.fill(-Infinity));
    row((x) => {
      x[50303] = 1e-30;
    });
    const flat = Float32Array.from(rows.flat());
    const t = Tensor.from(gpu, flat, [rows.length, width]);
    const [a, b] = [argmax(t), argmaxWith(256, t)];
    const got = Array.from(await a.read());
    expect(got).toEqual([4097, 30000, 0, 0, 50303]);
    expect(Array.from(await b.read())).toEqual(got);
    expect(got).toEqual(Array.from(argmaxCpu(flat, rows.length)));
    for (const x of [t, a, b]) x.dispose();
    if (!gpu.caps.f16) return;
    // The same rows in f16 (every value here is exact in f16): NaN and ties decided from the half bits.
    const h = Tensor.from(gpu, flat, [rows.length, width], 'f16');
    const ih = argmax(h);
    expect(Array.from(await ih.read())).toEqual(got);
    h.dispose();
    ih.dispose();
  });

  it('handles [1, 5*50304] (beams flattened) and many short rows', async () => {
    const wide = randn(5 * 50304, 77);
    wide[200001] = 99;
    const t = Tensor.from(gpu, wide, [1, wide.length]);
    const it = argmax(t);
    expect(Array.from(await it.read())).toEqual([200001]);
    const many = randn(3000 * 5, 78);
    const m = Tensor.from(gpu, many, [3000, 5]);
    const im = argmax(m);
    expect(Array.from(await im.read())).toEqual(Array.from(argmaxCpu(many, 3000)));
    for (const x of [t, it, m, im]) x.dispose();
  });

  it('rejects bad input clearly and leaks nothing', async () => {
    const a = Tensor.empty(gpu, [3]);
    const e = Tensor.empty(gpu, [2, 0]);
    const i = Tensor.empty(gpu, [2, 2], 'i32');
    expect(() => argmax(a)).toThrow(/\[R, V\]/);
    expect(() => argmax(e)).toThrow(/empty/);
    expect(() => argmax(i)).toThrow(/f32 or f16/);
    for (const t of [a, e, i]) t.dispose();
    await gpu.sync();
    const before = gpu.stats().liveBytes;
    const x = Tensor.from(gpu, randn(2 * 20000, 5), [2, 20000]);
    for (let k = 0; k < 5; k++) argmax(x).dispose();
    x.dispose();
    await gpu.sync();
    expect(gpu.stats().liveBytes).toBe(before);
  });
});
