/**
 * Kernel benchmark: every case of bench/cases/ (listed in bench/cases/index.ts), timed on one device.
 *
 *   npm run bench:kernels -- [--json FILE] [--label NAME] [--filter REGEX] [--time MS] [--peak-gflops N] [--peak-gbps N] [--browser]
 *
 * In Node on Dawn by default; `--browser` runs the same cases in the benchmark page (demo/bench.html) in headless
 * Chromium. Prints a table; `--json` writes the report (bench/report-schema.ts). How the time is measured:
 * bench/kernel-runner.ts and docs/benchmarks.md.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Gpu } from '../src/gpu/gpu.js';
import { allCases } from './cases/index.js';
import { adapterInfo, makeReport } from './environment.js';
import { nodeEnvironment } from './environment-node.js';
import { formatKernelTable, runKernelCases } from './kernel-runner.js';
import type { BenchReport } from './report-schema.js';
import { roofline } from './roofline.js';

interface Options {
  json?: string;
  label?: string;
  filter?: string;
  timeMs: number;
  peakGflops?: number;
  peakGbps?: number;
  browser: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'string' },
      label: { type: 'string' },
      filter: { type: 'string' },
      time: { type: 'string' },
      'peak-gflops': { type: 'string' },
      'peak-gbps': { type: 'string' },
      browser: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} needs a positive number, got '${v}'`);
    return n;
  };
  if (values.filter !== undefined) new RegExp(values.filter, 'i'); // a bad pattern fails here, not in the page
  return {
    json: values.json,
    label: values.label,
    filter: values.filter,
    timeMs: num('time', values.time) ?? 1000,
    peakGflops: num('peak-gflops', values['peak-gflops']),
    peakGbps: num('peak-gbps', values['peak-gbps']),
    browser: values.browser ?? false,
  };
}

async function inNode(o: Options): Promise<BenchReport> {
  const env = nodeEnvironment();
  const gpu = await Gpu.create();
  try {
    const adapter = adapterInfo(gpu);
    const roof = roofline(gpu.caps, o, { cores: env.host.cpu_cores ?? 1, ghz: env.host.cpu_ghz ?? 0 });
    console.log(`adapter: ${adapter.label}`);
    console.log(`roofline: ${roof.gflops.toFixed(0)} GFLOP/s, ${roof.gbps.toFixed(1)} GB/s (${roof.source})`);
    const kernels = await runKernelCases(gpu, allCases(), {
      timeMs: o.timeMs,
      filter: o.filter !== undefined ? new RegExp(o.filter, 'i') : undefined,
      roofline: roof,
      onProgress: (e) => {
        if (e.result) console.log(formatKernelTable([e.result]).split('\n')[2]);
      },
    });
    return makeReport({ suite: 'kernels', env, adapter, label: o.label, roofline: roof, kernels });
  } finally {
    gpu.destroy();
  }
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  // The browser driver (esbuild, playwright-core) loads only when asked for: GPU-machine bundles leave it out.
  const report = o.browser
    ? await (await import('./browser-driver.js')).runBenchInBrowser({ suite: 'kernels', label: o.label, filter: o.filter, timeMs: o.timeMs, peakGflops: o.peakGflops, peakGbps: o.peakGbps })
    : await inNode(o);
  if (o.browser) console.log(`adapter: ${report.adapter?.label ?? '?'}\nroofline: ${report.roofline?.source ?? '?'}`);
  console.log(`\n${formatKernelTable(report.kernels ?? [])}`);
  if (o.json) {
    await writeFile(o.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nwrote ${o.json} (${report.label})`);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
