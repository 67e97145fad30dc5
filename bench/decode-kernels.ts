/**
 * A/B of one decoder layer's decode kernels at the real OPT-2.7B widths (D 2560, 32 heads, f16 weights, 50 keys in
 * the cache): 0.1's kernels (LayerNorm, q/k/v GEMV into the cache, attention_rows; LayerNorm then fc1) against the
 * decode step's (decode_attention fused and separate, with both merges; fc1 with its LayerNorm prologue).
 *
 *   npx tsx bench/decode-kernels.ts [--rounds 15] [--reps 4] [--weights f16|q8|q4]
 *
 * `--weights q8|q4` quantizes the q/k/v and fc1 weights (docs/quantization.md; random codes and scales): the
 * fused kernel then decodes them per element through ld_b8, the separate path through gemv_rows' group steps.
 *
 * Prints, per case, wall-clock and process CPU time per call, minimum and median over interleaved rounds. On a
 * shared machine the CPU time and the minima are the figures to compare (the WGSL headers cite them); on lavapipe
 * the CPU time includes the driver's worker threads, i.e. the kernel's work.
 */
import { parseArgs } from 'node:util';
import { Gpu } from '../src/gpu/gpu.js';
import { attention } from '../src/kernels/attention.js';
import { decodeAttention, type DecodeAttentionArgs } from '../src/kernels/decode-attention.js';
import { DecodeState } from '../src/kernels/decode-state.js';
import { layerNorm } from '../src/kernels/layernorm.js';
import { linear } from '../src/kernels/linear.js';
import { quantizeRef } from '../src/cpu/quantize.js';
import { isQuantScheme } from '../src/quant/format.js';
import { QuantizedTensor, type Weight } from '../src/quant/quantized-tensor.js';
import { Tensor, tidy } from '../src/tensor.js';
import { formatTimings, timeInterleaved } from './interleaved.js';

const { values: args } = parseArgs({
  options: { rounds: { type: 'string', default: '15' }, reps: { type: 'string', default: '4' }, weights: { type: 'string', default: 'f16' } },
});
const rounds = Number(args.rounds);
const reps = Number(args.reps);
const weights = args.weights!;
if (weights !== 'f16' && !isQuantScheme(weights)) throw new Error(`--weights takes f16, q8 or q4, got '${weights}'`);

const gpu = await Gpu.create();
const D = 2560;
const H = 32;
const HD = 80;
const C = 64;
const LEN = 50;
const wave = (n: number, s = 0.02) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7311 + 1) * s);
const x = Tensor.from(gpu, wave(D, 1), [1, D]);
const weight = (N: number): Weight =>
  isQuantScheme(weights) ? QuantizedTensor.from(gpu, quantizeRef(wave(N * D), N, D, weights)) : Tensor.from(gpu, wave(N * D), [N, D], 'f16');
const wqkv = weight(3 * D);
const bqkv = Tensor.from(gpu, wave(3 * D), [3 * D]);
const w1 = weight(4 * D);
const b1 = Tensor.from(gpu, wave(4 * D), [4 * D]);
const g = Tensor.from(gpu, new Float32Array(D).fill(1.1), [D]);
const gb = Tensor.from(gpu, new Float32Array(D).fill(0.1), [D]);
const cache = Tensor.from(gpu, wave(C * 3 * D, 1), [1, C, 3 * D]);
const mask = Tensor.from(gpu, new Float32Array(C), [1, C]);
const state = DecodeState.create(gpu, { rows: 1, capacity: C, histWidth: 4, hidden: D, heads: H, headDim: HD, scale: HD ** -0.5 });
state.setRows([{ ids: [1], mask: new Array<number>(LEN).fill(1), position: 5, length: LEN }]);
const ln = { weight: g, bias: gb, eps: 1e-5 };
const block: DecodeAttentionArgs = { state: state.tensor, x, weight: wqkv, bias: bqkv, ln, cache, heads: H, headDim: HD };

const cases: Record<string, () => void> = {
  '0.1: LN, qkv, attention_rows': () =>
    tidy(() => {
      const slot = cache.reshape([C, 3 * D]).rows(LEN, 1).reshape([1, 1, 3 * D]);
      linear(layerNorm(x.reshape([1, 1, D]), g, gb, 1e-5), wqkv, bqkv, { out: slot });
      const opts = { numHeads: H, headDim: HD, scale: HD ** -0.5, causal: true, mask, kvLength: LEN + 1 };
      attention({ tensor: slot, column: 2 * D }, { tensor: cache, column: 0 }, { tensor: cache, column: D }, opts);
    }),
  'decode_attention fused': () => tidy(() => void decodeAttention({ ...block, kernel: 'fused' })),
  'decode_attention fused, wg merge': () => tidy(() => void decodeAttention({ ...block, kernel: 'fused', subgroupMerge: false })),
  'decode_attention separate': () => tidy(() => void decodeAttention({ ...block, kernel: 'separate' })),
  '0.1: LN, fc1': () => tidy(() => void linear(layerNorm(x, g, gb, 1e-5), w1, b1, { activation: 'relu' })),
  'fc1 with LN prologue': () => tidy(() => void linear(x, w1, b1, { activation: 'relu', layerNorm: ln })),
};
const times = await timeInterleaved(
  gpu,
  Object.fromEntries(Object.entries(cases).map(([name, f]) => [name, () => { for (let i = 0; i < reps; i++) f(); }])),
  rounds,
  reps,
);
console.log(`${gpu.caps.adapter.description}; ${weights} weights; ms per call, ${rounds} rounds of ${reps}`);
for (const [name, t] of times) console.log(formatTimings(name, t));
for (const t of [x, wqkv, bqkv, w1, b1, g, gb, cache, mask]) t.dispose();
state.dispose();
gpu.destroy();
