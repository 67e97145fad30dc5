import type { Gpu } from '../src/gpu/gpu.js';

/** A prepared kernel call: `run()` records one call (no sync); `dispose()` frees its tensors. */
export interface BenchInstance {
  run(): void;
  dispose(): void;
}

/** One benchmark case. Files in bench/cases/ export `cases: BenchCase[]`; bench/kernels.ts finds them. */
export interface BenchCase {
  /** Kernel family, e.g. 'linear', 'flash-attention', 'layernorm'. */
  kernel: string;
  /** e.g. '257x1408->4224'. */
  shape: string;
  /** e.g. 'f16', 'f32', 'f16w/f32a'. */
  dtype: string;
  /** Floating-point operations per run(), for GFLOP/s and the compute roofline. */
  flops?: number;
  /** Bytes that must move per run(), for GB/s and the bandwidth roofline. */
  bytes?: number;
  /** Set for a peer's implementation (e.g. 'tensorflow.js'): reports mark its rows as a peer's. */
  peer?: string;
  setup(gpu: Gpu): Promise<BenchInstance> | BenchInstance;
}

/** One measured case, as written to the JSON report (bench/report-schema.ts). */
export type { KernelResult as BenchResult } from './report-schema.js';

/**
 * Optional extension of BenchInstance for work that is not on the engine's device (peers): waits until
 * everything `run()` recorded has finished. Without it the harness awaits `gpu.sync()`.
 */
export interface PeerBenchInstance extends BenchInstance {
  sync(): Promise<void>;
}

/** Deterministic, well-scaled values (|v| < 0.5, no denormals) for benchmark operands; fast to make. */
export function benchValues(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296 - 0.5) * 0.999;
  }
  return out;
}

/** The same as raw binary16 bits, for f16 tensors (converting hundreds of MB of floats is slow). */
export function benchHalfBits(n: number, seed = 1): Uint16Array {
  const out = new Uint16Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    // sign, exponent 8..13 (2^-7 .. 2^-2), random mantissa
    out[i] = ((s >>> 31) << 15) | ((8 + ((s >>> 24) % 6)) << 10) | (s & 0x3ff);
  }
  return out;
}
