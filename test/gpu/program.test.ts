/**
 * Captured programs (src/gpu/program.ts): recorded once, replayed at every step with the inputs read from
 * device buffers; the temporaries they use are held until dispose; host writes, reads and submits refuse to be
 * captured.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { add, mul } from '../../src/kernels/elementwise.js';
import { copy } from '../../src/kernels/copy.js';
import { Tensor, tidy } from '../../src/tensor.js';
import { testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

describe('captured programs', () => {
  it('replays the recorded kernels on whatever the buffers hold at replay time', async () => {
    const before = gpu.stats().liveBytes;
    const x = Tensor.from(gpu, [1, 2, 3], [3]);
    const acc = Tensor.from(gpu, [0, 0, 0], [3]);
    // acc = acc + 2 * x, through a temporary the program must keep for itself.
    const { program } = gpu.capture(() => {
      tidy(() => copy(add(acc, mul(x, 2)), acc));
    });
    expect(program.dispatchCount).toBe(3);
    expect(program.histogram()).toEqual({ mul: 1, add: 1, copy: 1 });
    // Nothing ran yet.
    expect(Array.from(await acc.read())).toEqual([0, 0, 0]);
    const d0 = gpu.stats().dispatches;
    gpu.replay(program);
    gpu.replay(program);
    expect(Array.from(await acc.read())).toEqual([4, 8, 12]);
    expect(gpu.stats().dispatches - d0).toBe(6);
    // Inputs change between replays through ordinary writes.
    x.write([10, 20, 30]);
    gpu.replay(program);
    expect(Array.from(await acc.read())).toEqual([24, 48, 72]);
    // The program's temporaries are not handed out to other tensors while it lives.
    const others = Array.from({ length: 8 }, () => tidy(() => mul(x, 0)));
    gpu.replay(program);
    expect(Array.from(await acc.read())).toEqual([44, 88, 132]);
    for (const o of others) o.dispose();
    program.dispose();
    expect(() => gpu.replay(program)).toThrow(/disposed program/);
    x.dispose();
    acc.dispose();
    await gpu.sync();
    expect(gpu.stats().liveBytes).toBe(before);
  });

  it('refuses host writes, reads and submits inside a capture, and leaves no temporaries behind', async () => {
    const before = gpu.stats().liveBytes;
    const x = Tensor.from(gpu, [1, 2], [2]);
    expect(() => gpu.capture(() => x.write([3, 4]))).toThrow(/host write cannot be captured/);
    expect(() => gpu.capture(() => gpu.flush())).toThrow(/submit cannot be captured/);
    expect(() => gpu.capture(() => tidy(() => Tensor.from(gpu, [1], [1])))).toThrow(/cannot be captured/);
    expect(() => gpu.capture(() => gpu.capture(() => null))).toThrow(/does not nest/);
    // After a failed capture, recording works as before.
    const y = tidy(() => add(x, x));
    expect(Array.from(await y.read())).toEqual([2, 4]);
    y.dispose();
    x.dispose();
    await gpu.sync();
    expect(gpu.stats().liveBytes).toBe(before);
  });

  it('mixes with ordinary recording in one submit', async () => {
    const x = Tensor.from(gpu, [1, 2], [2]);
    const { program, result } = gpu.capture(() => tidy(() => add(x, x)));
    gpu.replay(program);
    const z = tidy(() => add(result, x));
    expect(Array.from(await z.read())).toEqual([3, 6]);
    for (const t of [z, result, x]) t.dispose();
    program.dispose();
  });
});
