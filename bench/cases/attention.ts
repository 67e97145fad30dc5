// Benchmark cases for the attention family at BLIP-2 OPT-2.7B's shapes.
// flops: 4 * (query, key) pairs * head_dim * heads (QK^T and PV, one multiply-add = 2 flops); causal
// attention counts only the pairs a query sees. bytes: what must move at least (q, k, v and mask read
// once, the output written once); for decode that is mostly the K/V cache, the figure to watch there.
// Cases named with a kernel in brackets force that variant, to compare it with the default choice.
import type { BenchCase, BenchInstance } from '../harness.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { attention, type AttentionKernel, type HeadsView } from '../../src/kernels/attention.js';
import { logSoftmax, softmax } from '../../src/kernels/softmax.js';
import { Tensor, type DType } from '../../src/tensor.js';

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

const BYTES: Record<DType, number> = { f32: 4, f16: 2, i32: 4, u32: 4 };

interface AttentionShape {
  name: string;
  batch?: number;
  lq: number;
  kvLength: number;
  heads: number;
  headDim: number;
  causal?: boolean;
  /** q, k and v as column ranges of one fused [B, L, 3*H*D] tensor (the vision tower's qkv output). */
  fused?: boolean;
  /** K/V cache rows allocated (decode reads kvLength of them). */
  capacity?: number;
  q: DType;
  kv: DType;
  kernel?: AttentionKernel;
}

/** (query, key) pairs a query block sees: all of them, or the causal triangle ending at kvLength. */
function visiblePairs(s: AttentionShape): number {
  if (!s.causal) return s.lq * s.kvLength;
  let pairs = 0;
  for (let i = 0; i < s.lq; i++) pairs += s.kvLength - s.lq + i + 1;
  return pairs;
}

function attentionCase(s: AttentionShape): BenchCase {
  const batch = s.batch ?? 1;
  const width = s.heads * s.headDim;
  const kvRowsRead = batch * s.kvLength * width * BYTES[s.kv] * 2;
  return {
    kernel: 'attention',
    shape: `${s.name}: ${s.lq}x${s.kvLength}${s.causal ? ' causal' : ''} h${s.heads} d${s.headDim}${s.kernel ? ` [${s.kernel}]` : ''}`,
    dtype: s.q === s.kv ? s.q : `${s.q}q/${s.kv}kv`,
    flops: 4 * batch * visiblePairs(s) * s.headDim * s.heads,
    bytes: kvRowsRead + batch * s.lq * width * BYTES[s.q] * 2,
    setup(gpu: Gpu): BenchInstance {
      const owned: Tensor[] = [];
      let q: HeadsView, k: HeadsView, v: HeadsView;
      if (s.fused) {
        const qkv = Tensor.from(gpu, random(batch * s.lq * 3 * width, 1), [batch, s.lq, 3 * width], s.q);
        owned.push(qkv);
        [q, k, v] = [{ tensor: qkv }, { tensor: qkv, column: width }, { tensor: qkv, column: 2 * width }];
      } else {
        const rows = s.capacity ?? s.kvLength;
        const qt = Tensor.from(gpu, random(batch * s.lq * width, 2), [batch, s.lq, width], s.q);
        const kt = Tensor.from(gpu, random(batch * rows * width, 3), [batch, rows, width], s.kv);
        const vt = Tensor.from(gpu, random(batch * rows * width, 4), [batch, rows, width], s.kv);
        owned.push(qt, kt, vt);
        [q, k, v] = [{ tensor: qt }, { tensor: kt }, { tensor: vt }];
      }
      const mask = s.causal ? Tensor.from(gpu, new Float32Array(batch * (s.capacity ?? s.kvLength)), [batch, s.capacity ?? s.kvLength]) : undefined;
      if (mask) owned.push(mask);
      const options = { numHeads: s.heads, headDim: s.headDim, scale: 1 / Math.sqrt(s.headDim), causal: s.causal, mask, kvLength: s.kvLength, kernel: s.kernel };
      return {
        run: () => attention(q, k, v, options).dispose(),
        dispose: () => owned.forEach((t) => t.dispose()),
      };
    },
  };
}

function softmaxCase(rows: number, width: number, log: boolean): BenchCase {
  return {
    kernel: log ? 'logsoftmax' : 'softmax',
    shape: `${rows}x${width}`,
    dtype: 'f32',
    bytes: rows * width * 8,
    setup(gpu: Gpu): BenchInstance {
      const x = Tensor.from(gpu, random(rows * width, 5), [rows, width]);
      return {
        run: () => (log ? logSoftmax(x) : softmax(x)).dispose(),
        dispose: () => x.dispose(),
      };
    },
  };
}

const vision: AttentionShape = { name: 'vision', lq: 257, kvLength: 257, heads: 16, headDim: 88, fused: true, q: 'f32', kv: 'f32' };
const decode = (kvLength: number, kernel?: AttentionKernel): AttentionShape => ({
  name: 'opt decode',
  lq: 1,
  kvLength,
  capacity: 2048,
  heads: 32,
  headDim: 80,
  causal: true,
  q: 'f32',
  kv: 'f16',
  kernel,
});

export const cases: BenchCase[] = [
  attentionCase(vision),
  attentionCase({ ...vision, kernel: 'tiled' }),
  attentionCase({ ...vision, kernel: 'rows' }),
  attentionCase({ name: 'qformer cross', lq: 32, kvLength: 257, heads: 12, headDim: 64, q: 'f32', kv: 'f32' }),
  attentionCase({ name: 'qformer self', lq: 32, kvLength: 32, heads: 12, headDim: 64, q: 'f32', kv: 'f32' }),
  attentionCase({ name: 'opt prefill', lq: 64, kvLength: 64, capacity: 2048, heads: 32, headDim: 80, causal: true, q: 'f32', kv: 'f16' }),
  attentionCase(decode(64)),
  attentionCase(decode(256)),
  attentionCase(decode(1024)),
  attentionCase(decode(1024, 'split')),
  attentionCase(decode(1024, 'rows-split')),
  attentionCase(decode(1024, 'rows')),
  softmaxCase(1, 50304, false),
  softmaxCase(5, 50304, true),
];
