import type { Activation } from '../kernels/linear-problem.js';

/**
 * Plain-TypeScript references of the linear and matmul kernels, in double precision: the oracles of
 * the kernel tests.
 */

const TWO_OVER_SQRT_PI = 1.1283791670955126;

/** erf(x) to about 1e-15: the Maclaurin series near 0, the continued fraction of erfc beyond. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // sum_n (-1)^n x^(2n+1) / (n! (2n+1)); terms shrink fast enough below 2.5 for double precision.
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * TWO_OVER_SQRT_PI * sum;
  }
  if (ax > 6) return Math.sign(x);
  return Math.sign(x) * (1 - erfcLarge(ax));
}

/** erfc(x) for x >= 2.5 by the Laplace continued fraction, evaluated backwards. */
function erfcLarge(x: number): number {
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
  let f = x;
  for (let n = 60; n >= 1; n--) f = x + n / 2 / f;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/** HF `gelu`: 0.5 x (1 + erf(x / sqrt 2)). */
export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

export function activate(x: number, activation: Activation): number {
  switch (activation) {
    case 'none':
      return x;
    case 'gelu':
      return gelu(x);
    case 'relu':
      return Math.max(x, 0);
  }
}

export interface LinearRefOptions {
  bias?: ArrayLike<number> | null;
  activation?: Activation;
  residual?: ArrayLike<number> | null;
}

/**
 * y[m, n] = act(sum_k x[m, k] w[n, k] + bias[n]) + residual[m, n]; x is [M, K], w is [N, K] (PyTorch
 * layout), all row-major. Returns [M, N].
 */
export function linearRef(x: ArrayLike<number>, w: ArrayLike<number>, M: number, K: number, N: number, options: LinearRefOptions = {}): Float64Array {
  if (x.length !== M * K || w.length !== N * K) throw new RangeError('linearRef: sizes do not match');
  const y = new Float64Array(M * N);
  const act = options.activation ?? 'none';
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
      if (options.bias) s += options.bias[n]!;
      s = activate(s, act);
      if (options.residual) s += options.residual[m * N + n]!;
      y[m * N + n] = s;
    }
  }
  return y;
}

export interface MatmulRefOptions {
  /** a is [batch, K, M] instead of [batch, M, K]. */
  transposeA?: boolean;
  /** b is [batch, N, K] instead of [batch, K, N]. */
  transposeB?: boolean;
  alpha?: number;
  /** 0 when that operand is shared by every batch. */
  aBatched?: boolean;
  bBatched?: boolean;
}

/** c[z] = alpha * a[z] @ b[z] (or b[z]^T) for z < batch; a [batch?, M, K]. Returns [batch, M, N]. */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  batch: number,
  M: number,
  K: number,
  N: number,
  options: MatmulRefOptions = {},
): Float64Array {
  const aBatched = options.aBatched ?? true;
  const bBatched = options.bBatched ?? true;
  const alpha = options.alpha ?? 1;
  const c = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const ao = aBatched ? z * M * K : 0;
    const bo = bBatched ? z * K * N : 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const bv = options.transposeB ? b[bo + n * K + k]! : b[bo + k * N + n]!;
          s += (options.transposeA ? a[ao + k * M + m]! : a[ao + m * K + k]!) * bv;
        }
        c[z * M * N + m * N + n] = alpha * s;
      }
    }
  }
  return c;
}

/** Derivative of an activation at its input z. */
export function activateGrad(z: number, activation: Activation): number {
  switch (activation) {
    case 'none':
      return 1;
    case 'gelu':
      // d/dz 0.5 z (1 + erf(z / sqrt 2)) = Phi(z) + z phi(z) (torch's gelu_backward, approximate='none').
      return 0.5 * (1 + erf(z / Math.SQRT2)) + (z * Math.exp(-0.5 * z * z)) / Math.sqrt(2 * Math.PI);
    case 'relu':
      return z > 0 ? 1 : 0;
  }
}

export interface LinearGradsRef {
  dx: Float64Array;
  dw: Float64Array;
  db: Float64Array;
}

/**
 * Gradients of y = act(x W^T + b) + r given dY (all [M, *] row-major, float64): dX [M, K], dW [N, K], db [N]
 * (r's gradient is dY itself). The oracle of the linear backward kernels.
 */
export function linearBackwardRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  dy: ArrayLike<number>,
  M: number,
  K: number,
  N: number,
  options: { bias?: ArrayLike<number> | null; activation?: Activation } = {},
): LinearGradsRef {
  if (x.length !== M * K || w.length !== N * K || dy.length !== M * N) throw new RangeError('linearBackwardRef: sizes do not match');
  const act = options.activation ?? 'none';
  const dz = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let z = options.bias ? options.bias[n]! : 0;
      for (let k = 0; k < K; k++) z += x[m * K + k]! * w[n * K + k]!;
      dz[m * N + n] = dy[m * N + n]! * activateGrad(z, act);
    }
  }
  const dx = new Float64Array(M * K);
  const dw = new Float64Array(N * K);
  const db = new Float64Array(N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      const g = dz[m * N + n]!;
      db[n]! += g;
      for (let k = 0; k < K; k++) {
        dx[m * K + k]! += g * w[n * K + k]!;
        dw[n * K + k]! += g * x[m * K + k]!;
      }
    }
  }
  return { dx, dw, db };
}
