/**
 * Times kernel benchmark cases on one device, the same code in Node (bench/kernels.ts) and in the browser page
 * (demo/bench.ts). Each tinybench iteration records `reps` run()s and then waits for the device (so the time
 * includes completion); `reps` is picked after warm-up so that one iteration lasts about 20 ms. The reported
 * time per run is the median iteration divided by `reps`; on GPUs with timestamp queries `ms` is the GPU's own time.
 */
import { Bench } from 'tinybench';
import type { Gpu } from '../src/gpu/gpu.js';
import type { BenchCase, BenchInstance, PeerBenchInstance } from './harness.js';
import type { KernelResult } from './report-schema.js';
import { rooflineFraction, type Roofline } from './roofline.js';

const TARGET_ITERATION_MS = 20;
const MAX_REPS = 64;

export interface KernelRunOptions {
  /** tinybench time per case, ms. */
  timeMs: number;
  /** Only cases whose "kernel shape dtype" matches. */
  filter?: RegExp;
  roofline: Roofline;
  /** Called before each case (index, count, name) and after it with its result. */
  onProgress?: (event: { index: number; count: number; name: string; result?: KernelResult }) => void;
}

export function describeCase(c: BenchCase): string {
  return `${c.kernel} ${c.shape} ${c.dtype}`;
}

function isPeer(i: BenchInstance): i is PeerBenchInstance {
  return typeof (i as Partial<PeerBenchInstance>).sync === 'function';
}

interface Timing {
  /** Wall-clock ms per run, completion included (what a caller waits). */
  wall: number;
  /** GPU ms per run from timestamp queries (null for peers or without timestamp-query). */
  gpu: number | null;
}

/** Median GPU time per run over a few timed batches of `reps` runs. */
async function gpuTime(gpu: Gpu, instance: BenchInstance, reps: number): Promise<number | null> {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = await gpu.timeGpu(() => {
      for (let r = 0; r < reps; r++) instance.run();
    });
    if (t === null) return null;
    times.push(t / reps);
  }
  return times.sort((a, b) => a - b)[2]!;
}

async function measure(gpu: Gpu, c: BenchCase, timeMs: number): Promise<Timing> {
  const instance = await c.setup(gpu);
  try {
    const sync = isPeer(instance) ? () => instance.sync() : () => gpu.sync();
    // Warm-up: compiles pipelines and touches every buffer; then one timed run sizes the iterations.
    instance.run();
    await sync();
    const t0 = performance.now();
    instance.run();
    await sync();
    const once = performance.now() - t0;
    const reps = Math.max(1, Math.min(MAX_REPS, Math.round(TARGET_ITERATION_MS / Math.max(once, 1e-3))));
    const bench = new Bench({ time: timeMs, iterations: 3, warmupIterations: 1, warmupTime: 0 });
    bench.add(c.kernel, async () => {
      for (let i = 0; i < reps; i++) instance.run();
      await sync();
    });
    await bench.run();
    const result = bench.tasks[0]!.result;
    if (!result || !('latency' in result)) throw new Error(`tinybench: ${result?.state ?? 'no result'}`);
    // Software adapters' timestamps do not isolate kernel time (the "GPU" is the host): wall time only there.
    const useTimestamps = !isPeer(instance) && !gpu.caps.isSoftware;
    return { wall: result.latency.p50 / reps, gpu: useTimestamps ? await gpuTime(gpu, instance, reps) : null };
  } finally {
    instance.dispose();
    if (!isPeer(instance)) await gpu.sync();
  }
}

/** Runs the selected cases one after the other; a case that fails gets `ms: null` and its error. */
export async function runKernelCases(gpu: Gpu, all: BenchCase[], options: KernelRunOptions): Promise<KernelResult[]> {
  const selected = all.filter((c) => !options.filter || options.filter.test(describeCase(c)));
  const results: KernelResult[] = [];
  for (const [index, c] of selected.entries()) {
    const name = describeCase(c);
    options.onProgress?.({ index, count: selected.length, name });
    const base: KernelResult = { kernel: c.kernel, shape: c.shape, dtype: c.dtype, ms: null };
    if (c.flops) base.flops = c.flops;
    if (c.bytes) base.bytes = c.bytes;
    if (c.peer) base.peer = c.peer;
    let r: KernelResult;
    try {
      const t = await measure(gpu, c, options.timeMs);
      // Rates and the roofline use the GPU's own time when timestamps exist; wall_ms is what a caller waits.
      const ms = t.gpu ?? t.wall;
      r = { ...base, ms, wall_ms: t.wall, timing: t.gpu === null ? 'wall-clock' : 'gpu-timestamps' };
      if (c.flops) r.gflops = c.flops / (ms * 1e6);
      if (c.bytes) r.gbps = c.bytes / (ms * 1e6);
      const fraction = rooflineFraction(options.roofline, ms, c.flops, c.bytes);
      if (fraction !== undefined) r.roofline_fraction = fraction;
    } catch (e) {
      r = { ...base, error: String((e as Error)?.message ?? e).split('\n')[0]! };
    }
    results.push(r);
    options.onProgress?.({ index, count: selected.length, name, result: r });
  }
  return results;
}

const fmtMs = (v: number) => (v < 1 ? v.toFixed(3) : v.toFixed(2));

/** The results as an aligned text table. */
export function formatKernelTable(results: KernelResult[]): string {
  const rows = results.map((r) => [
    r.kernel,
    r.shape,
    r.dtype,
    r.error ?? (r.ms === null ? '' : fmtMs(r.ms)),
    r.gflops !== undefined ? r.gflops.toFixed(1) : '',
    r.gbps !== undefined ? r.gbps.toFixed(2) : '',
    r.roofline_fraction !== undefined ? `${(100 * r.roofline_fraction).toFixed(1)}%` : '',
    r.wall_ms !== undefined ? fmtMs(r.wall_ms) : '',
  ]);
  const header = ['kernel', 'shape', 'dtype', 'ms', 'GFLOP/s', 'GB/s', 'roofline', 'wall ms'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
