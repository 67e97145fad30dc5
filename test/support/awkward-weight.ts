import { randn } from '../helpers.js';

/**
 * An [N, K] float weight with the awkward groups a real one rarely has, for the quantized kernels' tests: an
 * all-zero row (2), an all-zero group (row 3, columns 32..63), a group whose values sit at +-absmax so that its
 * codes are +-qmax (row 1, columns 0..31), and random values elsewhere.
 */
export function awkwardWeight(N: number, K: number, seed: number): Float32Array {
  const w = randn(N * K, seed, 0.5);
  if (N > 2) w.fill(0, 2 * K, 3 * K);
  if (N > 3 && K > 32) w.fill(0, 3 * K + 32, 3 * K + Math.min(K, 64));
  if (N > 1) for (let k = 0; k < Math.min(K, 32); k++) w[K + k] = k % 2 ? 0.75 : -0.75;
  return w;
}
