// Benchmark cases for the small kernels at BLIP-2 OPT-2.7B's shapes. All are memory-bound: `bytes` is what
// must move at least (each input read once, each output written once); GB/s against it is the figure to watch.
import type { BenchCase, BenchInstance } from '../harness.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { argmax } from '../../src/kernels/argmax.js';
import { gelu } from '../../src/kernels/elementwise.js';
import { embedding } from '../../src/kernels/embedding.js';
import { im2col } from '../../src/kernels/im2col.js';
import { layerNorm } from '../../src/kernels/layernorm.js';
import { repetitionPenalty } from '../../src/kernels/logits.js';
import { topk } from '../../src/kernels/topk.js';
import { Tensor, type DType } from '../../src/tensor.js';

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

/** An instance whose run() records `call` and frees what it returns; dispose() frees `inputs`. */
function instance(inputs: Tensor[], call: () => Tensor | Tensor[] | void): BenchInstance {
  return {
    run() {
      const out = call();
      if (Array.isArray(out)) for (const t of out) t.dispose();
      else out?.dispose();
    },
    dispose() {
      for (const t of inputs) t.dispose();
    },
  };
}

function layerNormCase(rows: number, d: number): BenchCase {
  return {
    kernel: 'layernorm',
    shape: `${rows}x${d}`,
    dtype: 'f32',
    bytes: 2 * rows * d * 4 + 2 * d * 4,
    setup(gpu: Gpu) {
      const x = Tensor.from(gpu, random(rows * d, 1), [rows, d]);
      const w = Tensor.from(gpu, random(d, 2), [d]);
      const b = Tensor.from(gpu, random(d, 3), [d]);
      return instance([x, w, b], () => layerNorm(x, w, b, 1e-6));
    },
  };
}

const vocab = 50304;

export const cases: BenchCase[] = [
  layerNormCase(257, 1408),
  layerNormCase(64, 2560),
  {
    kernel: 'gelu',
    shape: '257x6144',
    dtype: 'f32',
    bytes: 2 * 257 * 6144 * 4,
    setup(gpu) {
      const x = Tensor.from(gpu, random(257 * 6144, 4), [257, 6144]);
      return instance([x], () => gelu(x));
    },
  },
  {
    kernel: 'embedding',
    shape: `64 ids of ${vocab}x2560`,
    dtype: 'f16 table/f32 out',
    bytes: 64 * 4 + 64 * 2560 * (2 + 4),
    setup(gpu) {
      const tableDtype: DType = gpu.caps.f16 ? 'f16' : 'f32';
      // 257.6 MB in f16: above lavapipe's 128 MiB binding limit, so the split path is what runs there.
      const table = Tensor.empty(gpu, [vocab, 2560], tableDtype, { persistent: true });
      const ids = Tensor.from(gpu, Int32Array.from(random(64, 5), (v) => Math.floor(((v + 1) / 2) * vocab)), [64], 'i32');
      return instance([table, ids], () => embedding(ids, table));
    },
  },
  {
    kernel: 'argmax',
    shape: `1x${vocab}`,
    dtype: 'f32',
    bytes: vocab * 4 + 4,
    setup(gpu) {
      const x = Tensor.from(gpu, random(vocab, 6), [1, vocab]);
      return instance([x], () => argmax(x));
    },
  },
  {
    kernel: 'topk',
    shape: `1x${vocab} k=50`,
    dtype: 'f32',
    bytes: vocab * 4 + 50 * 8,
    setup(gpu) {
      const x = Tensor.from(gpu, random(vocab, 7), [1, vocab]);
      return instance([x], () => {
        const r = topk(x, 50);
        return [r.values, r.indices];
      });
    },
  },
  {
    kernel: 'topk',
    shape: `1x${5 * vocab} k=10 (5 beams)`,
    dtype: 'f32',
    bytes: 5 * vocab * 4 + 10 * 8,
    setup(gpu) {
      const x = Tensor.from(gpu, random(5 * vocab, 8), [1, 5 * vocab]);
      return instance([x], () => {
        const r = topk(x, 10);
        return [r.values, r.indices];
      });
    },
  },
  {
    kernel: 'im2col',
    shape: '1x3x224x224/14',
    dtype: 'f32',
    bytes: 2 * 3 * 224 * 224 * 4,
    setup(gpu) {
      const x = Tensor.from(gpu, random(3 * 224 * 224, 9), [1, 3, 224, 224]);
      return instance([x], () => im2col(x, 14));
    },
  },
  {
    kernel: 'repetition-penalty',
    shape: `1x${vocab}, 64 ids`,
    dtype: 'f32',
    bytes: 64 * 4 + 2 * 64 * 4,
    setup(gpu) {
      const logits = Tensor.from(gpu, random(vocab, 10), [1, vocab]);
      const ids = Tensor.from(gpu, Int32Array.from(random(64, 11), (v) => Math.floor(((v + 1) / 2) * vocab)), [1, 64], 'i32');
      return instance([logits, ids], () => repetitionPenalty(logits, ids, 1.2));
    },
  },
];
