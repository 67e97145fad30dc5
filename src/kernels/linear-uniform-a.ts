import type { Gpu } from '../gpu/gpu.js';
import type { RangeBinding } from './linear-bind.js';
import type { GemmProblem } from './linear-problem.js';
import { groupSteps, type ResolvedVariant } from './linear-variants.js';
import { UNIFORM_USAGE } from '../gpu/buffer-pool.js';

/**
 * Whether gemv-rows binds A (binding 1) as a uniform buffer instead of a storage one, and if so the binding's
 * length in vec4s (compiled in: a uniform array has a fixed size); 0 when not.
 *
 * Why: llvmpipe loads storage words at per-lane addresses one lane at a time, each behind an exec-mask branch and
 * a bounds check, but gathers uniform-buffer words with no branch (Mesa 25's `emit_load_ubo`). In the quantized
 * decode GEMV every lane loads a vec4 of x per group of 32, shared by broadcast, and those loads are a large part of
 * its own (q4: 4 words of codes, half a word of scales and 2 of x per row and group). Measured on lavapipe (2 cores,
 * `bench/gemv-layouts.ts`, N 8192 x K 2560, 120 interleaved rounds): q4 with 2 rows per lane 2.81 -> 2.51 ms per
 * call (minimum; medians 4.36 -> 3.61); in the engine (`bench/gemv-weights.ts --storage-x`, CPU medians) q4 fc2
 * 7.31 -> 7.12 ms, q8 9.89 -> 9.12. Only those group steps take it: f16's gemv_rows loads one element of x per lane
 * every 8 weights, and picking it out of a uniform vec4 measured 5-30 % slower. On GPUs divergent uniform reads
 * serialise (constant caches), so it is the default on software adapters only (`VariantChoice.uniformA`), where
 * gemv-rows also runs a LayerNorm as a dispatch of its own, so that the normalised row comes this way too.
 */
export function uniformAVec4s(gpu: Gpu, p: GemmProblem, v: ResolvedVariant, a: RangeBinding): number {
  const c = gpu.caps;
  // The quantized GEMV's group steps only: each lane loads a whole vec4 of x per group.
  if (!v.uniformA || p.ln || p.a.dtype !== 'f32' || !groupSteps(p, v)) return 0;
  if ((p.a.buffer.usage & UNIFORM_USAGE) === 0) return 0;
  const { offset, size } = a.binding;
  if (size === undefined || offset === undefined) return 0;
  if (offset % c.minUniformBufferOffsetAlignment !== 0 || size % 16 !== 0 || size > c.maxUniformBufferBindingSize) return 0;
  return size / 16;
}
