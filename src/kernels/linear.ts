import { numel, Tensor, type DType } from '../tensor.js';
import { QuantizedTensor, weightTensors, type Weight } from '../quant/quantized-tensor.js';
import { runGemm } from './linear-core.js';
import type { Activation, GemmProblem, LayerNormPrologue, VariantChoice } from './linear-problem.js';

export type { Activation, LayerNormPrologue } from './linear-problem.js';

export interface LinearOptions {
  activation?: Activation;
  /** Added after the activation: y = act(x W^T + b) + residual. May be `out` itself (in place). */
  residual?: Tensor;
  /** Where to write the result (shape [..., N], f32 or f16); a new tensor of x's dtype otherwise. */
  out?: Tensor;
  /**
   * y = act(LN(x) W^T + b) (+ residual): a LayerNorm over x's last dim first. The GEMV kernels (few rows)
   * apply it as a prologue, in the same dispatch; larger products run it as its own kernel.
   */
  layerNorm?: LayerNormPrologue;
}

export interface MatmulOptions {
  /** a is [B?, K, M] (multiply its transpose) instead of [B?, M, K]: a weight gradient dY^T X without a copy. */
  transposeA?: boolean;
  /** b is [B?, N, K] (multiply by its transpose) instead of [B?, K, N]. */
  transposeB?: boolean;
  /** Scales the product. */
  alpha?: number;
  /** Adds the product to this tensor (of the result's shape and a float dtype) in place, and returns it. */
  accumulate?: Tensor;
}

const FLOAT_TYPES: readonly DType[] = ['f32', 'f16'];

function checkFloat(op: string, what: string, t: Tensor): void {
  if (!(t instanceof Tensor)) throw new TypeError(`${op}: ${what} must be a Tensor`);
  if (!FLOAT_TYPES.includes(t.dtype)) throw new TypeError(`${op}: ${what} must be f32 or f16, got ${t}`);
  if (t.disposed) throw new Error(`${op}: ${what} was disposed`);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Bytes of the buffer a kernel binding of `t` may cover (aligned down, rounded up to 16). */
function bindingSpan(t: Tensor): [number, number] {
  const align = t.gpu.caps.minStorageBufferOffsetAlignment;
  const start = t.byteOffset - (t.byteOffset % align);
  return [start, start + Math.ceil((t.byteOffset + t.byteLength - start) / 16) * 16];
}

function overlaps(a: Tensor, b: Tensor): boolean {
  if (a.buffer !== b.buffer) return false;
  const [a0, a1] = bindingSpan(a);
  const [b0, b1] = bindingSpan(b);
  return a0 < b1 && b0 < a1;
}

/** Checks a caller's output tensor against the expected shape. */
function checkOut(op: string, out: Tensor, like: Tensor, shape: readonly number[]): void {
  checkFloat(op, 'out', out);
  if (out.gpu !== like.gpu) throw new Error(`${op}: out lives on another device`);
  if (!sameShape(out.shape, shape)) throw new RangeError(`${op}: out is ${out}, expected shape [${shape.join(', ')}]`);
}

function checkWeight(weight: Weight): void {
  if (weight instanceof QuantizedTensor) {
    if (weight.disposed) throw new Error('linear: weight was disposed');
  } else {
    checkFloat('linear', 'weight', weight);
  }
}

/** An [N, K] weight as GemmProblem's B: its storage, format and (quantized) scales. */
export function weightOperand(weight: Weight): Pick<GemmProblem, 'b' | 'bFormat' | 'scales'> {
  if (weight instanceof QuantizedTensor) return { b: weight.codes, bFormat: weight.scheme, scales: weight.scales };
  return { b: weight, bFormat: weight.dtype as 'f32' | 'f16', scales: null };
}

/** Validates linear's operands and describes the product; allocates the output unless given. */
export function linearProblem(x: Tensor, weight: Weight, bias?: Tensor | null, options: LinearOptions = {}): GemmProblem {
  checkFloat('linear', 'x', x);
  checkWeight(weight);
  if (x.ndim < 1) throw new RangeError(`linear: x must have at least one dimension, got ${x}`);
  if (weight.ndim !== 2) throw new RangeError(`linear: weight must be [N, K], got ${weight}`);
  const K = x.dim(-1);
  const [N, wK] = weight.shape as [number, number];
  if (wK !== K) throw new RangeError(`linear: x ${x} has K = ${K} but weight ${weight} has K = ${wK}`);
  if (K === 0) throw new RangeError('linear: K must be at least 1');
  const gpu = x.gpu;
  if (weight.gpu !== gpu) throw new Error('linear: x and weight live on different devices');
  const b = bias ?? null;
  if (b) {
    checkFloat('linear', 'bias', b);
    if (b.gpu !== gpu) throw new Error('linear: bias lives on another device');
    if (b.ndim !== 1 || b.dim(0) !== N) throw new RangeError(`linear: bias must be [${N}], got ${b}`);
  }
  const ln = options.layerNorm ?? null;
  if (ln) {
    for (const [name, t] of [['weight', ln.weight], ['bias', ln.bias]] as const) {
      checkFloat('linear', `layerNorm.${name}`, t);
      if (t.gpu !== gpu) throw new Error(`linear: layerNorm.${name} lives on another device`);
      if (t.size !== K) throw new RangeError(`linear: layerNorm.${name} must have ${K} elements, got ${t}`);
    }
    if (ln.weight.dtype !== ln.bias.dtype) throw new TypeError('linear: layerNorm weight and bias must share a dtype');
    if (typeof ln.eps !== 'number' || !Number.isFinite(ln.eps) || ln.eps < 0) throw new RangeError(`linear: layerNorm.eps must be a finite number >= 0, got ${ln.eps}`);
  }
  const activation = options.activation ?? 'none';
  if (!['none', 'gelu', 'relu'].includes(activation)) throw new RangeError(`linear: unknown activation '${String(activation)}'`);
  const shape = [...x.shape.slice(0, -1), N];
  const residual = options.residual ?? null;
  if (residual) {
    checkFloat('linear', 'residual', residual);
    if (residual.gpu !== gpu) throw new Error('linear: residual lives on another device');
    if (!sameShape(residual.shape, shape)) throw new RangeError(`linear: residual is ${residual}, expected shape [${shape.join(', ')}]`);
  }
  if (options.out) {
    checkOut('linear', options.out, x, shape);
    const weights = weightTensors(weight);
    for (const [name, t] of [['x', x], ...weights.map((w) => ['weight', w] as const), ['bias', b]] as const) {
      if (t && overlaps(options.out, t)) throw new Error(`linear: out overlaps ${name}; write to a separate tensor`);
    }
  }
  const inPlace = residual !== null && options.out !== undefined && residual.buffer === options.out.buffer && residual.offset === options.out.offset && residual.dtype === options.out.dtype;
  if (residual && options.out && !inPlace && overlaps(options.out, residual)) {
    throw new Error('linear: out partly overlaps residual; pass the same tensor for an in-place residual, or separate tensors');
  }
  // Allocated last, once nothing can throw any more.
  const out = options.out ?? Tensor.empty(gpu, shape, x.dtype);
  return {
    a: x,
    ...weightOperand(weight),
    out,
    bLayout: 'nk',
    batch: 1,
    M: numel(x.shape.slice(0, -1)),
    N,
    K,
    aBatchStride: 0,
    bBatchStride: 0,
    cBatchStride: 0,
    alpha: 1,
    bias: b,
    activation,
    residual,
    residualInPlace: inPlace,
    ln: ln ? { weight: ln.weight, bias: ln.bias, eps: ln.eps } : null,
  };
}

/**
 * Validates matmul's operands and describes the product; allocates the output. A quantized b is an [N, K]
 * weight read either way round: as [K, N] (dX = dY W', a frozen quantized layer's input gradient: the kernels'
 * B loads index codes and scales by element, so rows of whole groups serve a walk down the columns too) or
 * transposed (the forward product).
 */
export function matmulProblem(a: Tensor, b: Weight, options: MatmulOptions = {}): GemmProblem {
  checkFloat('matmul', 'a', a);
  if (b instanceof QuantizedTensor) {
    if (b.disposed) throw new Error('matmul: b was disposed');
  } else {
    checkFloat('matmul', 'b', b);
  }
  if (a.gpu !== b.gpu) throw new Error('matmul: a and b live on different devices');
  if (a.ndim < 2 || b.ndim < 2) throw new RangeError(`matmul: a and b need at least 2 dimensions, got ${a} and ${b}`);
  const transposeB = options.transposeB ?? false;
  const transposeA = options.transposeA ?? false;
  const alpha = options.alpha ?? 1;
  if (!Number.isFinite(alpha)) throw new RangeError(`matmul: alpha must be finite, got ${alpha}`);
  const [a0, a1] = a.shape.slice(-2) as [number, number];
  const [M, K] = transposeA ? [a1, a0] : [a0, a1];
  const [b0, b1] = b.shape.slice(-2) as [number, number];
  const [bK, N] = transposeB ? [b1, b0] : [b0, b1];
  if (bK !== K) {
    throw new RangeError(`matmul: a ${a}${transposeA ? ' (transposed)' : ''} has K = ${K} but b ${b}${transposeB ? ' (transposed)' : ''} has K = ${bK}`);
  }
  if (K === 0) throw new RangeError('matmul: K must be at least 1');
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const bLayout = transposeB ? 'nk' : 'kn';
  const acc = options.accumulate ?? null;
  const common = {
    a,
    ...weightOperand(b),
    aLayout: transposeA ? 'km' : 'mk',
    bLayout,
    K,
    N,
    alpha,
    bias: null,
    activation: 'none',
    residual: null,
    residualInPlace: acc !== null,
    ln: null,
  } as const;
  const allocate = (shape: number[]): Tensor => {
    if (!acc) return Tensor.empty(a.gpu, shape, a.dtype);
    checkOut('matmul', acc, a, shape);
    for (const [name, t] of [['a', a], ...weightTensors(b).map((t) => ['b', t] as const)] as const) if (overlaps(acc, t)) throw new Error(`matmul: accumulate overlaps ${name}`);
    return acc;
  };
  if (bBatch.length === 0) {
    // b is shared by every batch: one product with the batches stacked as rows (a transposed a cannot stack).
    if (transposeA && aBatch.length !== 0) throw new RangeError('matmul: a transposed a needs b batched like it (or no batch at all)');
    const out = allocate([...aBatch, M, N]);
    return { ...common, out, batch: 1, M: numel(aBatch) * M, aBatchStride: 0, bBatchStride: 0, cBatchStride: 0 };
  }
  if (aBatch.length !== 0 && !sameShape(aBatch, bBatch)) {
    throw new RangeError(`matmul: batch dimensions of a ${a} and b ${b} differ`);
  }
  const out = allocate([...bBatch, M, N]);
  return {
    ...common,
    out,
    batch: numel(bBatch),
    M,
    aBatchStride: aBatch.length === 0 ? 0 : M * K,
    bBatchStride: K * N,
    cBatchStride: M * N,
  };
}

function runOrDispose(p: GemmProblem, ownsOut: boolean, choice?: VariantChoice): Tensor {
  try {
    runGemm(p, choice);
  } catch (e) {
    if (ownsOut) p.out.dispose();
    throw e;
  }
  return p.out;
}

/**
 * y = act(x W^T + b) (+ residual). x [..., K] (f32 or f16, any leading dims, any view offset), weight
 * [N, K] (f32 or f16, PyTorch layout, or a q8/q4 QuantizedTensor), bias [N] or null, residual [..., N].
 * Returns [..., N] with x's dtype (or writes `out`). Products accumulate in f32.
 */
export function linear(x: Tensor, weight: Weight, bias?: Tensor | null, options?: LinearOptions): Tensor {
  return runOrDispose(linearProblem(x, weight, bias, options), options?.out === undefined);
}

/**
 * Batched a @ b (a^T with transposeA, b^T with transposeB). a [B?, M, K] (or [B?, K, M]), b [B?, K, N] (or
 * [B?, N, K]). With `accumulate` the product is added to that tensor, which is returned.
 */
export function matmul(a: Tensor, b: Weight, options?: MatmulOptions): Tensor {
  return runOrDispose(matmulProblem(a, b, options), options?.accumulate === undefined);
}

/** linear with the kernel variant forced (tests and benchmarks). */
export function linearWithVariant(choice: VariantChoice, x: Tensor, weight: Weight, bias?: Tensor | null, options?: LinearOptions): Tensor {
  return runOrDispose(linearProblem(x, weight, bias, options), options?.out === undefined, choice);
}

/** matmul with the kernel variant forced (tests and benchmarks). */
export function matmulWithVariant(choice: VariantChoice, a: Tensor, b: Weight, options?: MatmulOptions): Tensor {
  return runOrDispose(matmulProblem(a, b, options), options?.accumulate === undefined, choice);
}
