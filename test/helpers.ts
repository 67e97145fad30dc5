import { f16BitsToF32, f32ToF16Bits } from '../src/util/half.js';
import { Gpu, type GpuOptions } from '../src/gpu/gpu.js';

/** A device for one test file; call `destroy` in afterAll. */
export async function testGpu(options: GpuOptions = {}): Promise<Gpu> {
  return Gpu.create(options);
}

/** Deterministic pseudo-random numbers (mulberry32), so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(r(), 1e-12);
    const v = r();
    const m = Math.sqrt(-2 * Math.log(u)) * scale;
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(d)) return Infinity;
    if (d > m) m = d;
  }
  return m;
}

/** Largest |a-b| / (atol + rtol*|b|); <= 1 means within tolerance. */
export function toleranceRatio(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const r = Math.abs(a[i]! - b[i]!) / (atol + rtol * Math.abs(b[i]!));
    if (Number.isNaN(r)) return Infinity;
    if (r > m) m = r;
  }
  return m;
}

/** Values as a tensor of `dtype` stores them: f16-rounded (round to nearest even) or f32-rounded. */
export function roundTo(dtype: 'f32' | 'f16' | string, xs: ArrayLike<number>): Float32Array {
  return Float32Array.from(xs, (v) => (dtype === 'f16' ? f16BitsToF32(f32ToF16Bits(v)) : Math.fround(v)));
}
