/** Plain-TypeScript elementwise ops, in float64: the oracle of the elementwise kernel tests. */

/** a + b, where b has a's length or broadcasts along the last dim (b.length divides a.length). */
export function addCpu(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return zipBroadcast(a, b, (x, y) => x + y);
}

/** a * b (b as for `addCpu`) or a * scalar. */
export function mulCpu(a: ArrayLike<number>, b: ArrayLike<number> | number): Float64Array {
  if (typeof b === 'number') return Float64Array.from(a, (x) => x * b);
  return zipBroadcast(a, b, (x, y) => x * y);
}

/** Exact GELU of HF's "gelu": 0.5 x (1 + erf(x / sqrt 2)). */
export function geluCpu(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
}

/** max(x, 0), NaN stays NaN (as torch.relu). */
export function reluCpu(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => (v < 0 ? 0 : v));
}

/** dy * gelu'(x) = dy * (Phi(x) + x phi(x)). */
export function geluBackwardCpu(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return zipBroadcast(x, dy, (v, g) => g * (0.5 * (1 + erf(v / Math.SQRT2)) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI)));
}

/** dy where the ReLU's output y is positive, else 0. */
export function reluBackwardCpu(y: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return zipBroadcast(y, dy, (v, g) => (v > 0 ? g : 0));
}

function zipBroadcast(a: ArrayLike<number>, b: ArrayLike<number>, f: (x: number, y: number) => number): Float64Array {
  if (b.length === 0 || a.length % b.length !== 0) throw new RangeError(`cannot broadcast ${b.length} values over ${a.length}`);
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f(a[i]!, b[i % b.length]!);
  return out;
}

/**
 * erf in float64 to about 1e-14: the Maclaurin series where it converges quickly, the continued
 * fraction of erfc (evaluated bottom-up) in the tails.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a < 2.5) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 200; n++) {
      term *= (-a * a) / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (a > 10) return Math.sign(x);
  // erfc(a) = exp(-a^2)/sqrt(pi) * 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + ...)))))
  let f = a;
  for (let n = 60; n >= 1; n--) f = a + n / 2 / f;
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}
