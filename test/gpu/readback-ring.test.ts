/** The read-back ring: ids copied into mapped slots come back in order; full and empty rings refuse clearly. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { ReadbackRing } from '../../src/gpu/readback-ring.js';
import { Tensor } from '../../src/tensor.js';
import { testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

describe('ReadbackRing', () => {
  it('returns pushed copies in order while later writes go on', async () => {
    const src = Tensor.from(gpu, [1, 2, 3, 4], [4], 'i32');
    const ring = new ReadbackRing(gpu, 8, 3);
    ring.push(src.buffer, 0);
    src.write([5, 6, 7, 8]); // recorded after the first copy: the first slot keeps 1, 2
    ring.push(src.buffer, 8);
    ring.push(src.buffer, 0);
    expect(ring.pending).toBe(3);
    expect(() => ring.push(src.buffer, 0)).toThrow(/slots are waiting/);
    expect(Array.from(new Int32Array(await ring.shift()))).toEqual([1, 2]);
    ring.push(src.buffer, 4); // the freed slot is reused
    expect(Array.from(new Int32Array(await ring.shift()))).toEqual([7, 8]);
    expect(Array.from(new Int32Array(await ring.shift()))).toEqual([5, 6]);
    expect(Array.from(new Int32Array(await ring.shift()))).toEqual([6, 7]);
    await expect(ring.shift()).rejects.toThrow(/nothing to read/);
    ring.dispose();
    src.dispose();
  });

  it('drops read-backs still in flight on dispose, quietly', async () => {
    const src = Tensor.from(gpu, [1, 2], [2], 'i32');
    const ring = new ReadbackRing(gpu, 8, 2);
    ring.push(src.buffer, 0);
    ring.push(src.buffer, 0);
    ring.dispose();
    expect(() => ring.push(src.buffer, 0)).toThrow(/after dispose/);
    await gpu.sync();
    src.dispose();
    expect(() => new ReadbackRing(gpu, 6, 1)).toThrow(/multiple of 4/);
  });
});
