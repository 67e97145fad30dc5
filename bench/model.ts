/**
 * Model benchmark, end to end: load a BLIP-2 folder, caption one image from a cold start, then `--runs` warm
 * captions (bench/model-run.ts has what is timed and how).
 *
 *   npm run bench:model -- --checkpoint DIR [--json FILE] [--label NAME] [--dtype f16|f32] [--quantize none,q8,q4]
 *                          [--tokens 20] [--runs 2] [--image FILE] [--prompt TEXT] [--browser] [--decode device|legacy]
 *                          [--lookahead N] [--bandwidth-gbs GBS] [--sequential]
 *
 * Any model folder works (the tiny test fixture, a real or random checkpoint). An empty or missing DIR gets a
 * random checkpoint with the real blip2-opt-2.7b layout (about 15 GB; `npm run make:random-checkpoint -- DIR
 * --layers 2,2,2` writes a real-dims one with few layers instead). `--browser` runs the same code in the
 * benchmark page in headless Chromium, the folder served to it over HTTP. Prints a table; `--json` writes the
 * report (bench/report-schema.ts). `--decode legacy` times version 0.1's decode loop instead of generate()'s
 * (bench/model-run.ts); `--bandwidth-gbs` (the device's memory bandwidth) adds decode's floor.
 *
 * `--quantize` takes a list (none, q8, q4: docs/quantization.md): the configurations are loaded together and
 * measured interleaved (bench/model-run.ts), one report entry each, printed side by side. `--sequential` loads and
 * measures them one after the other instead, each disposed before the next loads: for machines whose memory the
 * configurations together would not fit (the full-size f16, q8 and q4 models hold 15.5 GB on lavapipe); the
 * comparison is then exposed to the machine's drift between configurations.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Gpu } from '../src/gpu/gpu.js';
import { adapterInfo, makeReport } from './environment.js';
import { nodeEnvironment } from './environment-node.js';
import { isQuantScheme } from '../src/quant/format.js';
import { formatModelRun, runModelBenches } from './model-run.js';
import type { BenchReport } from './report-schema.js';
import { writeRandomCheckpoint } from './random-checkpoint.js';

const DEFAULT_IMAGE = fileURLToPath(new URL('../test/fixtures/tiny-blip2/chelsea.png', import.meta.url));
const USAGE =
  'usage: npm run bench:model -- --checkpoint DIR [--json FILE] [--label NAME] [--dtype f16|f32] [--quantize none,q8,q4] [--tokens 20] [--runs 2] [--image FILE] [--prompt TEXT] [--browser] [--decode device|legacy] [--lookahead N] [--bandwidth-gbs GBS] [--sequential]';

const { values: args } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    json: { type: 'string' },
    label: { type: 'string' },
    dtype: { type: 'string', default: 'f16' },
    quantize: { type: 'string', default: 'none' },
    tokens: { type: 'string', default: '20' },
    runs: { type: 'string', default: '2' },
    image: { type: 'string', default: DEFAULT_IMAGE },
    prompt: { type: 'string', default: '' },
    browser: { type: 'boolean', default: false },
    decode: { type: 'string', default: 'device' },
    lookahead: { type: 'string' },
    'bandwidth-gbs': { type: 'string' },
    sequential: { type: 'boolean', default: false },
  },
});
function fail(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}
if (!args.checkpoint) fail('--checkpoint is required');
if (args.dtype !== 'f16' && args.dtype !== 'f32') fail(`--dtype must be f16 or f32, got '${args.dtype}'`);
const dtype = args.dtype;
const quantizes = args.quantize!.split(',').map((q) => {
  if (q !== 'none' && !isQuantScheme(q)) fail(`--quantize takes a list of none, q8, q4, got '${q}'`);
  return q === 'none' ? undefined : q;
});
if (args.browser && quantizes.length > 1) fail('--browser measures one configuration: give --quantize one value');
const tokens = Number(args.tokens);
const runs = Number(args.runs);
if (!Number.isInteger(tokens) || tokens < 1) fail(`--tokens must be a positive integer, got '${args.tokens}'`);
if (!Number.isInteger(runs) || runs < 0) fail(`--runs must be a whole number, got '${args.runs}'`);
if (!existsSync(args.image!)) fail(`--image ${args.image} does not exist`);
if (args.decode !== 'device' && args.decode !== 'legacy') fail(`--decode must be device or legacy, got '${args.decode}'`);
const decode = args.decode;
const lookahead = args.lookahead === undefined ? undefined : Number(args.lookahead);
if (lookahead !== undefined && (!Number.isInteger(lookahead) || lookahead < 0 || lookahead > 16)) fail(`--lookahead must be an integer in 0..16, got '${args.lookahead}'`);
const bandwidthGBs = args['bandwidth-gbs'] === undefined ? undefined : Number(args['bandwidth-gbs']);
if (bandwidthGBs !== undefined && !(bandwidthGBs > 0)) fail(`--bandwidth-gbs must be a positive number, got '${args['bandwidth-gbs']}'`);
const checkpoint = resolve(args.checkpoint);

if (!existsSync(join(checkpoint, 'model.safetensors.index.json')) && !existsSync(join(checkpoint, 'model.safetensors'))) {
  console.error(`no checkpoint in ${checkpoint}: writing a random one with the real blip2-opt-2.7b layout (about 15 GB)`);
  const t = performance.now();
  await writeRandomCheckpoint(checkpoint, undefined, (s) => console.error(`  ${s}`));
  console.error(`  written in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}
const randomWeights = existsSync(join(checkpoint, 'RANDOM_WEIGHTS.md')) || undefined;

async function inNode(): Promise<BenchReport> {
  const env = nodeEnvironment();
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
  const gpu = await Gpu.create();
  try {
    const adapter = adapterInfo(gpu);
    console.error(`adapter: ${adapter.label}`);
    let peakRssDuringLoad = 0;
    const model = await runModelBenches(quantizes.map((quantize) => ({
      gpu,
      model: checkpoint,
      name: basename(checkpoint),
      dtype,
      quantize,
      image: args.image!,
      imageName: basename(args.image!),
      prompt: args.prompt,
      tokens,
      runs,
      randomWeights,
      decode,
      lookahead,
      bandwidthGBs,
      onProgress: (m) => {
        if (m.startsWith('cold caption')) peakRssDuringLoad = Math.max(peakRss, process.memoryUsage().rss);
        console.error(`  ${quantize ?? dtype}: ${m}`);
      },
    })), args.sequential ? 'sequential' : 'interleaved');
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    for (const run of model) {
      run.memory.peak_host_bytes = peakRss;
      run.memory.peak_host_bytes_during_load = peakRssDuringLoad;
    }
    const notes = [
      ...(gpu.caps.isSoftware ? ['software adapter: device buffers live in host memory, so peak_host_bytes includes the device bytes'] : []),
      ...(quantizes.length > 1 ? [args.sequential ? 'configurations loaded and measured one after the other (--sequential)' : 'configurations loaded together and measured interleaved'] : []),
    ];
    return makeReport({ suite: 'model', env, adapter, label: args.label, model, notes: notes.length ? notes : undefined });
  } finally {
    clearInterval(sampler);
    gpu.destroy();
  }
}

// The browser driver (esbuild, playwright-core) loads only when asked for: GPU-machine bundles leave it out.
const report = args.browser
  ? await (await import('./browser-driver.js')).runBenchInBrowser({ suite: 'model', label: args.label, modelDir: checkpoint, imagePath: args.image, dtype, quantize: quantizes[0], tokens, runs, prompt: args.prompt, randomWeights })
  : await inNode();
for (const run of report.model ?? []) {
  console.log(`\n${run.model.name}, ${run.variant.quantize ? `${run.variant.quantize} + ${run.variant.dtype}` : run.variant.dtype} weights, ${report.adapter?.label ?? report.label}`);
  console.log(formatModelRun(run));
  if (run.e2e?.text !== undefined) console.log(`caption: ${JSON.stringify(run.e2e.text)} (ids ${run.e2e.token_ids?.join(' ')})`);
}
const runsMeasured = report.model ?? [];
if (runsMeasured.length > 1) {
  // Side by side, with each configuration's ratio to the first (measured interleaved in this one run).
  const first = runsMeasured[0]!;
  const name = (r: (typeof runsMeasured)[number]) => (r.variant.quantize ? `${r.variant.quantize}` : `${r.variant.dtype}`);
  const cell = (v: number | undefined, base: number | undefined, unit: string) =>
    v === undefined ? '' : `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${unit}${base ? ` (${(v / base).toFixed(2)}x)` : ''}`;
  const rows: [string, (r: (typeof runsMeasured)[number]) => string][] = [
    ['weights on the device', (r) => `${((r.memory.weights_bytes ?? 0) / 2 ** 30).toFixed(2)} GiB`],
    ['load', (r) => (r.load_s === null ? '' : `${r.load_s.toFixed(1)} s`)],
    ['vision tower', (r) => cell(r.stages.vision_ms, first.stages.vision_ms, 'ms')],
    ['prefill + 1st token', (r) => cell(r.stages.prefill_ms, first.stages.prefill_ms, 'ms')],
    ['decode / token', (r) => cell(r.stages.decode_ms_per_token, first.stages.decode_ms_per_token, 'ms')],
  ];
  const cols = runsMeasured.map((r) => rows.map(([, f]) => f(r)));
  const w = runsMeasured.map((r, i) => Math.max(name(r).length, ...cols[i]!.map((c) => c.length)));
  const lw = Math.max(...rows.map(([l]) => l.length));
  console.log(`\nside by side (${args.sequential ? 'one after the other' : 'interleaved'} in this run; ratios to ${name(first)}):`);
  console.log(`${''.padEnd(lw)}  ${runsMeasured.map((r, i) => name(r).padStart(w[i]!)).join('  ')}`);
  rows.forEach(([label], j) => console.log(`${label.padEnd(lw)}  ${cols.map((c, i) => c[j]!.padStart(w[i]!)).join('  ')}`));
}
if (args.json) {
  writeFileSync(args.json, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwrote ${args.json} (${report.label})`);
}
