/**
 * A/B of the decode GEMVs at the real OPT-2.7B widths for f16, q8 and q4 weights (docs/quantization.md), M = 1:
 * one decoder layer's four projections as the decode step runs them (q/k/v with the LayerNorm prologue, out_proj,
 * fc1 with the LayerNorm prologue and ReLU, fc2 with the residual) and the float lm_head for scale.
 *
 *   npx tsx bench/gemv-weights.ts [--rounds 9] [--copies 8] [--formats f16,q8,q4] [--rows 1,4] [--shapes fc2,out_proj] [--params f16]
 *
 * `--rows` adds the quantized formats run by gemv-rows with that many rows of B per invocation (named q4r4 etc.).
 *
 * Prints per shape and format the process CPU time and wall time per call (minimum and median over interleaved
 * rounds; on lavapipe the CPU time is the driver's worker threads, i.e. the kernel's work) and each format's ratio
 * to f16 by the minima. A layer's sum is the figure the decode speed follows. Each call runs `--copies` distinct
 * copies of its weight one after the other (times are per copy): a decode step reads every weight once, from
 * memory, and a weight run again at once would partly come from the CPU's caches (a q4 fc1 is 15 MB).
 */
import { parseArgs } from 'node:util';
import { Gpu } from '../src/gpu/gpu.js';
import { linear, linearWithVariant } from '../src/kernels/linear.js';
import { layerNorm } from '../src/kernels/layernorm.js';
import { quantizeRef } from '../src/cpu/quantize.js';
import { isQuantScheme } from '../src/quant/format.js';
import { QuantizedTensor, type Weight } from '../src/quant/quantized-tensor.js';
import { Tensor, tidy } from '../src/tensor.js';
import { formatTimings, minimum, timeInterleaved } from './interleaved.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '9' },
    copies: { type: 'string', default: '8' },
    formats: { type: 'string', default: 'f16,q8,q4' },
    // Rows of B per invocation of gemv-rows to try for the quantized formats (the default kernel's is 2).
    rows: { type: 'string', default: '' },
    // Only these projections (qkv+LN, out_proj, fc1+LN, fc2, lm_head); default all.
    shapes: { type: 'string', default: '' },
    // Storage of the biases and LayerNorm parameters: f32, or f16 as a model loaded with --dtype f16 keeps them.
    params: { type: 'string', default: 'f32' },
    // Also run out_proj, fc2 and lm_head with x read from its storage binding (VariantChoice.uniformA false), named
    // '<format>-sx', against the default uniform read on software adapters.
    'storage-x': { type: 'boolean', default: false },
  },
});
const rounds = Number(args.rounds);
const copies = Number(args.copies);
const formats = args.formats!.split(',');
const extraRows = args.rows ? args.rows.split(',').map(Number) : [];
for (const f of formats) if (f !== 'f16' && !isQuantScheme(f)) throw new Error(`--formats takes f16, q8 and q4, got '${f}'`);

const gpu = await Gpu.create();
const D = 2560;
const F = 4 * D;
const wave = (n: number, s = 0.02, phase = 1) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7311 + phase) * s);
const x = Tensor.from(gpu, wave(D, 1), [1, D]);
const h = Tensor.from(gpu, wave(F, 1, 2), [1, F]);
if (args.params !== 'f32' && args.params !== 'f16') throw new Error(`--params takes f32 or f16, got '${args.params}'`);
const paramType = args.params;
const g = Tensor.from(gpu, new Float32Array(D).fill(1.1), [D], paramType);
const gb = Tensor.from(gpu, new Float32Array(D).fill(0.1), [D], paramType);
const ln = { weight: g, bias: gb, eps: 1e-5 };
const bias = (n: number) => Tensor.from(gpu, wave(n, 0.02, 3), [n], paramType);
const weight = (format: string, N: number, K: number): Weight =>
  isQuantScheme(format) ? QuantizedTensor.from(gpu, quantizeRef(wave(N * K), N, K, format)) : Tensor.from(gpu, wave(N * K), [N, K], 'f16');

interface Layer {
  qkv: Weight;
  out: Weight;
  fc1: Weight;
  fc2: Weight;
}
const layerCopies = (f: string): Layer[] =>
  Array.from({ length: copies }, () => ({ qkv: weight(f, 3 * D, D), out: weight(f, D, D), fc1: weight(f, F, D), fc2: weight(f, D, F) }));
const layers = new Map<string, Layer[]>(formats.map((f) => [f, layerCopies(f)]));
const bqkv = bias(3 * D);
const bd = bias(D);
const bf = bias(F);
const head = Tensor.from(gpu, wave(50272 * D), [50272, D], 'f16');

const cases: Record<string, () => void> = {};
const each = (ls: Layer[], f: (l: Layer) => void) => () => tidy(() => ls.forEach(f));
for (const [f, ls] of layers) {
  cases[`qkv+LN ${f}`] = each(ls, (l) => void linear(x, l.qkv, bqkv, { layerNorm: ln }));
  cases[`out_proj ${f}`] = each(ls, (l) => void linear(x, l.out, bd));
  cases[`qkv ${f}`] = each(ls, (l) => void linear(x, l.qkv, bqkv));
  cases[`fc1 ${f}`] = each(ls, (l) => void linear(x, l.fc1, bf, { activation: 'relu' }));
  cases[`fc1+LN ${f}`] = each(ls, (l) => void linear(x, l.fc1, bf, { activation: 'relu', layerNorm: ln }));
  cases[`fc2 ${f}`] = each(ls, (l) => void linear(h, l.fc2, bd, { residual: x }));
  if (args['storage-x']) {
    const sx = { kind: 'gemv-rows', uniformA: false } as const;
    cases[`out_proj ${f}-sx`] = each(ls, (l) => void linearWithVariant(sx, x, l.out, bd));
    cases[`fc2 ${f}-sx`] = each(ls, (l) => void linearWithVariant(sx, h, l.fc2, bd, { residual: x }));
    // The LayerNorm as its own dispatch, the GEMV then reading the normalised row (through a uniform binding where it may).
    cases[`qkv+LN ${f}-lnsep`] = each(ls, (l) => void linear(layerNorm(x, g, gb, 1e-5), l.qkv, bqkv));
    cases[`fc1+LN ${f}-lnsep`] = each(ls, (l) => void linear(layerNorm(x, g, gb, 1e-5), l.fc1, bf, { activation: 'relu' }));
  }
  if (f === 'f16') continue;
  for (const rows of extraRows) {
    const v = { kind: 'gemv-rows', rows } as const;
    cases[`qkv+LN ${f}r${rows}`] = each(ls, (l) => void linearWithVariant(v, x, l.qkv, bqkv, { layerNorm: ln }));
    cases[`out_proj ${f}r${rows}`] = each(ls, (l) => void linearWithVariant(v, x, l.out, bd));
    cases[`fc1+LN ${f}r${rows}`] = each(ls, (l) => void linearWithVariant(v, x, l.fc1, bf, { activation: 'relu', layerNorm: ln }));
    cases[`fc2 ${f}r${rows}`] = each(ls, (l) => void linearWithVariant(v, h, l.fc2, bd, { residual: x }));
  }
}
cases['lm_head f16'] = () => tidy(() => {
  for (let i = 0; i < copies; i++) linear(x, head);
});
if (args['storage-x']) {
  cases['lm_head f16-sx'] = () => tidy(() => {
    for (let i = 0; i < copies; i++) linearWithVariant({ kind: 'gemv-rows', uniformA: false }, x, head);
  });
}

const shapes = args.shapes ? args.shapes.split(',') : [];
for (const name of Object.keys(cases)) if (shapes.length && !shapes.includes(name.split(' ')[0]!)) delete cases[name];
const times = await timeInterleaved(gpu, cases, rounds, copies);
console.log(`${gpu.caps.adapter.description}; ms per call, ${rounds} rounds of ${copies} copies`);
const minCpu = (name: string) => minimum(times.get(name)!.cpu);
for (const [name, t] of times) {
  const [shape, f] = name.split(' ');
  const ratio = f !== 'f16' && times.has(`${shape} f16`) ? `  ${(minCpu(name) / minCpu(`${shape} f16`)).toFixed(2)}x f16` : '';
  console.log(formatTimings(name, t, 16) + ratio);
}
const layerCpu = (f: string) => ['qkv+LN', 'out_proj', 'fc1+LN', 'fc2'].filter((shape) => times.has(`${shape} ${f}`)).reduce((s, shape) => s + minCpu(`${shape} ${f}`), 0);
for (const f of [...formats, ...formats.filter((f) => f !== 'f16').flatMap((f) => extraRows.map((r) => `${f}r${r}`))]) console.log(`layer ${f}: cpu ${layerCpu(f).toFixed(2)} ms${f === 'f16' ? '' : ` = ${(layerCpu(f) / layerCpu('f16')).toFixed(2)}x f16`}`);
gpu.destroy();
