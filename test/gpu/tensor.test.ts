import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { cast, copy } from '../../src/kernels/copy.js';
import { Tensor } from '../../src/tensor.js';
import { f32ToF16Bits, f16BitsToF32 } from '../../src/util/half.js';
import { randn, testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

const specials = [0, -0, 1, -1, 65504, -65504, 65520, 1e-8, 5.960464477539063e-8, 6.097555160522461e-5, Infinity, -Infinity, NaN, 3.14159];

describe('Tensor', () => {
  it('reports the adapter', () => {
    expect(gpu.caps.adapter.runtime).toBe('node-dawn');
    expect(gpu.caps.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
  });

  it('round-trips f32 exactly, specials included', async () => {
    const data = Float32Array.from([...specials, ...randn(1001, 1)]);
    const t = Tensor.from(gpu, data, [data.length]);
    const back = await t.read();
    expect(Object.is(back[1], -0)).toBe(true);
    expect(Array.from(back)).toEqual(Array.from(data));
    t.dispose();
  });

  it('round-trips f16 with round-to-nearest-even, NaN, Inf, subnormals and -0', async () => {
    const data = Float32Array.from([...specials, ...randn(777, 2)]);
    const t = Tensor.from(gpu, data, [data.length], 'f16');
    const bits = await t.readF16Bits();
    for (let i = 0; i < data.length; i++) expect(bits[i]).toBe(f32ToF16Bits(data[i]!));
    const back = await t.read();
    expect(Number.isNaN(back[12])).toBe(true);
    expect(back[6]).toBe(Infinity); // 65520 rounds up to Inf
    expect(back[8]).toBe(5.960464477539063e-8); // smallest subnormal
    expect(Object.is(back[1], -0)).toBe(true);
    expect(back[13]).toBe(f16BitsToF32(f32ToF16Bits(3.14159)));
    t.dispose();
  });

  it('round-trips i32 and u32', async () => {
    const i = Tensor.from(gpu, [-2147483648, -1, 0, 7, 2147483647], [5], 'i32');
    expect(Array.from(await i.read())).toEqual([-2147483648, -1, 0, 7, 2147483647]);
    const u = Tensor.from(gpu, [0, 1, 4294967295], [3], 'u32');
    expect(Array.from(await u.read())).toEqual([0, 1, 4294967295]);
    i.dispose();
    u.dispose();
  });

  it('makes views without copies and keeps storage alive until the last view is gone', async () => {
    const data = randn(6 * 7, 3);
    const t = Tensor.from(gpu, data, [6, 7]);
    const r = t.rows(2, 3);
    const flat = r.reshape([-1]);
    expect(flat.shape).toEqual([21]);
    t.dispose();
    r.dispose();
    expect(Array.from(await flat.read())).toEqual(Array.from(data.subarray(14, 35)));
    flat.dispose();
    expect(() => flat.reshape([21])).toThrow(/disposed/);
    expect(() => t.rows(0, 7)).toThrow();
  });

  it('copies and casts offset views on the GPU', async () => {
    const data = randn(5 * 33, 4);
    const t = Tensor.from(gpu, data, [5, 33]);
    const v = t.rows(1, 3); // element offset 33: not binding-aligned
    const c = copy(v);
    expect(Array.from(await c.read())).toEqual(Array.from(data.subarray(33, 132)));
    const h = cast(v, 'f16');
    const bits = await h.readF16Bits();
    for (let i = 0; i < 99; i++) expect(bits[i]).toBe(f32ToF16Bits(data[33 + i]!));
    const hv = h.rows(1, 1); // odd f16 offset
    const back = cast(hv, 'f32');
    expect(Array.from(await back.read())).toEqual(Array.from(await hv.read()));
    for (const x of [t, v, c, h, hv, back]) x.dispose();
  });

  it('returns to the baseline of live GPU bytes after 1000 alloc/free cycles', async () => {
    await gpu.sync();
    const before = gpu.stats().liveBytes;
    for (let i = 0; i < 1000; i++) {
      const a = Tensor.empty(gpu, [1 + (i % 97), 13], i % 2 ? 'f16' : 'f32');
      const b = a.reshape([-1]);
      const c = copy(b);
      a.dispose();
      b.dispose();
      c.dispose();
    }
    await gpu.sync();
    const s = gpu.stats();
    expect(s.liveBytes).toBe(before);
    expect(s.reused).toBeGreaterThan(1900);
  });

  it('rejects bad shapes and sizes clearly', () => {
    expect(() => Tensor.from(gpu, [1, 2, 3], [2, 2])).toThrow(/needs 4/);
    expect(() => Tensor.empty(gpu, [2, -1])).toThrow(/invalid shape/);
    const t = Tensor.empty(gpu, [4, 3]);
    expect(() => t.reshape([5, -1])).toThrow(/cannot reshape/);
    t.dispose();
  });
});

describe('tidy', () => {
  it('disposes intermediates and keeps what is returned (nested, objects, keep())', async () => {
    const { tidy, keep } = await import('../../src/tensor.js');
    await gpu.sync();
    const before = gpu.stats().liveBytes;
    let escaped: Tensor | null = null;
    const out = tidy(() => {
      const a = Tensor.from(gpu, [1, 2, 3, 4], [4]);
      const b = copy(a);
      const inner = tidy(() => {
        const c = copy(b);
        escaped = keep(copy(c));
        return { c, list: [c.reshape([2, 2])] };
      });
      expect(b.disposed).toBe(false);
      return inner;
    });
    expect(out.c.disposed).toBe(false);
    expect(Array.from(await out.list[0]!.read())).toEqual([1, 2, 3, 4]);
    out.c.dispose();
    out.list[0]!.dispose();
    expect(Array.from(await escaped!.read())).toEqual([1, 2, 3, 4]);
    escaped!.dispose();
    expect(gpu.stats().liveBytes).toBe(before);
    expect(() =>
      tidy(() => {
        Tensor.from(gpu, [1], [1]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(gpu.stats().liveBytes).toBe(before);
  });
});

describe('buffer lifetime', () => {
  it('a persistent tensor disposed while recorded work still reads it is destroyed only after the submit', async () => {
    const src = Tensor.from(gpu, [1, 2, 3, 4], [4], 'f32', { persistent: true });
    const out = copy(src); // recorded, not submitted
    src.dispose(); // destroying the buffer now would make the submit fail
    expect(Array.from(await out.read())).toEqual([1, 2, 3, 4]);
    out.dispose();
  });
});

describe('recording', () => {
  it('small writes between recorded kernels are ordered with them, without a submit each', async () => {
    const a = Tensor.from(gpu, [0, 0, 0, 0], [4]);
    await gpu.sync();
    const submits = gpu.stats().submits;
    const outs: Tensor[] = [];
    for (let i = 1; i <= 20; i++) {
      a.write([i, i, i, i]); // overwrites what the previous copy still has to read
      outs.push(copy(a));
    }
    expect(gpu.stats().submits).toBe(submits);
    for (let i = 0; i < outs.length; i++) expect(Array.from(await outs[i]!.read())).toEqual([i + 1, i + 1, i + 1, i + 1]);
    for (const t of [a, ...outs]) t.dispose();
  });

  it('reuses bind groups when the same kernels run on the same buffers again', async () => {
    const x = Tensor.from(gpu, [1, 2, 3], [3]);
    const step = async () => {
      const y = copy(x);
      const v = await y.read();
      y.dispose();
      return v;
    };
    await step();
    const before = gpu.stats();
    for (let i = 0; i < 5; i++) expect(Array.from(await step())).toEqual([1, 2, 3]);
    const after = gpu.stats();
    expect(after.bindGroupHits - before.bindGroupHits).toBe(5);
    expect(after.bindGroupMisses).toBe(before.bindGroupMisses);
    x.dispose();
  });
});
