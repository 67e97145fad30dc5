import type { WeightFormat } from '../quant/format.js';
import type { Tensor } from '../tensor.js';

export type Activation = 'none' | 'gelu' | 'relu';

/** A LayerNorm applied to every row of A before the product (the A-side prologue of the GEMV kernels). */
export interface LayerNormPrologue {
  /** [K], f32 or f16. */
  weight: Tensor;
  /** [K], f32 or f16. */
  bias: Tensor;
  eps: number;
}

/**
 * One (batched) matrix product with its epilogue, already validated:
 * C[z, m, n] = act(alpha * sum_k A(z, m, k) * B(z, k, n) + bias[n]) + R[z, m, n].
 * Strides are in elements; a batch stride of 0 broadcasts the operand over the batch.
 */
export interface GemmProblem {
  a: Tensor;
  /** B's storage: float values of `bFormat`, or for q8/q4 the packed codes (u32 words, rows of whole groups). */
  b: Tensor;
  /** How B is stored: 'f32'/'f16' (b's dtype) or quantized ('q8'/'q4', only as an [N, K] weight). */
  bFormat: WeightFormat;
  /** Quantized B: its f16 scales, [N, groups]; null otherwise. */
  scales: Tensor | null;
  out: Tensor;
  /**
   * 'mk' (default): A is [M, K] row-major; 'km': A is stored [K, M] (A^T, row stride M), which makes a weight
   * gradient dW = dY^T X an ordinary product. Only the tiled kernel reads 'km'.
   */
  aLayout?: 'mk' | 'km';
  /** 'nk': B is [N, K] row-major (a PyTorch weight, i.e. A B^T); 'kn': B is [K, N]. */
  bLayout: 'nk' | 'kn';
  batch: number;
  M: number;
  N: number;
  K: number;
  aBatchStride: number;
  bBatchStride: number;
  /** Batch stride of the output and of the residual. */
  cBatchStride: number;
  alpha: number;
  bias: Tensor | null;
  activation: Activation;
  residual: Tensor | null;
  /** The residual is `out` itself (y += ...): read from the output binding. */
  residualInPlace: boolean;
  /** C = epilogue(LN(A) B): fused into GEMV kernels where it fits, a separate LayerNorm dispatch otherwise. */
  ln: LayerNormPrologue | null;
}

export type VariantKind = 'gemv-rows' | 'gemv-coop' | 'regblock' | 'tiled';

/** Tile shapes of the shared-memory kernel: 32x64 (few rows), 64x64, 128x128 (big problems). */
export type TiledConfig = 'tile32' | 'tile64' | 'tile128';

/** Which kernel runs a problem. Fields left out are chosen from the problem and the adapter. */
export interface VariantChoice {
  kind: VariantKind;
  /** 4-element vector loads (needs K and every row start to be multiples of 4). */
  vec?: boolean;
  /**
   * gemv-coop: reduce with subgroup operations instead of workgroup memory. gemv-rows: share each
   * step's x values across the subgroup by broadcast (8-lane subgroups, f32 x, f16 weights). regblock:
   * load the block's 8 rows of A one per lane and broadcast them (8-lane subgroups, B as [N, K], vector
   * loads). Default: whenever the device allows.
   */
  subgroups?: boolean;
  /** tiled: tile configuration. */
  tile?: TiledConfig;
  /** tiled: products in f16 (with f32 accumulation per K tile); needs shader-f16. */
  f16Math?: boolean;
  /** gemv-rows: rows of B per invocation (1, 2 or 4; default 2). */
  rows?: number;
  /**
   * gemv-rows with subgroups: read x through a uniform binding when it fits one (64 KiB, aligned, a buffer with
   * uniform usage), as linear-uniform-a.ts explains. Default on software adapters; where it does not fit, the
   * storage binding is read as before.
   */
  uniformA?: boolean;
  /**
   * GEMV kernels with a LayerNorm: normalise x in the kernel's prologue (true) or in a LayerNorm dispatch first
   * (false). Default: fused on GPUs; on software adapters a LayerNorm dispatch first for gemv-rows, and fused for
   * gemv-coop grids of up to 24 workgroups (linear-core.ts: lnPays). Where the prologue cannot run (rows too long
   * for workgroup memory, other kernels) the LayerNorm runs first regardless.
   */
  fuseLayerNorm?: boolean;
}
