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
  setup(gpu: Gpu): Promise<BenchInstance> | BenchInstance;
}

/** One measured case, as written to the JSON report. */
export interface BenchResult {
  kernel: string;
  shape: string;
  dtype: string;
  /** Milliseconds per run(): GPU time from timestamp queries where the device has them (see `timing`), else
   *  wall-clock time; null when the case could not run. */
  ms: number | null;
  /** Wall-clock milliseconds per run, completion included (host recording + GPU). */
  wall_ms?: number;
  timing?: 'gpu-timestamps' | 'wall';
  gflops?: number;
  gbps?: number;
  /** Fraction of the roofline bound (the tighter of compute and bandwidth) this case reached. */
  roofline_fraction?: number;
  /** Set instead of the numbers when the case could not run. */
  error?: string;
}

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
