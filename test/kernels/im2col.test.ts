import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { im2colCpu } from '../../src/cpu/im2col.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { im2col } from '../../src/kernels/im2col.js';
import { Tensor } from '../../src/tensor.js';
import { randn, roundTo, testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

// im2col moves values, so results are exact.
describe('im2col', () => {
  for (const [shape, patch] of [
    [[1, 3, 28, 28], 14],
    [[2, 3, 14, 42], 14],
    [[1, 1, 1, 1], 1],
    [[2, 2, 7, 9], 3], // 7x9 is not a multiple of 3: the last pixel column/rows are ignored, as by the conv
    [[1, 3, 33, 33], 4],
  ] as const) {
    for (const dtype of ['f32', 'f16'] as const) {
      it(`${dtype} [${shape.join(', ')}] patch ${patch}`, async (ctx) => {
        if (dtype === 'f16' && !gpu.caps.f16) ctx.skip();
        const n = shape.reduce((a: number, b: number) => a * b, 1);
        const pv = roundTo(dtype, randn(n, n));
        const base = Tensor.from(gpu, [0, 0, 0, ...pv], [n + 3], dtype);
        const pixels = base.rows(3, n).reshape([...shape]);
        const out = im2col(pixels, patch);
        const [b, c, h, w] = shape;
        const patches = Math.floor(h / patch) * Math.floor(w / patch);
        expect(out.shape).toEqual([b, patches, c * patch * patch]);
        expect(Array.from(await out.read())).toEqual(Array.from(roundTo(dtype, im2colCpu(pv, shape, patch))));
        for (const t of [base, pixels, out]) t.dispose();
      });
    }
  }

  it('puts pixel (c, py*p+ky, px*p+kx) at [patch py*PW+px, column (c*p+ky)*p+kx]', async () => {
    // Pixel values encode their own coordinates.
    const [c, h, w, p] = [3, 4, 6, 2];
    const pv = new Float32Array(c * h * w);
    for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) pv[(ch * h + y) * w + x] = ch * 100 + y * 10 + x;
    const pixels = Tensor.from(gpu, pv, [1, c, h, w]);
    const out = await im2col(pixels, p).read();
    const cols = c * p * p;
    // patch (py=1, px=2) is number 1*3+2 = 5; channel 2, ky=1, kx=0 is column (2*2+1)*2+0 = 10
    expect(out[5 * cols + 10]).toBe(2 * 100 + (1 * 2 + 1) * 10 + (2 * 2 + 0));
    pixels.dispose();
  });

  it('rejects bad shapes and patch sizes clearly', () => {
    const x = Tensor.empty(gpu, [1, 3, 8, 8]);
    const x3 = x.reshape([3, 8, 8]);
    expect(() => im2col(x3, 2)).toThrow(/\[B, C, H, W\]/);
    x3.dispose();
    expect(() => im2col(x, 0)).toThrow(/patch/);
    expect(() => im2col(x, 9)).toThrow(/patch/);
    expect(() => im2col(x, 2.5)).toThrow(/patch/);
    x.dispose();
  });
});
