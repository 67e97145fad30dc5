import type { BenchCase } from '../harness.js';
import { benchHalfBits, benchValues } from '../harness.js';
import { linear, linearWithVariant } from '../../src/kernels/linear.js';
import type { VariantChoice } from '../../src/kernels/linear-problem.js';
import { tuneLinear } from '../../src/kernels/tuning.js';
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
  { name: 'opt lm_head', M: 1, K: 2560, N: 50304, bias: false },
];

/** `forced`: run that kernel variant instead of the chosen one (labelled in the shape column). */
function linearCase(s: LinearShape, weights: 'f16' | 'f32', forced?: { label: string; choice: VariantChoice }): BenchCase {
  const { M, K, N } = s;
  const wBytes = weights === 'f16' ? 2 : 4;
  return {
    kernel: 'linear',
    shape: `${M}x${K}->${N}${forced ? ` [${forced.label}]` : ''}`,
    dtype: weights === 'f16' ? 'f16w/f32a' : 'f32',
    flops: 2 * M * N * K,
    bytes: N * K * wBytes + (M * K + M * N + (s.bias ? N : 0)) * 4,
    async setup(gpu) {
      // As the model would at load time: measure the candidate kernels for this shape (GPUs only;
      // software adapters keep their measured rule of thumb).
      await tuneLinear(gpu, [{ M, K, N, xDtype: 'f32', wDtype: weights }]);
      const x = Tensor.from(gpu, benchValues(M * K, 1), [M, K]);
      const w =
        weights === 'f16'
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

export const cases: BenchCase[] = [
  ...SHAPES.flatMap((s) => [linearCase(s, 'f16'), linearCase(s, 'f32')]),
  // The square problem every WebGPU matmul reports, against naive-matmul and TensorFlow.js.
  linearCase({ name: 'square', M: 1024, K: 1024, N: 1024, bias: false }, 'f32'),
  // lavapipe's kernels without sharing loads across 8-lane subgroups, to show what that sharing gives there
  // (docs/architecture.md): the vision qkv on regblock and the decode fc1 on gemv-rows, f16 weights.
  linearCase(SHAPES[0]!, 'f16', { label: 'regblock, rows per lane', choice: { kind: 'regblock', subgroups: false } }),
  linearCase(SHAPES[8]!, 'f16', { label: 'gemv-rows, x per lane', choice: { kind: 'gemv-rows', subgroups: false } }),
];
