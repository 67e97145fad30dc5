/**
 * Writes the numbers of the README's "Measured" table and of docs/benchmarks.md's result sections from the stored
 * reports in docs/measurements/, so that no number there is typed by hand. Each generated block sits between
 *   <!-- generated: NAME (scripts/measured-docs.ts) -->  and  <!-- end: NAME -->
 * and is rewritten whole; the prose around it is left alone. test/bench/measured-docs.test.ts checks that the
 * committed files equal what this script makes.
 *
 *   npx tsx scripts/measured-docs.ts [--check]     # (npm run docs:measured) rewrite, or only report differences
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatNumber, kernelRows, speedRatio } from '../bench/report-data.js';
import { readReport } from '../bench/report-files.js';
import type { BenchReport, KernelResult, ModelRun } from '../bench/report-schema.js';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
const MEASUREMENTS = join(ROOT, 'docs/measurements');

export type Reports = Map<string, BenchReport>;

/** Every stored report, by file name without .json. */
export function loadMeasurements(dir = MEASUREMENTS): Reports {
  const out: Reports = new Map();
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) out.set(f.replace(/\.json$/, ''), readReport(join(dir, f)));
  return out;
}

function get(reports: Reports, name: string): BenchReport {
  const r = reports.get(name);
  if (!r) throw new Error(`docs/measurements/${name}.json is missing (the generated docs need it)`);
  return r;
}

const fmtMs = (v: number) => formatNumber(v, 'ms');
const fmtS = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/** 'a' or 'a-b' (min-max) of values, formatted. */
function range(values: number[], fmt: (v: number) => string): string {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  if (lo === hi) return fmt(lo);
  const [a, b] = [fmt(lo), fmt(hi)];
  const unit = / ([^\d\s]+)$/.exec(a)?.[1];
  return unit && b.endsWith(` ${unit}`) ? `${a.slice(0, -unit.length - 1)}-${b}` : `${a}-${b}`;
}

function runs(reports: Reports, names: string[]): ModelRun[] {
  return names.map((n) => {
    const run = get(reports, n).model?.[0];
    if (!run) throw new Error(`${n} has no model run`);
    return run;
  });
}

// ------------------------------------------------------------------ README "Measured"

/** Which stored reports feed each README column. */
export const README_SOURCES = {
  h200: { ours: ['h200-model-f16-session2-gpupack'], history: ['h200-model-f16', 'h200-model-f16-recheck', 'h200-model-f16-session2', 'h200-model-f16-session2-gpupack'], peer: 'h200-hf-transformers' },
  lavapipe: { ours: ['lavapipe-model-f16', 'lavapipe-model-f16-run2', 'lavapipe-model-f16-run3'], quantized: 'lavapipe-model-quantized-session5' },
};

/** The README rows of a run that measured f16, q8 and q4 weights interleaved: values with their ratio to f16. */
function quantizedRows(report: BenchReport): string[][] {
  const all = report.model ?? [];
  const by = (q: string | null) => all.find((r) => (r.variant.quantize ?? null) === q);
  const [f16, q8, q4] = [by(null), by('q8'), by('q4')];
  if (!f16 || !q8 || !q4) throw new Error('the quantized report needs f16, q8 and q4 entries');
  // The cold captions (one per configuration, back to back) beside the warm medians: on a shared machine either
  // can be the disturbed one.
  const cold = (r: ModelRun) => r.e2e!.decode_ms / r.e2e!.decode_tokens;
  const warm = (r: ModelRun) => r.stages.decode_ms_per_token!;
  const cell = (f: (r: ModelRun) => number) => `${fmtS(f(q8))} (${(f(q8) / f(f16)).toFixed(2)}x) / ${fmtS(f(q4))} (${(f(q4) / f(f16)).toFixed(2)}x), f16 ${fmtS(f(f16))}`;
  return [
    ['decode, per token, q8 / q4 weights', 'not measured yet', `cold captions: ${cell(cold)}; warm: ${cell(warm)}`],
    ['weights on the device, q8 / q4', 'not measured yet', `${gib(q8.memory.weights_bytes!)} / ${gib(q4.memory.weights_bytes!)}`],
  ];
}

export function readmeMeasured(reports: Reports): string {
  const h = runs(reports, README_SOURCES.h200.ours);
  const hHistory = runs(reports, README_SOURCES.h200.history);
  const hf = get(reports, README_SOURCES.h200.peer).model ?? [];
  const hf16 = hf.find((r) => r.variant.dtype === 'f16');
  const l = runs(reports, README_SOURCES.lavapipe.ours);
  const stage = (rs: ModelRun[], k: string) => rs.map((r) => r.stages[k]).filter((v): v is number => v !== undefined);
  const ref = (k: string) => l.map((r) => r.metrics?.[k]).filter((v): v is number => typeof v === 'number');
  const hfDecode = stage(hf, 'decode_ms_per_token');
  const rows = [
    [
      'decode, per token (f16 weights)',
      `${range(stage(h, 'decode_ms_per_token'), fmtMs)} (all H200 runs: ${range(stage(hHistory, 'decode_ms_per_token'), fmtMs)}; transformers on the same GPU: ${range(hfDecode, fmtMs)})`,
      `${range(stage(l, 'decode_ms_per_token'), fmtS)} (transformers fp32 on the same CPU: ${range(ref('reference_decode_ms_per_token'), fmtS)})`,
    ],
    [
      'vision tower, one image',
      `${range(stage(h, 'vision_ms'), fmtMs)} (transformers fp16: ${hf16?.stages.vision_ms !== undefined ? fmtMs(hf16.stages.vision_ms) : '?'}, tensor cores)`,
      `${range(stage(l, 'vision_ms'), fmtS)} (transformers: ${range(ref('reference_vision_ms'), fmtS)})`,
    ],
    ['weights on the device', range(h.map((r) => r.memory.weights_bytes!), gib), range(l.map((r) => r.memory.weights_bytes!), gib)],
    [
      'peak host memory while loading',
      range(h.map((r) => r.memory.peak_host_bytes_during_load!), gib),
      `${range(l.map((r) => r.memory.peak_host_bytes_during_load!), gib)} (the device memory is host memory there)`,
    ],
    [
      'load (15 GB fp32 checkpoint, f16 weights)',
      `${range(h.map((r) => r.load_s! * 1000), fmtS)} (transformers: ${hf16?.load_s != null ? fmtS(hf16.load_s * 1000) : '?'})`,
      `${fmtS(l[l.length - 1]!.load_s! * 1000)} (latest run; all runs: ${range(l.map((r) => r.load_s! * 1000), fmtS)})`,
    ],
    ...quantizedRows(get(reports, README_SOURCES.lavapipe.quantized)),
  ];
  const sources = [...README_SOURCES.h200.ours, README_SOURCES.h200.peer, ...README_SOURCES.lavapipe.ours, README_SOURCES.lavapipe.quantized].map((n) => `\`${n}\``).join(', ');
  return [
    '| | NVIDIA H200 (Node, Dawn/Vulkan) | lavapipe, 2 CPU cores (no GPU) |',
    '|---|---:|---:|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    `From docs/measurements/ (${sources}); the lavapipe transformers figures are the ones those reports carry from issue #4.`,
  ].join('\n');
}

// ------------------------------------------------------------------ docs/benchmarks.md

function kernelTable(report: BenchReport, gpuColumns: boolean): string {
  const rate = (v: number | undefined) => (v === undefined ? '' : formatNumber(v, 'gflops'));
  const ms = (v: number | null | undefined) => (v == null ? '' : v < 1 ? v.toFixed(3) : v.toFixed(2));
  const head = gpuColumns ? '| kernel | shape | dtype | ms (GPU) | wall ms | GFLOP/s | GB/s | roofline |' : '| kernel | shape | dtype | ms | GFLOP/s | GB/s | roofline |';
  const align = gpuColumns ? '|---|---|---|---:|---:|---:|---:|---:|' : '|---|---|---|---:|---:|---:|---:|';
  const rows = (report.kernels ?? []).map((k: KernelResult) => {
    const peer = k.peer ? ' (peer)' : '';
    const cells = [k.kernel + peer, k.shape, k.dtype];
    if (k.ms === null) return `| ${[...cells, `failed: ${k.error ?? ''}`, ...(gpuColumns ? [''] : []), '', '', ''].join(' | ')} |`;
    const roof = k.roofline_fraction !== undefined ? formatNumber(k.roofline_fraction, 'percent') : '';
    return `| ${[...cells, ms(k.ms), ...(gpuColumns ? [ms(k.wall_ms)] : []), rate(k.gflops), rate(k.gbps), roof].join(' | ')} |`;
  });
  return [head, align, ...rows].join('\n');
}

function adapterLine(report: BenchReport): string {
  const a = report.adapter;
  const roof = report.roofline;
  const parts = [`Adapter \`${a?.label ?? '?'}\``];
  if (report.runtime.kind === 'browser') parts.push(`in ${report.runtime.browser ?? 'a browser'}`);
  if (report.host.cpu_model) parts.push(`on ${report.host.cpu_model} (${report.host.cpu_cores ?? '?'} cores${report.host.cpu_simd ? `, ${report.host.cpu_simd}` : ''}${report.host.load_average ? `, load average ${report.host.load_average[0]} at the start` : ''})`);
  const lines = [`${parts.join(' ')}; features: ${a?.features.length ? a.features.filter((f) => ['shader-f16', 'subgroups', 'timestamp-query'].includes(f)).join(', ') || 'none of shader-f16/subgroups/timestamps' : '?'}.`];
  if (roof) lines.push(`Roofline ${formatNumber(roof.gflops, 'gflops')} GFLOP/s, ${formatNumber(roof.gbps, 'gbps')} GB/s (${roof.source}).`);
  lines.push(`Timing: ${report.timing}; ${report.created.slice(0, 10)}${report.project.commit ? `, commit ${report.project.commit.slice(0, 10)}` : ''}.`);
  return lines.join(' ');
}

function find(report: BenchReport, kernel: string, shape: string, dtype: string): KernelResult | undefined {
  return report.kernels?.find((k) => k.kernel === kernel && k.shape === shape && k.dtype === dtype && k.ms !== null);
}

/** The bars the kernel benchmark is held to, computed from one report. */
function kernelRatios(report: BenchReport): string {
  const lines: string[] = [];
  const sq = find(report, 'linear', '1024x1024->1024', 'f32');
  const naive = find(report, 'naive-matmul', '1024x1024x1024', 'f32');
  const tfSq = find(report, 'peer-tfjs', '1024x1024->1024', 'f32');
  // The peer has only wall-clock times: compare it with our wall-clock times.
  const wall = (k: KernelResult) => k.wall_ms ?? k.ms;
  if (sq && naive && tfSq) {
    lines.push(`- f32 linear at 1024^3: ${formatNumber(sq.gflops!, 'gflops')} GFLOP/s = ${formatNumber(speedRatio(naive.ms, sq.ms)!, 'ratio')} naive-matmul (bar: 3x) and ${formatNumber(speedRatio(wall(tfSq), wall(sq))!, 'ratio')} TensorFlow.js (wall clock both; bar: 1.5x).`);
  }
  const shared = (report.kernels ?? []).filter((k) => k.kernel === 'peer-tfjs' && k.ms !== null && k.shape !== '1024x1024->1024');
  const vs = shared
    .map((t) => ({ t, ours: find(report, 'linear', t.shape, 'f32') }))
    .filter((p) => p.ours)
    .map((p) => `${p.t.shape} ${formatNumber(speedRatio(wall(p.t), wall(p.ours!))!, 'ratio')}`);
  if (vs.length) lines.push(`- Ours against TensorFlow.js on the same adapter, f32 weights both, wall clock both (speed ratio): ${vs.join(', ')}.`);
  const gemv = find(report, 'linear', '1x2560->10240', 'f16w/f32a');
  const copy = find(report, 'copy', '64MiB', 'f32');
  if (gemv?.gbps && copy?.gbps) {
    lines.push(`- f16-weight GEMV 1x2560->10240 reads weights at ${formatNumber(gemv.gbps, 'gbps')} GB/s = ${formatNumber(gemv.gbps / copy.gbps, 'ratio')} what copy.wgsl moves (${formatNumber(copy.gbps, 'gbps')} GB/s, read + written; bar: 1x).`);
  }
  return lines.join('\n');
}

/** Two reports side by side: every kernel and shape of either, with the second's speed relative to the first. */
function comparisonTable(a: BenchReport, b: BenchReport): string {
  const rows = kernelRows([a, b]);
  const ms = (k: KernelResult | null) => (k === null ? '' : k.ms === null ? 'failed' : k.ms < 1 ? k.ms.toFixed(3) : k.ms.toFixed(2));
  return [
    `| kernel | shape | dtype | ${a.label} ms | ${b.label} ms | ${b.label} speed vs ${a.label} |`,
    '|---|---|---|---:|---:|---:|',
    ...rows.map((r) => {
      const ratio = speedRatio(r.cells[0]?.ms, r.cells[1]?.ms);
      return `| ${r.kernel}${r.peer ? ' (peer)' : ''} | ${r.shape} | ${r.dtype} | ${ms(r.cells[0]!)} | ${ms(r.cells[1]!)} | ${ratio === null ? '' : formatNumber(ratio, 'ratio')} |`;
    }),
  ].join('\n');
}

function modelComparison(reports: BenchReport[]): string {
  const cols = reports.flatMap((r) => (r.model ?? []).map((run) => ({ r, run }))).sort((a, b) => (a.run.model.name < b.run.model.name ? -1 : a.run.model.name > b.run.model.name ? 1 : 0));
  const head = `| | ${cols.map((c) => `${c.r.label}${c.r.engine.peer ? ' (peer)' : ''}`).join(' | ')} |`;
  const metric = (label: string, f: (run: ModelRun) => string) => `| ${label} | ${cols.map((c) => f(c.run)).join(' | ')} |`;
  const e = (k: 'processor_ms' | 'vision_ms' | 'qformer_ms' | 'prefill_ms' | 'ttft_ms') => (run: ModelRun) => (run.e2e ? fmtMs(run.e2e[k]) : '');
  const w = (k: string) => (run: ModelRun) => (run.stages[k] !== undefined ? fmtMs(run.stages[k]!) : '');
  return [
    head,
    `|---|${cols.map(() => '---:').join('|')}|`,
    metric('model, weights', (run) => `${run.model.name}, ${run.variant.dtype}`),
    metric('load', (run) => (run.load_s === null ? '' : `${run.load_s.toFixed(2)} s`)),
    metric('weights on the device', (run) => (run.memory.weights_bytes === undefined ? '' : formatNumber(run.memory.weights_bytes, 'bytes'))),
    metric('peak device memory', (run) => (run.memory.peak_device_bytes === undefined ? '' : formatNumber(run.memory.peak_device_bytes, 'bytes'))),
    metric('cold: processor', e('processor_ms')),
    metric('cold: vision tower', e('vision_ms')),
    metric('cold: Q-Former + projection', e('qformer_ms')),
    metric('cold: prefill + first token', e('prefill_ms')),
    metric('cold: time to first token', e('ttft_ms')),
    metric('cold: decode', (run) => (run.e2e ? formatNumber(run.e2e.decode_tokens_per_s, 'tokens/s') : '')),
    metric('warm: vision tower', w('vision_ms')),
    metric('warm: prefill + first token', w('prefill_ms')),
    metric('warm: decode per token', w('decode_ms_per_token')),
    metric('caption ids (greedy)', (run) => run.e2e?.token_ids?.join(' ') ?? ''),
    metric('load average at the start', (run) => {
      const c = cols.find((x) => x.run === run)!;
      return c.r.host.load_average ? String(c.r.host.load_average[0]) : '';
    }),
  ].join('\n');
}

/** Generated blocks of docs/benchmarks.md, by name. */
export function benchmarkBlocks(reports: Reports): Record<string, string> {
  const blocks: Record<string, string> = {};
  const lava = get(reports, 'lavapipe-kernels');
  blocks['lavapipe-kernels'] = [adapterLine(lava), '', kernelTable(lava, false), '', 'Ratios in that run (the bars):', kernelRatios(lava)].join('\n');
  const lanes = get(reports, 'lavapipe-kernels-lanes');
  blocks['lavapipe-kernels-lanes'] = kernelTable(lanes, false);
  const h200 = get(reports, 'h200-kernels');
  blocks['h200-kernels'] = [adapterLine(h200), '', kernelTable(h200, true), '', 'Ratios in that run:', kernelRatios(h200)].join('\n');
  const node = get(reports, 'lavapipe-node-kernels');
  const browser = get(reports, 'swiftshader-chromium-kernels');
  blocks['node-vs-browser-kernels'] = [`- ${node.label}: ${adapterLine(node)}`, `- ${browser.label}: ${adapterLine(browser)}`, '', comparisonTable(node, browser)].join('\n');
  const models = [...reports.entries()].filter(([n]) => /^(lavapipe-node|swiftshader-chromium|transformers-cpu)-model-/.test(n)).map(([, r]) => r);
  if (models.length) blocks['node-vs-browser-model'] = modelComparison(models);
  return blocks;
}

const BLOCK = /(<!-- generated: ([\w-]+) \(scripts\/measured-docs\.ts\) -->)\n([\s\S]*?)\n?(<!-- end: \2 -->)/g;

/** `text` with every generated block replaced; throws on a block it cannot make and on a block the file lacks. */
export function fillBlocks(text: string, blocks: Record<string, string>, file: string): string {
  const seen = new Set<string>();
  const out = text.replace(BLOCK, (_m, open: string, name: string, _old: string, close: string) => {
    const body = blocks[name];
    if (body === undefined) throw new Error(`${file}: no generator for block '${name}'`);
    seen.add(name);
    return `${open}\n${body}\n${close}`;
  });
  const missing = Object.keys(blocks).filter((b) => !seen.has(b));
  if (missing.length) throw new Error(`${file}: no place for the generated block(s) ${missing.join(', ')} (add <!-- generated: NAME (scripts/measured-docs.ts) --> ... <!-- end: NAME -->)`);
  return out;
}

export interface GeneratedFile {
  path: string;
  current: string;
  wanted: string;
}

export function generatedFiles(reports = loadMeasurements()): GeneratedFile[] {
  const readme = join(ROOT, 'README.md');
  const bench = join(ROOT, 'docs/benchmarks.md');
  const out: GeneratedFile[] = [];
  for (const [path, blocks] of [
    [readme, { measured: readmeMeasured(reports) }],
    [bench, benchmarkBlocks(reports)],
  ] as const) {
    const current = readFileSync(path, 'utf8');
    out.push({ path, current, wanted: fillBlocks(current, blocks, path) });
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const f of generatedFiles()) {
    if (f.current === f.wanted) continue;
    stale++;
    if (check) console.error(`${f.path} differs from docs/measurements/ (run npm run docs:measured)`);
    else {
      writeFileSync(f.path, f.wanted);
      console.error(`rewrote ${f.path}`);
    }
  }
  if (check && stale) process.exit(1);
}
