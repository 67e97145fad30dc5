/**
 * Kernel benchmark: every case of every file in bench/cases/, timed with tinybench on one device.
 *
 *   npm run bench:kernels -- [--json FILE] [--filter REGEX] [--time MS] [--peak-gflops N] [--peak-gbps N]
 *
 * Each tinybench iteration records `reps` run()s and then waits for the device (so the time includes
 * completion); `reps` is picked after warm-up so that one iteration lasts about 20 ms. The reported
 * time per run is the median iteration divided by `reps`.
 */
import { readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { adapterLabel } from '../src/gpu/capabilities.js';
import { Gpu } from '../src/gpu/gpu.js';
import type { BenchCase, BenchInstance, BenchResult, PeerBenchInstance } from './harness.js';
import { roofline, rooflineFraction, type Roofline } from './roofline.js';

const TARGET_ITERATION_MS = 20;
const MAX_REPS = 64;

interface Options {
  json?: string;
  filter?: RegExp;
  timeMs: number;
  peakGflops?: number;
  peakGbps?: number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'string' },
      filter: { type: 'string' },
      time: { type: 'string' },
      'peak-gflops': { type: 'string' },
      'peak-gbps': { type: 'string' },
    },
    strict: true,
  });
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} needs a positive number, got '${v}'`);
    return n;
  };
  return {
    json: values.json,
    filter: values.filter !== undefined ? new RegExp(values.filter, 'i') : undefined,
    timeMs: num('time', values.time) ?? 1000,
    peakGflops: num('peak-gflops', values['peak-gflops']),
    peakGbps: num('peak-gbps', values['peak-gbps']),
  };
}

/** Every `cases` export of bench/cases/*.ts (or .js once compiled), in file-name order. */
async function loadCases(): Promise<BenchCase[]> {
  const dir = new URL('./cases/', import.meta.url);
  const files = readdirSync(dir)
    .filter((f) => /\.(ts|js)$/.test(f) && !f.endsWith('.d.ts'))
    .sort();
  const all: BenchCase[] = [];
  for (const f of files) {
    const mod = (await import(new URL(f, dir).href)) as { cases?: BenchCase[] };
    if (Array.isArray(mod.cases)) all.push(...mod.cases);
  }
  return all;
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

function describeCase(c: BenchCase): string {
  return `${c.kernel} ${c.shape} ${c.dtype}`;
}

function formatTable(results: BenchResult[]): string {
  const rows = results.map((r) => [
    r.kernel,
    r.shape,
    r.dtype,
    r.error ?? (r.ms === null ? '' : r.ms < 1 ? r.ms.toFixed(3) : r.ms.toFixed(2)),
    r.gflops !== undefined ? r.gflops.toFixed(1) : '',
    r.gbps !== undefined ? r.gbps.toFixed(2) : '',
    r.roofline_fraction !== undefined ? `${(100 * r.roofline_fraction).toFixed(1)}%` : '',
    r.wall_ms !== undefined ? (r.wall_ms < 1 ? r.wall_ms.toFixed(3) : r.wall_ms.toFixed(2)) : '',
  ]);
  const header = ['kernel', 'shape', 'dtype', 'ms', 'GFLOP/s', 'GB/s', 'roofline', 'wall ms'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const gpu = await Gpu.create();
  const roof: Roofline = roofline(gpu.caps, options);
  console.log(`adapter: ${adapterLabel(gpu.caps.adapter)}`);
  console.log(`roofline: ${roof.gflops.toFixed(0)} GFLOP/s, ${roof.gbps.toFixed(1)} GB/s (${roof.source})`);
  const all = await loadCases();
  const selected = all.filter((c) => !options.filter || options.filter.test(describeCase(c)));
  const results: BenchResult[] = [];
  for (const c of selected) {
    const base = { kernel: c.kernel, shape: c.shape, dtype: c.dtype };
    try {
      const t = await measure(gpu, c, options.timeMs);
      // Rates and the roofline use the GPU's own time when timestamps exist; wall_ms is what a caller waits.
      const ms = t.gpu ?? t.wall;
      const r: BenchResult = { ...base, ms, wall_ms: t.wall, timing: t.gpu === null ? 'wall' : 'gpu-timestamps' };
      if (c.flops) r.gflops = c.flops / (ms * 1e6);
      if (c.bytes) r.gbps = c.bytes / (ms * 1e6);
      r.roofline_fraction = rooflineFraction(roof, ms, c.flops, c.bytes);
      results.push(r);
    } catch (e) {
      results.push({ ...base, ms: null, error: (e as Error).message.split('\n')[0]! });
    }
    const last = results[results.length - 1]!;
    console.log(formatTable([last]).split('\n')[2]);
  }
  console.log(`\n${formatTable(results)}`);
  if (options.json) {
    const report = {
      adapter: { label: adapterLabel(gpu.caps.adapter), ...gpu.caps },
      roofline: roof,
      results,
    };
    await writeFile(options.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nwrote ${options.json}`);
  }
  gpu.destroy();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
