import type { BenchCase, PeerBenchInstance } from '../harness.js';
import { benchValues } from '../harness.js';

/**
 * The peer: TensorFlow.js's WebGPU backend (its own device on the same adapter), tf.matMul at the f32
 * shapes of bench/cases/linear.ts. Rows x K -> N with M >= 2 use B as [K, N], the layout tfjs's dense
 * layers keep and its faster one there; the single-row (GEMV) shapes use B as [N, K] (transposeB),
 * which tfjs runs about 4x faster than [K, N] on lavapipe. Timing includes completion: the harness
 * awaits tfjs's own queue (pass ended, queue submitted, onSubmittedWorkDone).
 */

type Tf = typeof import('@tensorflow/tfjs-core');
interface TfWebGpuBackend {
  device: GPUDevice;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

let tfReady: Promise<Tf> | null = null;

/**
 * Loads tfjs with the 'webgpu' backend: on the page's navigator.gpu in a browser, on Dawn in Node. The backend
 * registers itself only if navigator.gpu exists when it is imported.
 */
function loadTf(): Promise<Tf> {
  tfReady ??= (async () => {
    if (!(globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu) {
      // A computed specifier keeps browser bundlers away from the Node-only Dawn package.
      const dawnModule = 'webgpu';
      const dawn = (await import(/* @vite-ignore */ dawnModule)) as { create(flags: string[]): GPU; globals: object };
      for (const [k, v] of Object.entries(dawn.globals)) {
        if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
      }
      const gpu = dawn.create([]);
      const existing = (globalThis as { navigator?: object }).navigator;
      Object.defineProperty(globalThis, 'navigator', {
        value: Object.create(existing ?? null, { gpu: { value: gpu, enumerable: true } }),
        configurable: true,
        writable: true,
      });
    }
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs could not start its webgpu backend');
    await tf.ready();
    return tf;
  })();
  return tfReady;
}

function tfMatmulCase(M: number, K: number, N: number): BenchCase {
  const transposeB = M === 1;
  return {
    kernel: 'peer-tfjs',
    peer: 'tensorflow.js',
    shape: `${M}x${K}->${N}`,
    dtype: 'f32',
    flops: 2 * M * N * K,
    bytes: (N * K + M * K + M * N) * 4,
    async setup(): Promise<PeerBenchInstance> {
      const tf = await loadTf();
      const backend = tf.backend() as unknown as TfWebGpuBackend;
      const a = tf.tensor2d(benchValues(M * K, 1), [M, K]);
      const b = tf.tensor2d(benchValues(N * K, 2), transposeB ? [N, K] : [K, N]);
      let last: import('@tensorflow/tfjs-core').Tensor | null = null;
      return {
        run() {
          last?.dispose();
          last = tf.matMul(a, b, false, transposeB);
        },
        async sync() {
          backend.endComputePassEncoder();
          backend.submitQueue();
          await backend.device.queue.onSubmittedWorkDone();
        },
        dispose() {
          last?.dispose();
          a.dispose();
          b.dispose();
        },
      };
    },
  };
}

export const cases: BenchCase[] = [
  tfMatmulCase(1024, 1024, 1024),
  tfMatmulCase(257, 1408, 4224),
  tfMatmulCase(257, 1408, 6144),
  tfMatmulCase(257, 6144, 1408),
  tfMatmulCase(32, 768, 3072),
  tfMatmulCase(64, 2560, 10240),
  tfMatmulCase(1, 2560, 10240),
  tfMatmulCase(1, 2560, 2560),
];
