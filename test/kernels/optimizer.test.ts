import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adamwStepCpu, clipCoefficientCpu } from '../../src/cpu/optimizer.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { zeros } from '../../src/kernels/fill.js';
import { adamwStep, gradNorm } from '../../src/kernels/optimizer.js';
import { Tensor } from '../../src/tensor.js';
import { randn, testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

describe('optimizer kernels', () => {
  it('global gradient norm and the clip coefficient over tensors of many sizes', async () => {
    const sizes = [1, 7, 8192, 8193, 40000];
    const host = sizes.map((n, i) => randn(n, i + 1, 0.1));
    const grads = host.map((h, i) => Tensor.from(gpu, h, [sizes[i]!]));
    for (const maxNorm of [1, 1e6, 0]) {
      const norm = gradNorm(gpu, grads, maxNorm);
      const [n, coef] = await norm.read();
      const ref = clipCoefficientCpu(host, maxNorm);
      expect(Math.abs(n! - ref.norm) / ref.norm).toBeLessThan(1e-6);
      expect(Math.abs(coef! - ref.coef) / ref.coef).toBeLessThan(1e-6);
      norm.dispose();
    }
    for (const g of grads) g.dispose();
  });

  it('AdamW steps with clipping, weight decay and bias correction follow the float64 reference', async () => {
    const n = 1000;
    const o = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
    const p0 = randn(n, 3);
    const state = { param: Float64Array.from(p0), m: new Float64Array(n), v: new Float64Array(n) };
    const param = Tensor.from(gpu, p0, [n]);
    const m = zeros(gpu, [n]);
    const v = zeros(gpu, [n]);
    const gMax = new Float64Array(n);
    for (let step = 1; step <= 3; step++) {
      // Gradients of all scales, some below eps (where AdamW's step depends on their size).
      const gh = Float32Array.from(randn(n, 10 + step), (x, i) => x * 10 ** ((i % 12) - 9));
      const grad = Tensor.from(gpu, gh, [n]);
      const norm = gradNorm(gpu, [grad], 1);
      adamwStep(param, grad, m, v, norm, { ...o, step });
      // The reference takes the device's clip coefficient (checked against float64 above) and the clipped f32
      // gradient, so what remains is the step's own arithmetic.
      const coef = (await norm.read())[1]!;
      expect(Math.abs(coef - clipCoefficientCpu([gh], 1).coef)).toBeLessThan(1e-6 * coef);
      const clipped = Float64Array.from(gh, (x) => Math.fround(x * coef));
      clipped.forEach((x, i) => (gMax[i] = Math.max(gMax[i]!, Math.abs(x))));
      adamwStepCpu(state, clipped, { ...o, step });
      grad.dispose();
      norm.dispose();
    }
    // f32 arithmetic: a few ulps of each parameter (4e-7 relative) and of the moments' terms (m and v sum
    // gradients of both signs, so their error scales with the gradients, not with what is left of them).
    const within = (got: ArrayLike<number>, want: Float64Array, scale: (i: number) => number) =>
      Array.from(got).every((x, i) => Math.abs(x - want[i]!) <= 4e-7 * Math.abs(want[i]!) + scale(i));
    expect(within(await param.read(), state.param, () => 1e-12)).toBe(true);
    expect(within(await m.read(), state.m, (i) => 4e-7 * gMax[i]!)).toBe(true);
    expect(within(await v.read(), state.v, (i) => 4e-7 * gMax[i]! ** 2)).toBe(true);
    for (const t of [param, m, v]) t.dispose();
  });
});
