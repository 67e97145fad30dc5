import type { BenchCase } from '../harness.js';
import { benchHalfBits, benchValues } from '../harness.js';
import { linearInputGrad } from '../../src/kernels/linear-backward.js';
import { groupsPerRow, rowBytes, type QuantScheme } from '../../src/quant/format.js';
import { QuantizedTensor } from '../../src/quant/quantized-tensor.js';
import { Tensor } from '../../src/tensor.js';

/**
 * The frozen OPT layers' input gradient in training, dX = dY W (M = batch x 48 tokens: 32 queries + 16 text), with
 * the weight in f16 or as q8/q4 codes read down their columns. A q8/q4 dX that dequantized into scratch first would
 * cost at least the f16 row plus a pass writing the weight out, so these rows decide between the two
 * (docs/finetuning.md).
 */
interface GradShape {
  name: string;
  M: number;
  /** The weight is [N, K]; dY is [M, N], dX [M, K]. */
  N: number;
  K: number;
}

const SHAPES: GradShape[] = [48, 192].flatMap((M) => [
  { name: 'opt fc1 dX', M, N: 10240, K: 2560 },
  { name: 'opt fc2 dX', M, N: 2560, K: 10240 },
  { name: 'opt out_proj dX', M, N: 2560, K: 2560 },
]);

function weightOf(gpu: Parameters<BenchCase['setup']>[0], N: number, K: number, format: 'f16' | QuantScheme): Tensor | QuantizedTensor {
  if (format === 'f16') return Tensor.from(gpu, benchHalfBits(N * K, 2), [N, K], 'f16', { persistent: true });
  const q = QuantizedTensor.empty(gpu, [N, K], format, { persistent: true });
  const words = new Uint32Array((N * rowBytes(format, K)) / 4);
  let x = 777;
  for (let i = 0; i < words.length; i++) words[i] = x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
  q.codes.write(words);
  q.scales.write(benchHalfBits(N * groupsPerRow(K), 3));
  return q;
}

function inputGradCase(s: GradShape, format: 'f16' | QuantScheme): BenchCase {
  const { M, N, K } = s;
  const wBytes = format === 'f16' ? 2 * N * K : N * (rowBytes(format, K) + 2 * groupsPerRow(K));
  return {
    kernel: 'linear-input-grad',
    shape: `${M}x${N}->${K}`,
    dtype: `${format}w/f32a`,
    flops: 2 * M * N * K,
    bytes: wBytes + (M * N + M * K) * 4,
    setup(gpu) {
      const dy = Tensor.from(gpu, benchValues(M * N, 1), [M, N]);
      const w = weightOf(gpu, N, K, format);
      return {
        run() {
          linearInputGrad(dy, w).dispose();
        },
        dispose() {
          dy.dispose();
          w.dispose();
        },
      };
    },
  };
}

export const cases: BenchCase[] = SHAPES.flatMap((s) => (['f16', 'q8', 'q4'] as const).map((f) => inputGradCase(s, f)));
