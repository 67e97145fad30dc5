// Waiting for the device without dawn.node's busy polling (src/platform/quiet-wait.ts): the promise's outcome is
// unchanged, the JavaScript thread sleeps while it waits, and on a software adapter Gpu.sync() waits quietly by
// default, where the binding alone keeps the thread busy for the whole wait.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/gpu.js';
import { matmul } from '../../src/kernels/linear.js';
import { quietWait } from '../../src/platform/quiet-wait.js';
import { Tensor, tidy } from '../../src/tensor.js';
import { randn } from '../helpers.js';

/** CPU time of this process's main thread so far, in ms (Linux: /proc/self/task/<pid>/stat, utime + stime). */
function mainThreadCpuMs(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat(5), counted from the state (field 3) here; clock ticks of 1/100 s on Linux.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** Main-thread CPU time and wall time of awaiting `start()`'s promise. */
async function measure(start: () => Promise<unknown>): Promise<{ cpu: number; wall: number }> {
  const c0 = mainThreadCpuMs();
  const t0 = performance.now();
  await start();
  return { cpu: mainThreadCpuMs() - c0, wall: performance.now() - t0 };
}

const linux = process.platform === 'linux';

describe('quietWait', () => {
  it('settles as the promise does', async () => {
    await expect(quietWait(Promise.resolve(7))).resolves.toBe(7);
    await expect(quietWait(new Promise((_, reject) => setTimeout(() => reject(new Error('lost')), 20)))).rejects.toThrow('lost');
  });

  it.runIf(linux)('sleeps while it waits (a busy loop of event-loop turns would take the whole wait)', async () => {
    const { cpu, wall } = await measure(() => quietWait(new Promise((resolve) => setTimeout(resolve, 400))));
    expect(wall).toBeGreaterThanOrEqual(390);
    expect(cpu).toBeLessThan(0.25 * wall);
  });
});

describe.runIf(linux)('Gpu.sync on a software adapter', () => {
  let quiet: Gpu;
  let busy: Gpu;
  beforeAll(async () => {
    quiet = await Gpu.create();
    busy = await Gpu.create({ quietWaits: false });
  });
  afterAll(() => {
    quiet?.destroy();
    busy?.destroy();
  });

  /** Records most of a second of matmuls on `gpu` and measures the wait for them. */
  async function longWait(gpu: Gpu) {
    const a = Tensor.from(gpu, randn(256 * 1024, 1), [256, 1024]);
    const b = Tensor.from(gpu, randn(1024 * 1024, 2), [1024, 1024]);
    await gpu.sync(); // uploads and pipelines out of the way
    let reps = 1;
    for (;;) {
      const t0 = performance.now();
      tidy(() => {
        for (let i = 0; i < reps; i++) matmul(a, b);
      });
      gpu.flush();
      const m = await measure(() => gpu.sync());
      if (m.wall >= 600 || reps >= 256) {
        a.dispose();
        b.dispose();
        return m;
      }
      reps = Math.ceil((reps * 800) / Math.max(performance.now() - t0, 1));
    }
  }

  it('waits quietly by default, where the binding polls busily', async ({ skip }) => {
    if (!quiet.caps.isSoftware) skip();
    const q = await longWait(quiet);
    const b = await longWait(busy);
    // Measured on the 2-core lavapipe machine: 6 % of the wait quietly, 25 % busily (the binding's polling shares
    // the cores with lavapipe's 16 workers).
    expect(q.cpu).toBeLessThan(0.15 * q.wall);
    expect(b.cpu / b.wall).toBeGreaterThan((2 * q.cpu) / q.wall);
  });
});
