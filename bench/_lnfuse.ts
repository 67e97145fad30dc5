import { Gpu } from '../src/gpu/gpu.js';
import { linear } from '../src/kernels/linear.js';
import { layerNorm } from '../src/kernels/layernorm.js';
import { Tensor, tidy } from '../src/tensor.js';
const gpu = await Gpu.create();
const K = 2560;
for (const N of [7680, 10240]) {
  const x = Tensor.from(gpu, Float32Array.from({ length: K }, (_, i) => Math.sin(i)), [1, K]);
  const w = Tensor.from(gpu, Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.37) * 0.02), [N, K], 'f16');
  const g = Tensor.from(gpu, new Float32Array(K).fill(1.1), [K]);
  const b = Tensor.from(gpu, new Float32Array(K).fill(0.1), [K]);
  const bias = Tensor.from(gpu, new Float32Array(N).fill(0.1), [N]);
  const reps = 4;
  const fused = () => tidy(() => { for (let i = 0; i < reps; i++) linear(x, w, bias, { layerNorm: { weight: g, bias: b, eps: 1e-5 } }).dispose(); });
  const unfused = () => tidy(() => { for (let i = 0; i < reps; i++) { const n = layerNorm(x, g, b, 1e-5); linear(n, w, bias).dispose(); n.dispose(); } });
  const t = { fused: [] as number[], unfused: [] as number[] };
  for (const f of [fused, unfused]) { f(); await gpu.sync(); }
  for (let r = 0; r < 12; r++) {
    for (const [name, f] of [['unfused', unfused], ['fused', fused]] as const) {
      const s = process.cpuUsage(); f(); await gpu.sync(); const d = process.cpuUsage(s); t[name].push((d.user + d.system) / 1000 / reps);
    }
  }
  const min = (a: number[]) => Math.min(...a).toFixed(2);
  const med = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!.toFixed(2);
  console.log(`1x${K}->${N}: unfused min ${min(t.unfused)} med ${med(t.unfused)} ms; fused min ${min(t.fused)} med ${med(t.fused)} ms`);
}
gpu.destroy();
