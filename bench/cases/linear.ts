import type { BenchCase } from '../harness.js';
import { benchHalfBits, benchValues } from '../harness.js';
import { linear, linearWithVariant } from '../../src/kernels/linear.js';
import type { VariantChoice } from '../../src/kernels/linear-problem.js';
import { tuneLinear } from '../../src/kernels/tuning.js';
import { groupsPerRow, rowBytes, type QuantScheme } from '../../src/quant/format.js';
import { QuantizedTensor } from '../../src/quant/quantized-tensor.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { Tensor } from '../../src/tensor.js';

/** Linear layers at BLIP-2 OPT-2.7B's real shapes (M rows x K -> N, with bias), f16 and f32 weights. */

interface LinearShape {
  name: string;
  M: number;
  K: number;
  N: number;
  bias: boolean;
}

const SHAPES: LinearShape[] = [
  { name: 'vision qkv', M: 257, K: 1408, N: 4224, bias: true },
  { name: 'vision fc1', M: 257, K: 1408, N: 6144, bias: true },
  { name: 'vision fc2', M: 257, K: 6144, N: 1408, bias: true },
  { name: 'qformer attn', M: 32, K: 768, N: 768, bias: true },
  { name: 'qformer ffn', M: 32, K: 768, N: 3072, bias: true },
  { name: 'qformer cross k/v', M: 257, K: 1408, N: 768, bias: true },
  { name: 'opt prefill qkv', M: 64, K: 2560, N: 7680, bias: true },
  { name: 'opt prefill fc1', M: 64, K: 2560, N: 10240, bias: true },
  { name: 'opt decode fc1', M: 1, K: 2560, N: 10240, bias: true },
  { name: 'opt decode proj', M: 1, K: 2560, N: 2560, bias: true },
  { name: 'opt decode qkv', M: 1, K: 2560, N: 7680, bias: true },
  { name: 'opt decode fc2', M: 1, K: 10240, N: 2560, bias: true },
  { name: 'opt lm_head', M: 1, K: 2560, N: 50304, bias: false },
];

/** Random codes and scales of an [N, K] quantized weight (quantizing random floats would take seconds per case). */
function randomQuantized(gpu: Gpu, N: number, K: number, scheme: QuantScheme): QuantizedTensor {
  const q = QuantizedTensor.empty(gpu, [N, K], scheme, { persistent: true });
  const words = new Uint32Array((N * rowBytes(scheme, K)) / 4);
  let x = 12345;
  for (let i = 0; i < words.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    words[i] = x;
  }
  q.codes.write(words);
  q.scales.write(benchHalfBits(N * groupsPerRow(K), 3));
  return q;
}

/** `forced`: run that kernel variant instead of the chosen one (labelled in the shape column). */
function linearCase(s: LinearShape, weights: 'f16' | 'f32' | QuantScheme, forced?: { label: string; choice: VariantChoice }): BenchCase {
  const { M, K, N } = s;
  const quantized = weights === 'q8' || weights === 'q4';
  const wBytes = quantized ? rowBytes(weights, K) + 2 * groupsPerRow(K) : (weights === 'f16' ? 2 : 4) * K;
  return {
    kernel: 'linear',
    shape: `${M}x${K}->${N}${forced ? ` [${forced.label}]` : ''}`,
    dtype: weights === 'f32' ? 'f32' : `${weights}w/f32a`,
    flops: 2 * M * N * K,
    bytes: N * wBytes + (M * K + M * N + (s.bias ? N : 0)) * 4,
    async setup(gpu) {
      // As the model would at load time: measure the candidate kernels for this shape (GPUs only;
      // software adapters keep their measured rule of thumb).
      if (!quantized) await tuneLinear(gpu, [{ M, K, N, xDtype: 'f32', wDtype: weights }]);
      const x = Tensor.from(gpu, benchValues(M * K, 1), [M, K]);
      const w = quantized
        ? randomQuantized(gpu, N, K, weights)
        : weights === 'f16'
          ? Tensor.from(gpu, benchHalfBits(N * K, 2), [N, K], 'f16', { persistent: true })
          : Tensor.from(gpu, benchValues(N * K, 2), [N, K], 'f32', { persistent: true });
      const b = s.bias ? Tensor.from(gpu, benchValues(N, 3), [N]) : null;
      const y = Tensor.empty(gpu, [M, N]);
      return {
        run() {
          if (forced) linearWithVariant(forced.choice, x, w, b, { out: y });
          else linear(x, w, b, { out: y });
        },
        dispose() {
          for (const t of [x, w, b, y]) t?.dispose();
        },
      };
    },
  };
}

/** The shapes whose weights the q8/q4 scheme quantizes (vision encoder and OPT decoder layers). */
const QUANTIZED = SHAPES.filter((s) => s.name.startsWith('vision') || (s.name.startsWith('opt') && s.name !== 'opt lm_head'));

export const cases: BenchCase[] = [
  ...SHAPES.flatMap((s) => [linearCase(s, 'f16'), linearCase(s, 'f32')]),
  // Quantized weights beside f16 at the shapes that have them (docs/quantization.md).
  ...QUANTIZED.flatMap((s) => [linearCase(s, 'q8'), linearCase(s, 'q4')]),
  // The square problem every WebGPU matmul reports, against naive-matmul and TensorFlow.js.
  linearCase({ name: 'square', M: 1024, K: 1024, N: 1024, bias: false }, 'f32'),
  // lavapipe's kernels without sharing loads across 8-lane subgroups, to show what that sharing gives there
  // (docs/architecture.md): the vision qkv on regblock and the decode fc1 on gemv-rows, f16 weights.
  linearCase(SHAPES[0]!, 'f16', { label: 'regblock, rows per lane', choice: { kind: 'regblock', subgroups: false } }),
  linearCase(SHAPES[8]!, 'f16', { label: 'gemv-rows, x per lane', choice: { kind: 'gemv-rows', subgroups: false } }),
];
