import { Gpu } from '../src/gpu/gpu.js';
import { linear } from '../src/kernels/linear.js';
import { layerNorm } from '../src/kernels/layernorm.js';
import { Tensor, tidy } from '../src/tensor.js';
const gpu = await Gpu.create();
const D = 2560;
const rnd = (n: number, s = 0.02) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7311 + 1) * s);
const x = Tensor.from(gpu, rnd(D, 1), [1, D]);
const w = Tensor.from(gpu, rnd(3 * D * D), [3 * D, D], 'f16');
const g = Tensor.from(gpu, new Float32Array(D).fill(1.1), [D]);
const gb = Tensor.from(gpu, new Float32Array(D).fill(0.1), [D]);
const ln = { weight: g, bias: gb, eps: 1e-5 };
const reps = 8;
const cases: Record<string, () => void> = {
  'LN + qkv': () => tidy(() => { linear(layerNorm(x, g, gb, 1e-5), w, null); }),
  'qkv + LN prologue': () => tidy(() => { linear(x, w, null, { layerNorm: ln }); }),
  'qkv': () => tidy(() => { linear(x, w, null); }),
};
const wall: Record<string, number[]> = {}, cpu: Record<string, number[]> = {};
for (const [n, f] of Object.entries(cases)) { f(); await gpu.sync(); wall[n] = []; cpu[n] = []; }
for (let r = 0; r < 20; r++) {
  for (const [n, f] of Object.entries(cases)) {
    const c0 = process.cpuUsage(); const t0 = performance.now();
    for (let i = 0; i < reps; i++) f();
    await gpu.sync();
    const c = process.cpuUsage(c0);
    wall[n]!.push((performance.now() - t0) / reps); cpu[n]!.push((c.user + c.system) / 1000 / reps);
  }
}
const med = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;
for (const n of Object.keys(cases)) console.log(`WG ${process.env.LNWG ?? 64} ${n.padEnd(20)} wall min ${Math.min(...wall[n]!).toFixed(2)} med ${med(wall[n]!).toFixed(2)}  cpu min ${Math.min(...cpu[n]!).toFixed(2)} med ${med(cpu[n]!).toFixed(2)} ms`);
gpu.destroy();
