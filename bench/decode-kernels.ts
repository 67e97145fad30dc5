import { Gpu } from '../src/gpu/gpu.js';
import { linear } from '../src/kernels/linear.js';
import { layerNorm } from '../src/kernels/layernorm.js';
import { attention } from '../src/kernels/attention.js';
import { decodeAttention } from '../src/kernels/decode-attention.js';
import { DecodeState } from '../src/kernels/decode-state.js';
import { Tensor, tidy } from '../src/tensor.js';
const gpu = await Gpu.create();
const D = 2560, H = 32, HD = 80, C = 64, LEN = 50;
const rnd = (n: number, s = 0.02) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7311 + 1) * s);
const x = Tensor.from(gpu, rnd(D, 1), [1, D]);
const wqkv = Tensor.from(gpu, rnd(3 * D * D), [3 * D, D], 'f16');
const bqkv = Tensor.from(gpu, rnd(3 * D), [3 * D]);
const w1 = Tensor.from(gpu, rnd(4 * D * D), [4 * D, D], 'f16');
const b1 = Tensor.from(gpu, rnd(4 * D), [4 * D]);
const g = Tensor.from(gpu, new Float32Array(D).fill(1.1), [D]);
const gb = Tensor.from(gpu, new Float32Array(D).fill(0.1), [D]);
const cache = Tensor.from(gpu, rnd(C * 3 * D, 1), [1, C, 3 * D]);
const qkv = Tensor.from(gpu, rnd(3 * D, 1), [1, 1, 3 * D]);
const mask = Tensor.from(gpu, new Float32Array(C), [1, C]);
const state = DecodeState.create(gpu, { rows: 1, capacity: C, histWidth: 4, hidden: D, heads: H, headDim: HD, scale: HD ** -0.5 });
state.setRows([{ ids: [1], mask: new Array(LEN).fill(1), position: 5, length: LEN }]);
const ln = { weight: g, bias: gb, eps: 1e-5 };
const out = Tensor.empty(gpu, [1, D]);
const reps = 4;
const cases: Record<string, () => void> = {
  'legacy LN+qkv+attn': () => tidy(() => {
    const slot = cache.reshape([C, 3 * D]).rows(LEN, 1).reshape([1, 1, 3 * D]);
    const n = layerNorm(x.reshape([1, 1, D]), g, gb, 1e-5);
    linear(n, wqkv, bqkv, { out: slot });
    attention({ tensor: slot, column: 2 * D }, { tensor: cache, column: 0 }, { tensor: cache, column: D }, { numHeads: H, headDim: HD, scale: HD ** -0.5, causal: true, mask, kvLength: LEN + 1 });
  }),
  'fused LN+qkv+attn': () => tidy(() => { decodeAttention({ state: state.tensor, x, weight: wqkv, bias: bqkv, ln, cache, heads: H, headDim: HD, kernel: 'fused' }); }),
  'separate (qkv+ln, attn)': () => tidy(() => { decodeAttention({ state: state.tensor, x, weight: wqkv, bias: bqkv, ln, cache, heads: H, headDim: HD, kernel: 'separate' }); }),
  'attention_rows alone': () => tidy(() => { attention({ tensor: qkv, column: 2 * D }, { tensor: cache, column: 0 }, { tensor: cache, column: D }, { numHeads: H, headDim: HD, scale: HD ** -0.5, causal: true, mask, kvLength: LEN + 1 }); }),
  'decode_attention sg alone': () => gpu.dispatch({ label: 'x', pipeline: gpu.pipeline('decode_attention', { KT: 'f32', VEC4: true, HD, HPW: 1, CH: 16, WG: 64, F16: false, SG_MERGE: true, NSG: 8, SUBGROUPS: true, FUSED: false }), buffers: [state.tensor.bind().binding, qkv.bind().binding, cache.bind().binding, out.bind().binding], workgroups: [H, 1, 1] }),
  'decode_attention wg alone': () => gpu.dispatch({ label: 'x', pipeline: gpu.pipeline('decode_attention', { KT: 'f32', VEC4: true, HD, HPW: 1, CH: 16, WG: 64, F16: false, SG_MERGE: false, NSG: 0, SUBGROUPS: false, FUSED: false }), buffers: [state.tensor.bind().binding, qkv.bind().binding, cache.bind().binding, out.bind().binding], workgroups: [H, 1, 1] }),
  'qkv + LN prologue': () => tidy(() => { linear(x, wqkv, bqkv, { layerNorm: ln }); }),
  'qkv': () => tidy(() => { linear(x, wqkv, bqkv); }),
  'LN + fc1': () => tidy(() => { linear(layerNorm(x, g, gb, 1e-5), w1, b1, { activation: 'relu' }); }),
  'fc1 with LN prologue': () => tidy(() => { linear(x, w1, b1, { activation: 'relu', layerNorm: ln }); }),
};
const wall: Record<string, number[]> = {}, cpu: Record<string, number[]> = {};
for (const [n, f] of Object.entries(cases)) { f(); await gpu.sync(); wall[n] = []; cpu[n] = []; }
for (let r = 0; r < 15; r++) {
  for (const [n, f] of Object.entries(cases)) {
    const c0 = process.cpuUsage(); const t0 = performance.now();
    for (let i = 0; i < reps; i++) f();
    await gpu.sync();
    const c = process.cpuUsage(c0);
    wall[n]!.push((performance.now() - t0) / reps); cpu[n]!.push((c.user + c.system) / 1000 / reps);
  }
}
const med = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;
for (const n of Object.keys(cases)) console.log(`${n.padEnd(26)} wall min ${Math.min(...wall[n]!).toFixed(2)} med ${med(wall[n]!).toFixed(2)}  cpu min ${Math.min(...cpu[n]!).toFixed(2)} med ${med(cpu[n]!).toFixed(2)} ms`);
gpu.destroy();
