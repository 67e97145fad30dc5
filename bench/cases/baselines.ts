import type { BenchCase } from '../harness.js';
import { benchValues } from '../harness.js';
import { uniforms } from '../../src/gpu/uniforms.js';
import { copy } from '../../src/kernels/copy.js';
import { Tensor } from '../../src/tensor.js';

/** Yardsticks measured in the same run as the kernels: the obvious matmul and a plain copy. */

const NAIVE = 1024;
const COPY_ELEMENTS = 16 * 1024 * 1024; // 64 MiB of f32

export const cases: BenchCase[] = [
  {
    kernel: 'naive-matmul',
    shape: `${NAIVE}x${NAIVE}x${NAIVE}`,
    dtype: 'f32',
    flops: 2 * NAIVE ** 3,
    bytes: 3 * NAIVE * NAIVE * 4,
    setup(gpu) {
      const a = Tensor.from(gpu, benchValues(NAIVE * NAIVE, 1), [NAIVE, NAIVE]);
      const b = Tensor.from(gpu, benchValues(NAIVE * NAIVE, 2), [NAIVE, NAIVE]);
      const c = Tensor.empty(gpu, [NAIVE, NAIVE]);
      const pipeline = gpu.pipeline('naive_matmul');
      const params = uniforms().u32(NAIVE, NAIVE, NAIVE).build();
      return {
        run() {
          gpu.dispatch({
            label: 'naive-matmul',
            pipeline,
            uniforms: params,
            buffers: [a.buffer, b.buffer, c.buffer],
            workgroups: [Math.ceil(NAIVE / 16), Math.ceil(NAIVE / 16)],
          });
        },
        dispose() {
          for (const t of [a, b, c]) t.dispose();
        },
      };
    },
  },
  {
    kernel: 'copy',
    shape: '64MiB',
    dtype: 'f32',
    bytes: 2 * COPY_ELEMENTS * 4, // read + written
    setup(gpu) {
      const x = Tensor.from(gpu, benchValues(COPY_ELEMENTS, 3), [COPY_ELEMENTS]);
      const y = Tensor.empty(gpu, [COPY_ELEMENTS]);
      return {
        run() {
          copy(x, y);
        },
        dispose() {
          x.dispose();
          y.dispose();
        },
      };
    },
  },
];
