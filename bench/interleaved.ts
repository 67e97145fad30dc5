/**
 * Interleaved A/B timing for the kernel-level benchmarks (decode-kernels, gemv-weights, decode-profile): every case
 * runs once per round, round after round, so a disturbance of a shared machine hits every case alike. Per case it
 * keeps the wall time and the process CPU time of each round (on lavapipe the CPU time is the driver's worker
 * threads, i.e. the kernels' work: the figure to compare on a shared machine), divided by `per` (calls per run).
 */
import type { Gpu } from '../src/gpu/gpu.js';

export interface Timings {
  wall: number[];
  cpu: number[];
}

export async function timeInterleaved(gpu: Gpu, cases: Readonly<Record<string, () => void>>, rounds: number, per = 1): Promise<Map<string, Timings>> {
  const out = new Map<string, Timings>();
  for (const [name, run] of Object.entries(cases)) {
    run(); // compiles its pipelines
    await gpu.sync();
    out.set(name, { wall: [], cpu: [] });
  }
  for (let r = 0; r < rounds; r++) {
    for (const [name, run] of Object.entries(cases)) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      run();
      await gpu.sync();
      const c = process.cpuUsage(c0);
      const t = out.get(name)!;
      t.wall.push((performance.now() - t0) / per);
      t.cpu.push((c.user + c.system) / 1000 / per);
    }
  }
  return out;
}

export const minimum = (a: readonly number[]): number => Math.min(...a);
export const median = (a: readonly number[]): number => [...a].sort((p, q) => p - q)[a.length >> 1]!;

/** One line per case: wall and CPU time per call, minimum and median. */
export function formatTimings(name: string, t: Timings, width = 34): string {
  const f = (v: number) => v.toFixed(2).padStart(7);
  return `${name.padEnd(width)} wall min ${f(minimum(t.wall))} med ${f(median(t.wall))}   cpu min ${f(minimum(t.cpu))} med ${f(median(t.cpu))}`;
}
