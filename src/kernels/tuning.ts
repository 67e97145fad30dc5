import type { Gpu } from '../gpu/gpu.js';
import type { GemmProblem, VariantChoice } from './linear-problem.js';
import { GEMV_MAX_ROWS } from './linear-variants.js';

/** The variant for `p` on `gpu`: by shape and adapter class. */
export function pickVariant(gpu: Gpu, p: GemmProblem): VariantChoice {
  const software = gpu.caps.isSoftware;
  if (p.bLayout === 'nk' && p.M <= GEMV_MAX_ROWS) return { kind: software ? 'gemv-rows' : 'gemv-coop' };
  if (software) return { kind: 'regblock' };
  const big = p.M >= 512 && p.N >= 512;
  return { kind: 'tiled', tile: big ? 'tile128' : 'tile64' };
}
