/**
 * float64 references of the optimizer kernels: torch's clip_grad_norm_ coefficient and AdamW
 * (decoupled weight decay, bias correction), the oracle of test/kernels/optimizer.test.ts.
 */

/** The 2-norm of all gradients and min(1, maxNorm / (norm + 1e-6)) (1 without clipping). */
export function clipCoefficientCpu(grads: readonly ArrayLike<number>[], maxNorm: number): { norm: number; coef: number } {
  let sq = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sq += g[i]! * g[i]!;
  const norm = Math.sqrt(sq);
  return { norm, coef: maxNorm > 0 && Number.isFinite(maxNorm) ? Math.min(1, maxNorm / (norm + 1e-6)) : 1 };
}

export interface AdamWStateCpu {
  param: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

/** One AdamW step in place (grad already clipped), step = the step number after this one (1 for the first). */
export function adamwStepCpu(
  s: AdamWStateCpu,
  grad: ArrayLike<number>,
  o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number },
): void {
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < s.param.length; i++) {
    const g = grad[i]!;
    s.param[i] = s.param[i]! * (1 - o.lr * o.weightDecay);
    s.m[i] = o.beta1 * s.m[i]! + (1 - o.beta1) * g;
    s.v[i] = o.beta2 * s.v[i]! + (1 - o.beta2) * g * g;
    s.param[i] = s.param[i]! - ((o.lr / bc1) * s.m[i]!) / (Math.sqrt(s.v[i]!) / Math.sqrt(bc2) + o.eps);
  }
}
