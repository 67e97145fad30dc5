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
  /** Milliseconds per run(). */
  ms: number;
  gflops?: number;
  gbps?: number;
  /** Fraction of the roofline bound (the tighter of compute and bandwidth) this case reached. */
  roofline_fraction?: number;
  /** Set instead of the numbers when the case could not run. */
  error?: string;
}
