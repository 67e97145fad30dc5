import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crossEntropyCpu } from '../../src/cpu/cross-entropy.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { crossEntropy, crossEntropyBackward, shiftLabels } from '../../src/kernels/cross-entropy.js';
import { Tensor } from '../../src/tensor.js';
import { randn, testGpu, toleranceRatio } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

describe('cross-entropy', () => {
  it("shifts labels as HF's causal-LM loss does", () => {
    expect(Array.from(shiftLabels([[-100, 5, 6, 7], [-100, -100, 9, 1]]))).toEqual([5, 6, 7, -100, -100, 9, 1, -100]);
  });

  it('the float64 reference gradient equals central finite differences', () => {
    const V = 5;
    const x = Float64Array.from(randn(3 * V, 1, 2));
    const t = [2, -100, 4];
    const { dlogits } = crossEntropyCpu(x, V, t);
    const h = 1e-6;
    for (let i = 0; i < x.length; i++) {
      const keep = x[i]!;
      x[i] = keep + h;
      const up = crossEntropyCpu(x, V, t).loss;
      x[i] = keep - h;
      const down = crossEntropyCpu(x, V, t).loss;
      x[i] = keep;
      expect(Math.abs((up - down) / (2 * h) - dlogits[i]!)).toBeLessThan(1e-8);
    }
  });

  for (const [rows, V] of [
    [1, 1],
    [7, 33],
    [38, 1024],
    [3, 50304],
  ] as const) {
    it(`${rows} rows of ${V} logits: loss, ignored rows and the gradient`, async () => {
      // Logits of a trained-looking scale (std 3) with one large value per row.
      const xs = randn(rows * V, rows + V, 3);
      const targets = Int32Array.from({ length: rows }, (_, r) => (r % 3 === 1 ? -100 : (r * 7919) % V));
      if (targets.every((v) => v === -100)) targets[0] = 0;
      const logits = Tensor.from(gpu, xs, [rows, V]);
      const t = Tensor.from(gpu, targets, [rows], 'i32');
      const out = crossEntropy(logits, t, targets);
      const ref = crossEntropyCpu(xs, V, targets);
      // f32 log-sum-exp over V terms: about 1e-7 relative per row.
      expect(Math.abs((await out.loss.read())[0]! - ref.loss)).toBeLessThan(2e-6 * Math.max(1, ref.loss));
      const grad = Tensor.from(gpu, [0.5], [1]);
      const dx = crossEntropyBackward(logits, t, out, grad);
      expect(toleranceRatio(await dx.read(), ref.dlogits.map((v) => 0.5 * v), 1e-7, 1e-5)).toBeLessThanOrEqual(1);
      for (const x of [logits, t, out.loss, out.stats, grad, dx]) x.dispose();
    });
  }

  it('rejects targets outside the vocabulary and a batch whose targets are all ignored', () => {
    const logits = Tensor.from(gpu, randn(8, 1), [2, 4]);
    const t = Tensor.from(gpu, [1, 4], [2], 'i32');
    expect(() => crossEntropy(logits, t, Int32Array.of(1, 4))).toThrow(/target 4 outside the vocabulary/);
    expect(() => crossEntropy(logits, t, Int32Array.of(-100, -100))).toThrow(/every target is ignored/);
    logits.dispose();
    t.dispose();
  });
});
