import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addCpu, erf, geluBackwardCpu, geluCpu, mulCpu, reluBackwardCpu, reluCpu } from '../../src/cpu/elementwise.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { add, gelu, geluBackward, mul, relu, reluBackward } from '../../src/kernels/elementwise.js';
import { Tensor, type DType } from '../../src/tensor.js';
import { randn, roundTo, testGpu, toleranceRatio } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

/** Tolerances: f32 add/mul/relu are single correctly rounded ops, so exact; f16 outputs may differ by the final
 *  rounding to f16 (one f16 ulp: rtol 2^-10, atol one subnormal step). */
const tol = (dtype: DType) => (dtype === 'f16' ? { atol: 6e-8, rtol: 2 ** -10 } : { atol: 0, rtol: 0 });

/** A view of `size` elements at element offset `offset` inside a larger tensor (so offsets are exercised). */
function offsetView(data: Float32Array, offset: number, dtype: DType): { base: Tensor; view: Tensor } {
  const padded = new Float32Array(offset + data.length + 3);
  padded.set(data, offset);
  const base = Tensor.from(gpu, padded, [padded.length], dtype);
  return { base, view: base.reshape([padded.length]).rows(offset, data.length) };
}

const shapes: number[][] = [[1], [7], [33], [88], [4, 257], [1001], [3, 5, 12]];

describe('add / mul', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const shape of shapes) {
      it(`${dtype} ${shape.join('x')}: same shape, broadcast over the last dim, and scalar`, async (ctx) => {
        if (dtype === 'f16' && !gpu.caps.f16) ctx.skip();
        const n = shape.reduce((x, y) => x * y, 1);
        const d = shape[shape.length - 1]!;
        const av = roundTo(dtype, randn(n, n + 1));
        const bv = roundTo(dtype, randn(n, n + 2));
        const dv = roundTo(dtype, randn(d, n + 3));
        const a = Tensor.from(gpu, av, shape, dtype);
        const b = Tensor.from(gpu, bv, shape, dtype);
        const bd = Tensor.from(gpu, dv, [d], dtype);
        const { atol, rtol } = tol(dtype);
        const cases: [Tensor, Float64Array][] = [
          [add(a, b), addCpu(av, bv)],
          [mul(a, b), mulCpu(av, bv)],
          [add(a, bd), addCpu(av, dv)],
          [mul(a, bd), mulCpu(av, dv)],
          [mul(a, 0.37), mulCpu(av, Math.fround(0.37))],
        ];
        for (const [y, ref] of cases) {
          expect(y.dtype).toBe(dtype);
          expect(y.shape).toEqual(shape);
          const got = await y.read();
          if (atol === 0 && rtol === 0) expect(Array.from(got)).toEqual(Array.from(roundTo('f32', ref)));
          else expect(toleranceRatio(got, roundTo('f32', ref), atol, rtol)).toBeLessThanOrEqual(1);
          y.dispose();
        }
        for (const t of [a, b, bd]) t.dispose();
      });
    }
  }

  it('works on views at unaligned and vec4-aligned offsets, with mixed f32/f16 operands', async (ctx) => {
    if (!gpu.caps.f16) ctx.skip();
    for (const [offset, n] of [
      [5, 33],
      [8, 64],
      [4, 1001],
      [1, 88],
    ] as const) {
      const av = roundTo('f32', randn(n, offset));
      const bv = roundTo('f16', randn(n, offset + 1));
      const A = offsetView(av, offset, 'f32');
      const B = offsetView(bv, offset + 3, 'f16');
      const y = add(A.view, B.view);
      expect(Array.from(await y.read())).toEqual(Array.from(roundTo('f32', addCpu(av, bv))));
      const h = offsetView(bv, offset, 'f16');
      const g = gelu(h.view);
      expect(g.dtype).toBe('f16');
      expect(toleranceRatio(await g.read(), roundTo('f32', geluCpu(bv)), 1e-6, 2 ** -10)).toBeLessThanOrEqual(1);
      for (const t of [A.base, A.view, B.base, B.view, y, h.base, h.view, g]) t.dispose();
    }
  });

  it('broadcasts [1, L, D] over [B, L, D] and a single element over anything', async () => {
    const av = randn(2 * 7 * 12, 9);
    const pv = randn(7 * 12, 10);
    const a = Tensor.from(gpu, av, [2, 7, 12]);
    const pos = Tensor.from(gpu, pv, [1, 7, 12]);
    const one = Tensor.from(gpu, [2.5], [1]);
    const y = add(a, pos);
    const z = mul(a, one);
    expect(Array.from(await y.read())).toEqual(Array.from(roundTo('f32', addCpu(av, pv))));
    expect(Array.from(await z.read())).toEqual(Array.from(roundTo('f32', mulCpu(av, 2.5))));
    for (const t of [a, pos, one, y, z]) t.dispose();
  });

  it('rejects mismatched shapes and non-float dtypes clearly', () => {
    const a = Tensor.empty(gpu, [4, 6]);
    const b = Tensor.empty(gpu, [4, 5]);
    const c = Tensor.empty(gpu, [2, 6]);
    const i = Tensor.empty(gpu, [4, 6], 'i32');
    expect(() => add(a, b)).toThrow(/cannot broadcast/);
    expect(() => mul(a, c)).toThrow(/cannot broadcast/);
    expect(() => add(i, a)).toThrow(/f32 or f16/);
    expect(() => gelu(i)).toThrow(/f32 or f16/);
    for (const t of [a, b, c, i]) t.dispose();
  });
});

describe('gelu / relu', () => {
  it('CPU erf reference matches known values to 1e-15', () => {
    const known: [number, number][] = [
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [2.5, 0.999593047982555],
      [3, 0.9999779095030014],
      [-1.5, -0.9661051464753108],
    ];
    for (const [x, v] of known) expect(Math.abs(erf(x) - v)).toBeLessThan(1e-15);
  });

  for (const dtype of ['f32', 'f16'] as const) {
    for (const n of [1, 7, 33, 88, 1001, 4099]) {
      it(`${dtype} ${n}`, async (ctx) => {
        if (dtype === 'f16' && !gpu.caps.f16) ctx.skip();
        const raw = randn(n, 100 + n, 3);
        // A dense sweep of [-9, 9] plus the specials, in the larger cases.
        if (n > 4000) for (let i = 0; i < 1801; i++) raw[i] = -9 + i / 100;
        if (n > 4000) raw.set([0, -0, 1e-30, -1e-30, 0.8 / Math.SQRT1_2, 30, -30], 1801);
        const xv = roundTo(dtype, raw);
        const x = Tensor.from(gpu, xv, [n], dtype);
        const g = gelu(x);
        const r = relu(x);
        // f32: the erf approximation (about 1e-7) scaled by |x|/2, plus the output's rounding: atol 2e-7, rtol 3e-7.
        // f16: one f16 ulp of the output.
        const gt = dtype === 'f32' ? { atol: 2e-7, rtol: 3e-7 } : { atol: 1e-7, rtol: 2 ** -10 };
        expect(toleranceRatio(await g.read(), geluCpu(xv), gt.atol, gt.rtol)).toBeLessThanOrEqual(1);
        expect(Array.from(await r.read())).toEqual(Array.from(reluCpu(xv)));
        for (const t of [x, g, r]) t.dispose();
      });
    }
  }

  it('keeps NaN through relu and gelu, and maps infinities as the formula does', async () => {
    const x = Tensor.from(gpu, [NaN, Infinity, -5, 0], [4]);
    const rt = relu(x);
    const r = await rt.read();
    rt.dispose();
    expect(Number.isNaN(r[0])).toBe(true);
    expect(r[1]).toBe(Infinity);
    expect(r[2]).toBe(0);
    const g = gelu(x);
    const gv = await g.read();
    expect(Number.isNaN(gv[0])).toBe(true);
    expect(gv[1]).toBe(Infinity);
    x.dispose();
    g.dispose();
  });

  it('leaks no GPU memory, not even when a call fails after allocating its output', async () => {
    await gpu.sync();
    const before = gpu.stats().liveBytes;
    const x = Tensor.from(gpu, randn(300, 1), [300]);
    for (let i = 0; i < 20; i++) gelu(x).dispose();
    x.dispose();
    expect(() => gelu(x)).toThrow(/disposed/);
    expect(() => add(x, x)).toThrow(/disposed/);
    await gpu.sync();
    expect(gpu.stats().liveBytes).toBe(before);
  });
});

describe('gelu and relu gradients', () => {
  it('the float64 references equal central finite differences of gelu and relu', () => {
    const xs = Float64Array.from(randn(64, 5, 3)).map((v) => (Math.abs(v) < 1e-3 ? v + 0.01 : v));
    const ones = new Float64Array(xs.length).fill(1);
    const h = 1e-6;
    const dGelu = geluBackwardCpu(xs, ones);
    xs.forEach((x, i) => {
      const fd = (geluCpu([x + h])[0]! - geluCpu([x - h])[0]!) / (2 * h);
      expect(Math.abs(fd - dGelu[i]!)).toBeLessThan(1e-8);
    });
    const dRelu = reluBackwardCpu(reluCpu(xs), ones);
    xs.forEach((x, i) => expect(dRelu[i]).toBe(x > 0 ? 1 : 0));
  });

  for (const shape of [[7], [4, 257]]) {
    it(`kernels match the references, ${shape.join('x')} (vector and scalar paths)`, async () => {
      const n = shape.reduce((a, b) => a * b, 1);
      // Wide inputs reach GELU's tails, where the gradient is 0 or 1 to f32 precision.
      const xv = randn(n, n + 11, 3);
      const gv = randn(n, n + 12);
      const x = Tensor.from(gpu, xv, shape);
      const g = Tensor.from(gpu, gv, shape);
      const y = relu(x);
      const dg = geluBackward(x, g);
      const dr = reluBackward(y, g);
      // f32 math with erf within 1e-7 and exp within a few ulps: 2e-7 of |dy| plus rounding.
      expect(toleranceRatio(await dg.read(), geluBackwardCpu(xv, gv), 3e-7, 1e-6)).toBeLessThanOrEqual(1);
      expect(Array.from(await dr.read())).toEqual(Array.from(reluBackwardCpu(reluCpu(xv), gv), Math.fround));
      expect(() => geluBackward(x, Tensor.empty(gpu, [n + 1]))).toThrow(/differ in size/);
      for (const t of [x, g, y, dg, dr]) t.dispose();
    });
  }
});
